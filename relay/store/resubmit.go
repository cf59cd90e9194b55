package store

import (
	"database/sql"
	"encoding/json"
	"time"
)

// Accepted is the outcome of a submission.
type Accepted struct {
	ID int64 // the queued mail; for a resubmission, the mail first accepted
	// Resubmission: the same account already had this Message-ID with these
	// bytes within the delivery lifetime. Nothing was queued again: the
	// client missed our first 250 (a dropped connection, a relay restart).
	Resubmission bool
	// SameMessageID, when not 0, is an earlier mail with the same
	// Message-ID but other bytes: queued anyway, and flagged in both
	// histories.
	SameMessageID int64
	// DuplicateOf, when not 0, is an earlier sending of the same lot (same
	// account, emitter and stamp) still on its way or gone: this mail was
	// queued held, as a probable DOUBLON (see doublon.go).
	DuplicateOf int64
}

// defaultResubmitWindow is the delivery lifetime's default, used until the
// daemon sets the configured one.
const defaultResubmitWindow = 72 * time.Hour

func (s *Store) resubmitWindow() time.Duration {
	if d := time.Duration(s.window.Load()); d > 0 {
		return d
	}
	return defaultResubmitWindow
}

// Fingerprint is the hash a resubmission is recognised by: SHA-256 of the
// client's bytes (without the Received: line the relay prepends).
func Fingerprint(b []byte) string { return hashOf(b) }

// resubmitted looks, inside the submission's own write transaction (so that
// two identical submissions at once cannot both be queued), for a mail of
// the same account and Message-ID accepted since since. first is one with
// the same bytes (a resubmission); otherwise reused is one with other bytes.
// Mail without a Message-ID or fingerprint is never a resubmission. A
// resubmission also has the first mail's sender and recipients, and the
// first mail is still going out or gone: a dropped or bounced one does not
// count, since answering 250 and queueing nothing would lose the mail the
// client is trying again.
func resubmitted(tx *sql.Tx, env Envelope, since time.Time) (first, reused int64, err error) {
	if env.MessageID == "" || env.Hash == "" {
		return 0, 0, nil
	}
	rcpts, err := json.Marshal(env.To)
	if err != nil {
		return 0, 0, err
	}
	// "message_id != ''" lets SQLite use the partial index messages_resubmit
	// (a bound "= ?" does not imply it): without it, every submission scanned
	// the whole queue inside the committer.
	rows, err := tx.Query(`SELECT id, hash, mail_from = ? AND rcpts = ? FROM messages
		WHERE account = ? AND message_id = ? AND message_id != '' AND received_at >= ? AND state NOT IN (?, ?) ORDER BY id`,
		env.From, string(rcpts), env.Account, env.MessageID, ms(since), Dropped, Bounced)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var h string
		var sameEnvelope bool
		if err := rows.Scan(&id, &h, &sameEnvelope); err != nil {
			return 0, 0, err
		}
		if h == env.Hash && sameEnvelope {
			return id, 0, nil
		}
		if reused == 0 {
			reused = id
		}
	}
	return 0, reused, rows.Err()
}
