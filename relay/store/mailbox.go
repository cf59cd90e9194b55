package store

import (
	"database/sql"
	"time"
)

// MailboxEntry is a message waiting in an account's local mailbox: for now
// the relay's own bounces and notices, which the POP3 server will serve.
type MailboxEntry struct {
	ID       int64
	Account  string
	Origin   string // bounce, notice
	Received time.Time
	Subject  string
	Size     int64
	RefMsg   int64 // the queued message it is about
}

func addMail(tx *sql.Tx, account, origin, subject string, body []byte, ref int64, now time.Time) error {
	bid, err := putBody(tx, body)
	if err != nil {
		return err
	}
	_, err = tx.Exec("INSERT INTO mailbox(account, origin, received_at, subject, size, body_id, ref_msg) VALUES (?, ?, ?, ?, ?, ?, ?)",
		account, origin, ms(now), subject, len(body), bid, ref)
	return err
}

// Mailbox lists an account's local mailbox, oldest first.
func (s *Store) Mailbox(account string) ([]MailboxEntry, error) {
	rows, err := s.r.Query("SELECT id, account, origin, received_at, subject, size, ref_msg FROM mailbox WHERE account = ? ORDER BY id", account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MailboxEntry
	for rows.Next() {
		var e MailboxEntry
		var at int64
		if err := rows.Scan(&e.ID, &e.Account, &e.Origin, &at, &e.Subject, &e.Size, &e.RefMsg); err != nil {
			return nil, err
		}
		e.Received = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// MailboxBody returns a local mailbox message's bytes.
func (s *Store) MailboxBody(id int64) ([]byte, error) { return readBody(s.r, "mailbox", id) }
