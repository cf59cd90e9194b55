// Package deliver takes due mail from the store and sends it to each
// account's provider: one connection per account, reused for a burst;
// retries with backoff; a bounce when the provider refuses for good or the
// lifetime runs out; and never a second sending of a mail whose first final
// dot may have been received.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/internal/smtpwire"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
)

// idleKeep is how long a connection stays open after a burst, in case the
// billing software sends the next lot a moment later.
const idleKeep = 10 * time.Second

// Worker delivers one account's mail.
type Worker struct {
	acct     config.Account
	opt      config.Delivery
	hostname string
	contact  string // the technician, named in the practitioner's notices
	st       Store
	log      *slog.Logger

	link   *upstream.Tracker // the provider's health; no new connection before its Hold
	sent   []sentMark        // "sent" records not yet known to be durable
	client *smtp.Client
}

// NewWorker returns a worker for one account; Run starts it. contact (the
// sesam.contact setting) names the technician in the notices it writes.
func NewWorker(acct config.Account, opt config.Delivery, hostname, contact string, st Store, log *slog.Logger) *Worker {
	h, _ := st.Health(acct.Name)
	h.Account = acct.Name
	link := upstream.NewTracker(h, opt, func(h store.Health) { st.SetHealthAsync(h) }) // advice: not waited for
	return &Worker{acct: acct, opt: opt, hostname: hostname, contact: contact, st: st, log: log.With("account", acct.Name, "upstream", acct.Upstream.SMTP.String()), link: link}
}

// Health returns the account's upstream health as the worker sees it.
func (w *Worker) Health() store.Health { return w.link.Health() }

// Run delivers until ctx ends. It finishes the message in hand first, so
// that a stop never turns a clean delivery into an uncertain one.
func (w *Worker) Run(ctx context.Context) {
	defer w.disconnect()
	for ctx.Err() == nil {
		w.deliverDue(ctx)
		wait := time.Hour
		if next, ok, _ := w.st.NextAttempt(w.acct.Name); ok {
			wait = time.Until(next)
		}
		if hold := time.Until(w.link.Hold()); hold > wait {
			wait = hold
		}
		if f := w.st.DeliveryFault(); !f.Since.IsZero() {
			// The store's pause holds every account; at its end a probe
			// write tells whether it is over, mail due or not.
			wait = time.Until(f.NextTry)
		}
		if w.client != nil && wait > idleKeep {
			wait = idleKeep
		}
		if len(w.sent) > 0 && wait > time.Second && w.st.DeliveryFault().Since.IsZero() {
			wait = time.Second // to see the last "sent" records committed
		}
		t := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
		case <-w.st.Wake(w.acct.Name):
		case <-w.st.Kick(w.acct.Name):
			// A technician's retry or release: try now, pause or not (the
			// password file is read again at each connection).
			w.link.Clear()
		case <-t.C:
			if w.client != nil {
				if due, _ := w.st.Due(w.acct.Name, time.Now(), 1); len(due) == 0 {
					w.disconnect() // the burst is over
				}
			}
		}
		t.Stop()
	}
}

func (w *Worker) deliverDue(ctx context.Context) {
	for ctx.Err() == nil {
		if !w.st.DeliveryFault().Since.IsZero() && !w.storeWrites(ctx) {
			return // the store cannot write: nothing may be sent
		}
		w.settleSent()
		if time.Now().Before(w.link.Hold()) {
			return // the provider failed: new mail waits for the account's next try
		}
		due, err := w.st.Due(w.acct.Name, time.Now(), 50)
		if err != nil {
			w.log.Error("reading the queue", "error", err.Error())
			return
		}
		if len(due) == 0 {
			return
		}
		if !w.storeWrites(ctx) {
			return
		}
		if err := w.connect(); err != nil {
			w.connectionFailed(ctx, due, err)
			return
		}
		for _, m := range due {
			if ctx.Err() != nil || !w.st.DeliveryFault().Since.IsZero() {
				return
			}
			if !w.sendOne(ctx, m) {
				break // connection gone: reconnect on the next round
			}
		}
	}
}

func (w *Worker) connect() error {
	if w.client != nil {
		if err := w.client.Reset(); err == nil {
			return nil
		}
		w.disconnect()
	}
	c, err := dial(w.acct.Upstream, w.hostname, w.opt.Timeout.D())
	if err != nil {
		return err
	}
	w.client = c
	return nil
}

func (w *Worker) disconnect() {
	if w.client != nil {
		w.client.Quit()
		w.client.Close()
		w.client = nil
	}
}

func (w *Worker) drop() {
	if w.client != nil {
		w.client.Close()
		w.client = nil
	}
}

// connectionFailed defers every due mail to the account's next try.
func (w *Worker) connectionFailed(ctx context.Context, due []store.Message, err error) {
	ue, ok := err.(*upstream.Error)
	if !ok {
		ue = upstream.Classify("connect", w.acct.Upstream.SMTP.Host, err)
	}
	next := w.link.Failed(ue, time.Now())
	w.log.Warn("upstream unavailable; mail waits", "error", ue.Text, "kind", ue.Kind.String(), "next_try", next.Format(time.RFC3339), "waiting", len(due))
	for _, m := range due {
		w.retryLater(ctx, m, ue, next)
	}
}

// retryLater defers m, or bounces it when its lifetime is over.
func (w *Worker) retryLater(ctx context.Context, m store.Message, ue *upstream.Error, next time.Time) {
	why := ue.Text
	expiry := m.Received.Add(w.opt.Lifetime.D())
	now := time.Now()
	if !now.Before(expiry) {
		w.bounce(ctx, m, ue, w.opt.Lifetime.D())
		return
	}
	if next.After(expiry) {
		next = expiry // one last try at the end of the lifetime
	}
	if err := w.st.MarkDeferred(ctx, m.ID, why, next); err != nil {
		w.storeFailed("recording a deferral", m.ID, err)
		return
	}
	if !m.NoticeSent && now.Sub(m.Received) >= w.opt.DelayNotice.D() {
		w.notify(ctx, m, ue, expiry)
	}
}

// bounce gives m up: the provider refused it for good, or (expired > 0) it
// could not be delivered within its lifetime, ue being the last failure.
func (w *Worker) bounce(ctx context.Context, m store.Message, ue *upstream.Error, expired time.Duration) {
	body, _ := w.st.Body(m.ID)
	r := w.bounceReport(m, body, ue, expired)
	why := r.diagnosis
	if err := w.st.MarkBounced(ctx, m.ID, why, r.build()); err != nil {
		w.storeFailed("recording a bounce", m.ID, err)
		return
	}
	w.log.Warn("mail bounced to the sender's mailbox", "id", m.ID, "message_id", m.MessageID, "reason", why)
}

func (w *Worker) notify(ctx context.Context, m store.Message, ue *upstream.Error, expiry time.Time) {
	body, _ := w.st.Body(m.ID)
	r := w.delayReport(m, body, ue, expiry)
	if err := w.st.AddDelayNotice(ctx, m.ID, r.build()); err != nil {
		w.storeFailed("storing a delay notice", m.ID, err)
		return
	}
	w.log.Info("delay notice stored in the sender's mailbox", "id", m.ID)
}

// sendOne sends m over the open connection. It returns false when the
// connection can no longer be used.
func (w *Worker) sendOne(ctx context.Context, m store.Message) bool {
	c := w.client
	log := w.log.With("id", m.ID, "message_id", m.MessageID)
	body, err := w.st.Body(m.ID)
	if err != nil {
		// Held, not retried at once: a body that does not read now will
		// not read in a millisecond (a damaged ciphertext, a lost key),
		// and picking it again would spin. A technician looks.
		why := "the stored body cannot be read: " + err.Error()
		if herr := w.st.Hold(ctx, m.ID, why, "the relay"); herr != nil {
			w.storeFailed("holding a mail whose body does not read", m.ID, herr)
		}
		log.Error("a queued body does not read: held for a technician", "error", err.Error())
		return true
	}
	host := w.acct.Upstream.SMTP.Host
	// Until the final dot, any failure is safe to retry: the provider has
	// accepted nothing.
	fail := func(stage string, err error) bool {
		ue := Classify(stage, host, err)
		var se *smtp.SMTPError
		isReply := errors.As(err, &se)
		if ue.Kind == upstream.Permanent {
			w.bounce(ctx, m, ue, 0)
		} else {
			w.retryLater(ctx, m, ue, time.Now().Add(upstream.Backoff(w.opt, m.Attempts+1)))
		}
		if !isReply || c.Reset() != nil {
			w.drop()
			return false
		}
		return true
	}
	if err := c.Mail(m.From, nil); err != nil {
		return fail("MAIL FROM", err)
	}
	for _, rcpt := range m.To {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return fail("RCPT TO <"+rcpt+">", err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	if err := smtpwire.WriteBody(c, wc, body); err != nil {
		w.drop()
		return fail("sending the body", err)
	}
	// The line that makes "never twice" hold: the dot is not sent unless
	// "sending" is durable, so a crash from here on leaves a held message.
	err = w.st.MarkSending(ctx, m.ID)
	w.settleSent() // the records before it are committed (or failed) by now
	if err != nil {
		w.storeFailed("recording 'sending' (the final dot was not sent)", m.ID, err)
		w.drop()
		return false
	}
	resp, err := wc.CloseWithResponse()
	var se *smtp.SMTPError
	switch {
	case err == nil:
		reply := "250 " + resp.StatusText
		w.sent = append(w.sent, sentMark{m.ID, reply, w.st.MarkSentAsync(m.ID, reply)}) // made durable by the next write; see settleSent
		w.link.Worked(time.Now())
		log.Info("delivered upstream", "reply", reply, "size", len(body), "attempt", m.Attempts+1)
		return true
	case errors.As(err, &se):
		m.Attempts++
		return fail("the final dot", err)
	default:
		why := fmt.Sprintf("the connection to %s was lost after the final dot (%v): the provider may have accepted the mail", host, err)
		if err := w.st.MarkUncertain(ctx, m.ID, why); err != nil {
			w.storeFailed("recording an uncertain delivery", m.ID, err)
		}
		log.Error("delivery uncertain: held for a technician, not resent", "reason", why)
		w.drop()
		return false
	}
}
