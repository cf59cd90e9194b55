package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// The DOUBLON guard. The fund refuses a second sending of a lot ("DOUBLON
// DE FSE"), and billing software makes one whenever someone clicks
// "retransmettre": the same Subject (emitter, stamp) under a new
// Message-ID, so the resubmission check (same Message-ID and bytes) does
// not see it. Such a lot is accepted (a refusal would make the billing
// software loop) and held for the technician, naming the first sending.
//
// The first sending counts while it may still reach, or has reached, the
// fund: queued, deferred, sending, held (but not by this rule: else a third
// sending would be held behind a second that never left), sent or
// acknowledged. It stops counting once the fund or the provider said it did
// not get it: a negative ARL, a bounce, or a technician's drop. Test lots are
// guarded the same way: a test fund refuses a DOUBLON just the same.

// duplicatePrefix starts the hold reason of a probable second sending.
const duplicatePrefix = sesam.DuplicateHoldPrefix

// Duplicate reports whether m is held as a probable second sending of a lot
// already on its way or gone: releasing it may give the fund a DOUBLON.
func (m Message) Duplicate() bool {
	return m.State == Held && strings.HasPrefix(m.HoldReason, duplicatePrefix)
}

// firstSending is the earlier sending of a lot that makes a new one a duplicate.
type firstSending struct {
	id    int64
	state string // the queue state, or "acknowledged" for a sent lot with a positive ARL
}

// The queue states and lot_returns classes are spelled out as they are
// stored ("sent", "arl-negative"…): this is SQL over those columns. Only
// certain returns count: a negative ARL tied to the lot by a guess must not
// let a second sending out (the fund would see a DOUBLON).
const firstSendingQuery = `SELECT l.msg_id,
		CASE WHEN m.state = 'sent' AND EXISTS (SELECT 1 FROM lot_returns p WHERE p.lot_id = l.msg_id AND p.class = 'arl-positive' AND p.certain = 1)
			THEN 'acknowledged' ELSE m.state END
	FROM lots l JOIN messages m ON m.id = l.msg_id
	WHERE l.account = ? AND l.emitter = ? AND l.stamp_key = ? AND l.msg_id != ?
	AND m.state IN ('queued', 'deferred', 'sending', 'held', 'sent')
	AND NOT (m.state = 'held' AND substr(m.hold_reason, 1, length(?)) = ?)
	AND NOT EXISTS (SELECT 1 FROM lot_returns r WHERE r.lot_id = l.msg_id AND r.class IN ('arl-negative', 'bounce') AND r.certain = 1)
	ORDER BY l.msg_id LIMIT 1`

// sentBefore finds, for a lot about to be queued, the earliest other
// sending of the same lot that still counts. A mail whose Subject is not a
// lot's is never a duplicate.
func (s *Store) sentBefore(q rowQuerier, account string, o sesam.Outbound, self int64) (firstSending, bool, error) {
	if !o.Lot || !o.SubjectOK || o.Subject.Emitter == "" || o.Subject.Stamp == "" {
		return firstSending{}, false, nil
	}
	return firstSendingOf(q, account, o.Subject.Emitter, s.lookup(stampLookup, o.Subject.Stamp), self)
}

type rowQuerier interface {
	QueryRow(string, ...any) *sql.Row
}

// firstSendingOf is sentBefore for a lot known by its lookup key (text.go).
func firstSendingOf(q rowQuerier, account, emitter, stampKey string, self int64) (firstSending, bool, error) {
	var f firstSending
	err := q.QueryRow(firstSendingQuery, account, emitter, stampKey, self, duplicatePrefix, duplicatePrefix).Scan(&f.id, &f.state)
	if errors.Is(err, sql.ErrNoRows) {
		return f, false, nil
	}
	return f, err == nil, err
}

// duplicateReason is the hold reason of a second sending of a lot. It
// names the first by its mail, not by the lot's stamp: hold reasons are
// kept in clear (the guard finds its own by their prefix, in SQL), the
// stamp is sealed (text.go); `queue show` shows the lot's Subject.
func duplicateReason(f firstSending) string {
	return fmt.Sprintf("%sprobable second sending of this lot (first: mail %d, %s) — the fund would refuse it as DOUBLON; release it only if the first did not reach the fund",
		duplicatePrefix, f.id, f.state)
}

// StillDuplicate tells whether a mail held as a duplicate still has a first
// sending that counts (first is its id): if the first has since been
// rejected by a negative ARL, bounced or dropped, the mail can be released
// without the fund getting the lot twice.
func (s *Store) StillDuplicate(id int64) (first int64, still bool, err error) {
	// By the lot's lookup key, which needs no key to read: a stamp that
	// does not decrypt must not make a duplicate look released.
	var account, emitter, stampKey string
	err = s.r.QueryRow("SELECT account, emitter, stamp_key FROM lots WHERE msg_id = ? AND stamp_key != '' AND emitter != ''", id).Scan(&account, &emitter, &stampKey)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	f, still, err := firstSendingOf(s.r, account, emitter, stampKey, id)
	return f.id, still, err
}

// joinReasons puts two hold reasons in one, the first leading.
func joinReasons(first, also string) string {
	if also == "" {
		return first
	}
	return first + "; also held because: " + also
}
