package store

import (
	"database/sql"
	"time"
)

// Health is what the technician sees of one link to a provider: an
// account's SMTP (status' "provider" line), or its IMAP (inside
// FetchHealth). Absent times are absent from the JSON.
type Health struct {
	Account      string    `json:"account"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"` // zero while the provider works
	// Failure is the kind of the last failure while failing (upstream.Kind:
	// "temporary", "credentials refused", "access closed", "local").
	Failure     string    `json:"failure,omitempty"`
	PausedUntil time.Time `json:"paused_until,omitzero"` // after a refused login
	// NextTry is the real next attempt while failing (for IMAP, the next
	// poll, failing or not), and NextReason why then. Not persisted.
	NextTry    time.Time `json:"next_attempt,omitzero"`
	NextReason string    `json:"next_reason,omitempty"`
}

// SetHealthAsync records an account's upstream health. It does not wait: health
// is advice for the technician, not a promise to a client.
func (s *Store) SetHealthAsync(h Health) *Pending {
	return s.writeAsync(func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO upstream(account, last_success, last_error, last_error_at, failing_since, paused_until, failure)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(account) DO UPDATE SET last_success = excluded.last_success, last_error = excluded.last_error,
			last_error_at = excluded.last_error_at, failing_since = excluded.failing_since, paused_until = excluded.paused_until,
			failure = excluded.failure`,
			h.Account, ms(h.LastSuccess), h.LastError, ms(h.LastErrorAt), ms(h.FailingSince), ms(h.PausedUntil), h.Failure)
		return err
	})
}

// Health returns the recorded health of an account (zero if none yet).
func (s *Store) Health(account string) (Health, error) {
	h := Health{Account: account}
	var ls, lea, fs, pu int64
	err := s.r.QueryRow("SELECT last_success, last_error, last_error_at, failing_since, paused_until, failure FROM upstream WHERE account = ?", account).
		Scan(&ls, &h.LastError, &lea, &fs, &pu, &h.Failure)
	if err == sql.ErrNoRows {
		return h, nil
	}
	h.LastSuccess, h.LastErrorAt, h.FailingSince, h.PausedUntil = fromMS(ls), fromMS(lea), fromMS(fs), fromMS(pu)
	return h, err
}

// FetchHealth is what the technician sees of an account's IMAP polling.
type FetchHealth struct {
	Health
	// Blocked: the provider closed access or refused the password, so
	// returns wait there until a person acts (the outage notice).
	Blocked      bool      `json:"blocked,omitempty"`
	FetchedTotal int64     `json:"fetched_total"`
	LastFetched  int       `json:"last_fetched"` // in the last successful poll
	Note         string    `json:"note,omitempty"`
	NoteAt       time.Time `json:"note_at,omitzero"` // e.g. a UIDVALIDITY change
}

// SetFetchHealthAsync records an account's polling health, without waiting.
func (s *Store) SetFetchHealthAsync(h FetchHealth) *Pending {
	return s.writeAsync(func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO imap_health(account, last_success, last_error, last_error_at, failing_since, fetched_total, last_fetched, note, note_at, blocked, failure)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(account) DO UPDATE SET last_success = excluded.last_success, last_error = excluded.last_error,
			last_error_at = excluded.last_error_at, failing_since = excluded.failing_since, fetched_total = excluded.fetched_total,
			last_fetched = excluded.last_fetched, note = excluded.note, note_at = excluded.note_at, blocked = excluded.blocked,
			failure = excluded.failure`,
			h.Account, ms(h.LastSuccess), h.LastError, ms(h.LastErrorAt), ms(h.FailingSince), h.FetchedTotal, h.LastFetched, h.Note, ms(h.NoteAt), h.Blocked, h.Failure)
		return err
	})
}

// FetchHealth returns the recorded polling health of an account.
func (s *Store) FetchHealth(account string) (FetchHealth, error) {
	h := FetchHealth{Health: Health{Account: account}}
	var ls, lea, fs, na int64
	err := s.r.QueryRow("SELECT last_success, last_error, last_error_at, failing_since, fetched_total, last_fetched, note, note_at, blocked, failure FROM imap_health WHERE account = ?", account).
		Scan(&ls, &h.LastError, &lea, &fs, &h.FetchedTotal, &h.LastFetched, &h.Note, &na, &h.Blocked, &h.Failure)
	if err == sql.ErrNoRows {
		return h, nil
	}
	h.LastSuccess, h.LastErrorAt, h.FailingSince, h.NoteAt = fromMS(ls), fromMS(lea), fromMS(fs), fromMS(na)
	return h, err
}
