package store

import (
	"context"
	"database/sql"
	"errors"
)

// The poison mark. Reading a fetched message (sesam.Classify) happens
// outside any transaction, after the FETCH and before the write; if reading
// one message kills the process (out of memory, a bug), a restart would
// fetch the same message and die again, once per restart, one provider
// login each time, until the provider blocks the account. So a fetch batch
// is marked durably before any of its messages is read, and the mark is
// cleared once the whole batch is stored: a mark found at start-up names the batch
// that was being read when the process stopped.

// Classifying is a poison mark: the UIDs of one folder that were being read.
type Classifying struct {
	UIDValidity uint32
	Lo, Hi      uint32
	Single      bool // one message at a time: the one at Lo
}

// MarkClassifying records, durably, that the UIDs lo..hi of a folder are
// about to be read; single says it is one message, handled alone after a
// stop. It returns once the mark is durable: only then may the first of
// them be read.
func (s *Store) MarkClassifying(ctx context.Context, account, folder string, c Classifying) error {
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO classifying(account, folder, uidvalidity, lo, hi, single) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(account, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, lo = excluded.lo, hi = excluded.hi, single = excluded.single`,
			account, folder, c.UIDValidity, c.Lo, c.Hi, c.Single)
		return err
	})
}

// DoneClassifying clears a folder's mark once every message of its batch is
// stored (or deliberately left upstream), and moves the sync position to the
// batch's last UID: messages left at the provider are not asked for again.
// A mark left by a crash (or by a failed write here) only makes the next
// start go through what remains of the batch one message at a time.
func (s *Store) DoneClassifying(ctx context.Context, account, folder string, uidValidity, hi uint32) error {
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec("DELETE FROM classifying WHERE account = ? AND folder = ?", account, folder); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE imap_sync SET last_uid = MAX(last_uid, ?) WHERE account = ? AND folder = ? AND uidvalidity = ?`,
			hi, account, folder, uidValidity)
		return err
	})
}

// MarkFound returns a folder's poison mark, if the process stopped while
// reading one of its batches.
func (s *Store) MarkFound(account, folder string) (Classifying, bool, error) {
	var c Classifying
	err := s.r.QueryRow("SELECT uidvalidity, lo, hi, single FROM classifying WHERE account = ? AND folder = ?", account, folder).
		Scan(&c.UIDValidity, &c.Lo, &c.Hi, &c.Single)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	return c, err == nil, err
}
