package upstream

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Backoff is the wait after the n-th consecutive failure towards a provider:
// exponential from first_retry, capped at max_retry, with ±20% jitter so
// that many waiting mails, and many relays, do not all knock at once.
func Backoff(d config.Delivery, n int) time.Duration {
	w := d.FirstRetry.D()
	for i := 1; i < n && w < d.MaxRetry.D(); i++ {
		w *= 2
	}
	w = min(w, d.MaxRetry.D())
	return time.Duration(float64(w) * (0.8 + 0.4*rand.Float64()))
}

// Tracker keeps the health of one link to a provider (an account's SMTP,
// or its IMAP): failures in a row, until when nothing new is tried and
// why. Every change goes to save, which records it in the store for status
// without waiting: health is advice for the technician.
type Tracker struct {
	opt  config.Delivery
	save func(store.Health)

	mu    sync.Mutex
	h     store.Health
	fails int
}

// NewTracker starts from the health recorded in the store. A restart
// clears a pause after a refused login: restarting is how the technician
// says "I fixed the password, try now".
func NewTracker(h store.Health, opt config.Delivery, save func(store.Health)) *Tracker {
	h.PausedUntil, h.NextTry, h.NextReason = time.Time{}, time.Time{}, ""
	return &Tracker{opt: opt, save: save, h: h}
}

// Failed records a failure at now and returns the time before which
// nothing new is tried. Access closed holds nothing: the next scheduled
// attempt goes ahead, so that the first one after the provider reopens
// collects. It costs no more than a working relay's poll, and less: the
// connection is the probe (a refused port, a greeting that says BYE), and
// the login is sent only when the server answers.
func (t *Tracker) Failed(e *Error, now time.Time) time.Time {
	t.mu.Lock()
	t.fails++
	wait := Backoff(t.opt, t.fails)
	reason := fmt.Sprintf("retry after %d failure(s) in a row", t.fails)
	t.h.PausedUntil = time.Time{}
	switch {
	case e.Kind == CredentialsRefused:
		wait = t.opt.AuthPause.D()
		t.h.PausedUntil = now.Add(wait)
		reason = "paused: the provider refused the login; fix the password, then retry or restart"
	case e.Kind == AccessClosed:
		wait = 0
		reason = "access closed by the provider: a connection test at each scheduled time, the login only if the server answers"
	case e.Kind == Local:
		// Nothing reached the provider: no reason to slow down, and the
		// first try after the fix must come soon.
		wait = t.opt.FirstRetry.D()
		reason = fmt.Sprintf("this box's fault: fix it; tried again every %s, the provider is not contacted until it is fixed", t.opt.FirstRetry.D())
	}
	t.h.LastError, t.h.LastErrorAt, t.h.Failure = e.Text, now, e.Kind.String()
	if t.h.FailingSince.IsZero() {
		t.h.FailingSince = now
	}
	t.h.NextTry, t.h.NextReason = now.Add(wait), reason
	h := t.h
	t.mu.Unlock()
	t.save(h)
	return h.NextTry
}

// Worked records a success at now: the failures are over.
func (t *Tracker) Worked(now time.Time) {
	t.mu.Lock()
	t.fails = 0
	t.h.LastSuccess = now
	t.h.FailingSince, t.h.PausedUntil, t.h.NextTry, t.h.NextReason, t.h.Failure = time.Time{}, time.Time{}, time.Time{}, "", ""
	h := t.h
	t.mu.Unlock()
	t.save(h)
}

// Clear lifts the hold at the technician's request (a retry or `fetch`):
// the next attempt goes ahead now, pause or not.
func (t *Tracker) Clear() {
	t.mu.Lock()
	t.h.PausedUntil, t.h.NextTry = time.Time{}, time.Time{}
	t.mu.Unlock()
}

// Hold is the time before which no new attempt is made (zero: none).
func (t *Tracker) Hold() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h.NextTry
}

// Fails is the number of failures in a row.
func (t *Tracker) Fails() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fails
}

// Health is the link's health as the tracker sees it.
func (t *Tracker) Health() store.Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h
}
