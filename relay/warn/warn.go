// Package warn watches the lot ledger and tells the practice about lots
// that need attention — not delivered after a day, no acknowledgement after
// two, rejected, bounced — once each: in the log, in `status`, and as a
// short French notice to the account's human logins.
package warn

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Warner checks the ledger.
type Warner struct {
	cfg *config.Config
	st  *store.Store
	log *slog.Logger
}

// New returns a Warner.
func New(cfg *config.Config, st *store.Store, log *slog.Logger) *Warner {
	return &Warner{cfg: cfg, st: st, log: log}
}

// Run checks at start and then regularly until ctx ends.
func (w *Warner) Run(ctx context.Context) {
	every := min(time.Minute, w.cfg.Sesam.AckDelay.D()/2, w.cfg.Sesam.UndeliveredWarning.D()/2)
	every = max(every, time.Second)
	for {
		w.Check(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		case <-w.st.LedgerChanged(): // a return came in: a rejection is worth telling now
		}
	}
}

// Check gives the warnings due now.
func (w *Warner) Check(now time.Time) {
	s := w.cfg.Sesam
	for _, a := range w.cfg.Accounts {
		lots, err := w.st.Lots(a.Name, now.Add(-w.cfg.Retention.D()))
		if err != nil {
			w.log.Error("reading the lot ledger", "error", err.Error())
			return
		}
		var logins []string
		for _, l := range a.AllLogins() {
			logins = append(logins, l.Name)
		}
		to := a.WarnLogins(s.WarnBillingLogin)
		for _, l := range lots {
			kind, after, reason := due(l, now, s.AckDelay.D(), s.UndeliveredWarning.D())
			if kind == "" {
				continue
			}
			facts := sesam.LotFacts{Fund: l.Fund, Emitter: l.Emitter, Invoices: l.Invoices, LotAt: l.LotAt, Submitted: l.Submitted, Delivered: l.DeliveredAt}
			text := english(kind, l, after, reason)
			notice := sesam.WarningNotice(kind, facts, reason, after, w.cfg.Hostname, now)
			given, err := w.st.Warn(a.Name, logins, to, store.Warning{LotID: l.ID, Kind: kind, Text: text}, notice)
			if err != nil {
				w.log.Error("recording a warning", "lot", l.ID, "error", err.Error())
				continue
			}
			if given {
				w.log.Warn("lot needs attention: "+text, "account", a.Name, "lot", l.ID, "notified", strings.Join(to, ","))
			}
		}
	}
}

// due says which warning a lot calls for now, if any.
func due(l store.Lot, now time.Time, ackDelay, undelivered time.Duration) (kind string, after time.Duration, reason string) {
	switch l.State {
	case "queued", "deferred", "held":
		if now.Sub(l.Submitted) >= undelivered {
			return sesam.WarnUndelivered, undelivered, ""
		}
	case "delivered", "returned":
		if !l.DeliveredAt.IsZero() && now.Sub(l.DeliveredAt) >= ackDelay {
			return sesam.WarnNoAck, ackDelay, ""
		}
	case "rejected":
		for _, r := range l.Returns {
			if r.Class == string(sesam.Bounce) {
				return sesam.WarnBounced, 0, r.Subject
			}
			if r.Detail != "" {
				return sesam.WarnRejected, 0, r.Detail
			}
		}
		return sesam.WarnRejected, 0, "accusé de réception négatif (" + firstSubject(l) + ")"
	case "bounced":
		return sesam.WarnBounced, 0, "refusé par le fournisseur de messagerie (voir l'avis de non-remise)"
	}
	return "", 0, ""
}

func firstSubject(l store.Lot) string {
	if len(l.Returns) > 0 {
		return l.Returns[0].Subject
	}
	return ""
}

func english(kind string, l store.Lot, after time.Duration, reason string) string {
	switch kind {
	case sesam.WarnUndelivered:
		return "lot " + l.Stamp + " not delivered after " + after.String()
	case sesam.WarnNoAck:
		return "lot " + l.Stamp + " delivered but no acknowledgement after " + after.String()
	case sesam.WarnRejected:
		return "lot " + l.Stamp + " rejected: " + reason
	}
	return "lot " + l.Stamp + " bounced: " + reason
}
