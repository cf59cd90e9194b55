package store

import (
	"database/sql"
	"fmt"
)

// schema is version 1 (version2 to version5 add to it). Bodies live in their own table so that listing the
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
	origin      TEXT NOT NULL,           -- fetched, imported, bounce, notice
	received_at INTEGER NOT NULL,
	subject     TEXT NOT NULL DEFAULT '',
	from_addr   TEXT NOT NULL DEFAULT '',
	message_id  TEXT NOT NULL DEFAULT '',
	size        INTEGER NOT NULL,        -- bytes as stored
	wire_size   INTEGER NOT NULL,        -- bytes as POP3 sends them (bare LF made CRLF)
	hash        TEXT NOT NULL,           -- SHA-256 of the bytes: the same mail is kept once
	body_id     INTEGER NOT NULL REFERENCES bodies(id),
	ref_msg     INTEGER NOT NULL DEFAULT 0,
	folder      TEXT NOT NULL DEFAULT '',
	uidvalidity INTEGER NOT NULL DEFAULT 0,
	uid         INTEGER NOT NULL DEFAULT 0,
	upstream_deleted INTEGER NOT NULL DEFAULT 0,
	class       TEXT NOT NULL DEFAULT '', -- what sesam.Classify made of it
	class_why   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS mailbox_dedupe ON mailbox(account, hash);
CREATE INDEX IF NOT EXISTS mailbox_upstream ON mailbox(account, folder, uidvalidity, upstream_deleted);
-- What each local login has done with each message: a DELE hides it from
-- that login only.
CREATE TABLE IF NOT EXISTS views (
	login        TEXT NOT NULL,
	mailbox_id   INTEGER NOT NULL,
	retrieved_at INTEGER NOT NULL DEFAULT 0,
	deleted_at   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (login, mailbox_id)
);
CREATE INDEX IF NOT EXISTS views_mailbox ON views(mailbox_id);
CREATE TABLE IF NOT EXISTS imap_sync (
	account     TEXT NOT NULL,
	folder      TEXT NOT NULL,
	uidvalidity INTEGER NOT NULL,
	last_uid    INTEGER NOT NULL,
	PRIMARY KEY (account, folder)
);
-- The lot ledger: each lot mail, and each return matched to it.
CREATE TABLE IF NOT EXISTS lots (
	msg_id    INTEGER PRIMARY KEY,       -- the queued message
	account   TEXT NOT NULL,
	fund      TEXT NOT NULL DEFAULT '',
	emitter   TEXT NOT NULL DEFAULT '',
	stamp     TEXT NOT NULL DEFAULT '',  -- the Subject's 19 digits
	lot_at    INTEGER NOT NULL DEFAULT 0,
	invoices  INTEGER NOT NULL DEFAULT 0,
	test      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS lot_returns (
	lot_id     INTEGER NOT NULL,
	mailbox_id INTEGER NOT NULL,
	class      TEXT NOT NULL,
	certain    INTEGER NOT NULL,
	how        TEXT NOT NULL,            -- why this return is this lot's
	detail     TEXT NOT NULL DEFAULT '', -- reject reasons
	PRIMARY KEY (lot_id, mailbox_id)
);
-- Warnings already given, so that each is given once.
CREATE TABLE IF NOT EXISTS warnings (
	lot_id  INTEGER NOT NULL,
	kind    TEXT NOT NULL,
	at      INTEGER NOT NULL,
	text    TEXT NOT NULL,
	PRIMARY KEY (lot_id, kind)
);
CREATE TABLE IF NOT EXISTS imap_health (
	account       TEXT PRIMARY KEY,
	last_success  INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	last_error_at INTEGER NOT NULL DEFAULT 0,
	failing_since INTEGER NOT NULL DEFAULT 0,
	fetched_total INTEGER NOT NULL DEFAULT 0,
	last_fetched  INTEGER NOT NULL DEFAULT 0,
	note          TEXT NOT NULL DEFAULT '',
	note_at       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS upstream (
	account       TEXT PRIMARY KEY,
	last_success  INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	last_error_at INTEGER NOT NULL DEFAULT 0,
	failing_since INTEGER NOT NULL DEFAULT 0,
	paused_until  INTEGER NOT NULL DEFAULT 0
);
`

// version2 remembers each queued mail's fingerprint, so that a client's
// resubmission of a mail already accepted is recognised (see Enqueue), and
// adds the table the delivery probe writes to (see Probe).
const version2 = `
ALTER TABLE messages ADD COLUMN hash TEXT NOT NULL DEFAULT ''; -- SHA-256 of the client's bytes, Received: excluded
CREATE INDEX IF NOT EXISTS messages_resubmit ON messages(account, message_id) WHERE message_id != '';
CREATE TABLE IF NOT EXISTS probe (
	id INTEGER PRIMARY KEY,
	at INTEGER NOT NULL
);
`

// version3 adds the poison mark: which fetched messages were being read
// when the process stopped (see classifying.go).
const version3 = `
CREATE TABLE IF NOT EXISTS classifying (
	account     TEXT NOT NULL,
	folder      TEXT NOT NULL,
	uidvalidity INTEGER NOT NULL,
	lo          INTEGER NOT NULL,       -- the batch's UIDs, lo..hi
	hi          INTEGER NOT NULL,
	single      INTEGER NOT NULL,       -- 1: one message at a time, the one at lo
	PRIMARY KEY (account, folder)
);
`

// version4 indexes the lot ledger by lot, for the DOUBLON guard's lookup
// at each submission (see doublon.go), which runs inside the committer.
const version4 = `
CREATE INDEX IF NOT EXISTS lots_doublon ON lots(account, emitter, stamp);
`

// version5 is the ledger of issue 11: what each return said beyond its
// class (invoice outcomes, the ARL's text), a lookup by stamp, the notices
// about an account (collection blocked or back, the daily summary), the
// notices mailed to the practitioner (so that their copy coming back is
// recognised), and whether collection is blocked by the provider.
const version5 = `
ALTER TABLE lot_returns ADD COLUMN facts TEXT NOT NULL DEFAULT ''; -- JSON of sesam.ReturnFacts
CREATE INDEX IF NOT EXISTS lots_stamp ON lots(account, stamp);
CREATE INDEX IF NOT EXISTS lot_returns_mailbox ON lot_returns(mailbox_id);
CREATE TABLE IF NOT EXISTS account_notices (
	account TEXT NOT NULL,
	kind    TEXT NOT NULL,               -- sesam.NoticeKind with its key, e.g. outage:1764000000000
	at      INTEGER NOT NULL,
	text    TEXT NOT NULL,
	PRIMARY KEY (account, kind)
);
CREATE TABLE IF NOT EXISTS own_notices (
	message_id TEXT PRIMARY KEY,         -- random: nobody can make a mail pass for one
	account    TEXT NOT NULL,
	logins     TEXT NOT NULL,            -- JSON: the logins it is hidden from when it comes back
	at         INTEGER NOT NULL
);
ALTER TABLE imap_health ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
`

// version6 remembers which rules built the ledger (see rules.go), so that
// an upgrade that changes them rebuilds it once.
const version6 = `
CREATE TABLE IF NOT EXISTS ledger_rules (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	fingerprint TEXT NOT NULL            -- sesam.RulesVersion and the config's [[sesam.rule]]
);
`

// version7 gives the ledger's rebuild tables of its own (see
// RebuildLedger): it goes in batches, and the live ledger stays whole
// until the last one puts these in its place.
const version7 = `
CREATE TABLE IF NOT EXISTS rebuild_lots (
	msg_id    INTEGER PRIMARY KEY,
	account   TEXT NOT NULL,
	fund      TEXT NOT NULL DEFAULT '',
	emitter   TEXT NOT NULL DEFAULT '',
	stamp     TEXT NOT NULL DEFAULT '',
	lot_at    INTEGER NOT NULL DEFAULT 0,
	invoices  INTEGER NOT NULL DEFAULT 0,
	test      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rebuild_lots_stamp ON rebuild_lots(account, stamp);
CREATE TABLE IF NOT EXISTS rebuild_returns (
	lot_id     INTEGER NOT NULL,
	mailbox_id INTEGER NOT NULL,
	class      TEXT NOT NULL,
	certain    INTEGER NOT NULL,
	how        TEXT NOT NULL,
	detail     TEXT NOT NULL DEFAULT '',
	facts      TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (lot_id, mailbox_id)
);
`

// version8 keeps the kind of each link's last failure (upstream.Kind), so
// that the warner and a status read with the daemon down know a closed
// access from a refused password and from this box's own fault.
const version8 = `
ALTER TABLE upstream ADD COLUMN failure TEXT NOT NULL DEFAULT '';
ALTER TABLE imap_health ADD COLUMN failure TEXT NOT NULL DEFAULT '';
`

// version9 names, beside each body, the key that sealed it (Keys; "" for
// a body still in clear, written before encryption: Reseal seals them).
const version9 = `
ALTER TABLE bodies ADD COLUMN sealed TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS bodies_sealed ON bodies(sealed);
`

// version10 seals the columns that may carry a patient's or a lot's data
// (see text.go): a lot is then looked up by a keyed hash of its stamp and
// of its day, not by the stamp itself. Until a store is first opened with
// keys, the lookups are the values in clear.
const version10 = `
ALTER TABLE lots ADD COLUMN stamp_key TEXT NOT NULL DEFAULT '';
ALTER TABLE lots ADD COLUMN day_key TEXT NOT NULL DEFAULT '';
UPDATE lots SET stamp_key = stamp, day_key = substr(stamp, 1, 8);
ALTER TABLE rebuild_lots ADD COLUMN stamp_key TEXT NOT NULL DEFAULT '';
ALTER TABLE rebuild_lots ADD COLUMN day_key TEXT NOT NULL DEFAULT '';
UPDATE rebuild_lots SET stamp_key = stamp, day_key = substr(stamp, 1, 8);
DROP INDEX IF EXISTS lots_doublon;
DROP INDEX IF EXISTS lots_stamp;
DROP INDEX IF EXISTS rebuild_lots_stamp;
CREATE INDEX lots_doublon ON lots(account, emitter, stamp_key);
CREATE INDEX lots_stamp ON lots(account, stamp_key);
CREATE INDEX lots_day ON lots(account, day_key);
CREATE INDEX rebuild_lots_stamp ON rebuild_lots(account, stamp_key);
CREATE INDEX rebuild_lots_day ON rebuild_lots(account, day_key);
CREATE TABLE IF NOT EXISTS sealing (
	name  TEXT PRIMARY KEY,              -- the lookup key (sealed); the key the columns were last sealed to
	value BLOB NOT NULL
);
`

// current is the schema version this sesam-relay writes.
const current = 10

// migrate brings the store to the current version, one step per version,
// each in its own transaction: a store from an older sesam-relay opens.
func migrate(db *sql.DB) error {
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > current {
		return fmt.Errorf("the queue has schema version %d, newer than this sesam-relay knows (%d): install the newer version again", v, current)
	}
	steps := []string{schema, version2, version3, version4, version5, version6, version7, version8, version9, version10}
	for ; v < current; v++ {
		if err := step(db, steps[v], v+1); err != nil {
			return fmt.Errorf("upgrading the queue's schema to version %d: %w", v+1, err)
		}
	}
	return nil
}

func step(db *sql.DB, ddl string, to int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(ddl); err != nil {
		return err
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", to)); err != nil {
		return err
	}
	return tx.Commit()
}
