package store

import (
	"database/sql"
	"path/filepath"
	"time"
)

// Commits reports how many transactions the committer has run.
func (s *Store) Commits() int64 { return s.commits.Load() }

// SetNow replaces the store's clock.
func (s *Store) SetNow(now func() time.Time) { s.now = now }

// CreateV1 creates, in dir, a store as sesam-relay wrote it before schema
// version 2, holding one queued mail with Message-ID mid.
func CreateV1(dir, mid string) error {
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, dbFile), false))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(schema+`PRAGMA user_version = 1;
		INSERT INTO bodies(id, data) VALUES (1, 'x');
		INSERT INTO messages(account, mail_from, rcpts, message_id, size, body_id, state, received_at)
		VALUES ('dupont', 'a@b', '[]', ?, 1, 1, 'queued', ?);`, mid, time.Now().UnixMilli())
	return err
}

// SchemaV1 is the schema an installed relay of version 1 holds.
const SchemaV1 = schema + "PRAGMA user_version = 1;"
