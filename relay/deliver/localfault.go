package deliver

import (
	"context"
	"errors"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// storeWrites reports whether the store can record a delivery, proving it
// with a tiny durable write before a new upstream connection: a body
// uploaded that cannot then be marked "sending" is abandoned before the
// dot, and retrying that at once hammers the provider. A local fault is
// the relay's own: the provider's health is left alone.
func (w *Worker) storeWrites(ctx context.Context) bool {
	if f := w.st.DeliveryFault(); !f.Since.IsZero() {
		w.disconnect()
	}
	if w.client != nil {
		return true // proved when it was opened; a failed write since would have set a fault
	}
	cleared, err := w.st.Probe(ctx)
	switch {
	case errors.Is(err, store.ErrPaused):
		return false // logged when the fault began or the last probe failed
	case err != nil:
		f := w.st.DeliveryFault()
		w.log.Error(f.Text(), "next_try", f.NextTry.Format("2006-01-02T15:04:05Z07:00"), "error", err.Error())
		return false
	case cleared:
		w.log.Info("the state folder accepts writes again: delivery resumes")
	}
	return true
}

// storeFailed logs a store write that failed while delivering mail id. A
// disk full or an I/O error pauses delivery for every account (store.Fault);
// the first failure says so once.
func (w *Worker) storeFailed(what string, id int64, err error) {
	f, local, started := w.st.FailedWhileDelivering(err)
	switch {
	case started:
		w.log.Error(f.Text(), "while", what, "id", id, "next_try", f.NextTry.Format("2006-01-02T15:04:05Z07:00"))
	case local:
		w.log.Warn("the store still cannot write", "while", what, "id", id, "error", err.Error())
	default:
		w.log.Error(what, "id", id, "error", err.Error())
	}
}

// sentMark is a "sent" record written without waiting (store.MarkSentAsync).
type sentMark struct {
	id    int64
	reply string
	done  *store.Pending // nil: failed, to write again once the store writes
}

// settleSent looks at the "sent" records written without waiting. One that
// failed (the disk filled before its commit) is written again once the
// store writes: otherwise a delivered mail would stay "sending", and come
// back after a restart as uncertain. Each record is written again only
// after its write is known to have failed, so it is never in the store
// twice, and the mail is never sent again for it.
func (w *Worker) settleSent() {
	keep := w.sent[:0]
	for _, s := range w.sent {
		if s.done == nil {
			if !w.st.DeliveryFault().Since.IsZero() {
				keep = append(keep, s)
				continue
			}
			s.done = w.st.MarkSentAsync(s.id, s.reply)
			w.log.Info("recording a delivery again after a failed write", "id", s.id)
		}
		err, ok := s.done.Done()
		switch {
		case !ok:
			keep = append(keep, s) // not committed yet
		case err == nil:
		default:
			if _, local, _ := w.st.FailedWhileDelivering(err); local {
				s.done = nil
				keep = append(keep, s)
				continue
			}
			w.log.Error("recording a delivery", "id", s.id, "reply", s.reply, "error", err.Error())
		}
	}
	w.sent = keep
}
