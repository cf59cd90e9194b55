package store

import (
	"database/sql"
	"fmt"
)

// schema is version 1. Bodies live in their own table so that listing the
// queue never reads them, and so that one function pair (putBody/Body)
// writes and reads every body: encryption at rest goes there.
const schema = `
CREATE TABLE IF NOT EXISTS bodies (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
	id           INTEGER PRIMARY KEY,
	account      TEXT NOT NULL,
	mail_from    TEXT NOT NULL,
	rcpts        TEXT NOT NULL,          -- JSON array
	subject      TEXT NOT NULL DEFAULT '',
	message_id   TEXT NOT NULL DEFAULT '',
	size         INTEGER NOT NULL,
	client       TEXT NOT NULL DEFAULT '',
	body_id      INTEGER NOT NULL REFERENCES bodies(id),
	state        TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	received_at  INTEGER NOT NULL,
	next_attempt INTEGER NOT NULL DEFAULT 0,
	last_attempt INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	hold_reason  TEXT NOT NULL DEFAULT '',
	done_at      INTEGER NOT NULL DEFAULT 0,
	reply        TEXT NOT NULL DEFAULT '',
	notice_sent  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_due ON messages(account, state, next_attempt);
CREATE TABLE IF NOT EXISTS events (
	id      INTEGER PRIMARY KEY,
	msg_id  INTEGER NOT NULL,
	at      INTEGER NOT NULL,
	text    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_msg ON events(msg_id);
CREATE TABLE IF NOT EXISTS mailbox (
	id          INTEGER PRIMARY KEY,
	account     TEXT NOT NULL,
	origin      TEXT NOT NULL,           -- bounce, notice
	received_at INTEGER NOT NULL,
	subject     TEXT NOT NULL DEFAULT '',
	size        INTEGER NOT NULL,
	body_id     INTEGER NOT NULL REFERENCES bodies(id),
	ref_msg     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS mailbox_account ON mailbox(account);
CREATE TABLE IF NOT EXISTS upstream (
	account       TEXT PRIMARY KEY,
	last_success  INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	last_error_at INTEGER NOT NULL DEFAULT 0,
	failing_since INTEGER NOT NULL DEFAULT 0,
	paused_until  INTEGER NOT NULL DEFAULT 0
);
`

func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch v {
	case 0:
		if _, err := db.Exec(schema + "PRAGMA user_version = 1;"); err != nil {
			return fmt.Errorf("creating the schema: %w", err)
		}
	case 1:
	default:
		return fmt.Errorf("the queue has schema version %d, newer than this sesam-relay knows (1): install the newer version again", v)
	}
	return nil
}
