package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"time"
)

// Commits reports how many transactions the committer has run.
func Commits(s *Store) int64 { return s.commits.Load() }

// SetNow replaces the store's clock.
func SetNow(s *Store, now func() time.Time) { s.now = now }

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

// CreateV3 creates, in dir, a store as sesam-relay wrote it at schema
// version 3 (before the DOUBLON guard's index), holding one sent lot of
// account for emitter and stamp. It returns the lot's mail id.
func CreateV3(dir, account, emitter, stamp string) (int64, error) {
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, dbFile), false))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	now := time.Now().UnixMilli()
	if _, err := db.Exec(schema + version2 + version3 + `PRAGMA user_version = 3;
		INSERT INTO bodies(id, data) VALUES (1, 'x');`); err != nil {
		return 0, err
	}
	if _, err := db.Exec(`INSERT INTO messages(id, account, mail_from, rcpts, message_id, size, body_id, state, received_at, done_at)
		VALUES (1, ?, 'a@b', '["01422@422.01.rss.fr"]', '<old-lot@billing>', 1, 1, 'sent', ?, ?)`, account, now, now); err != nil {
		return 0, err
	}
	_, err = db.Exec(`INSERT INTO lots(msg_id, account, fund, emitter, stamp) VALUES (1, ?, '01422', ?, ?)`, account, emitter, stamp)
	return 1, err
}

// DoublonPlan is SQLite's plan for the DOUBLON guard's lookup.
func DoublonPlan(s *Store) (string, error) {
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+firstSendingQuery, "dupont", "12345678901234", "2026112309000000001", 0, duplicatePrefix, duplicatePrefix)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "\n"), rows.Err()
}

// AsIfOlderRules makes the ledger look built by older rules that read
// every ARL as positive, as sesam-relay 0.1.0 did.
func AsIfOlderRules(s *Store) error {
	return s.writeWait(context.Background(), func(tx *sql.Tx) error {
		for _, q := range []string{
			"UPDATE lot_returns SET class = 'arl-positive' WHERE class LIKE 'arl-%'",
			"UPDATE mailbox SET class = 'arl-positive' WHERE class LIKE 'arl-%'",
			"INSERT INTO ledger_rules (id, fingerprint) VALUES (1, 'sesam 1') ON CONFLICT (id) DO UPDATE SET fingerprint = 'sesam 1'",
		} {
			if _, err := tx.Exec(q); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteWait is the store's writeWait, for tests of the committer.
func WriteWait(s *Store, ctx context.Context, fn func(*sql.Tx) error) error {
	return s.writeWait(ctx, fn)
}

// WriteAsync is the store's writeAsync.
func WriteAsync(s *Store, fn func(*sql.Tx) error) *Pending { return s.writeAsync(fn) }

// QueueRoom is how many requests the committer's queue holds.
func QueueRoom(s *Store) int { return cap(s.reqs) }

// SetRebuild makes RebuildLedger write n mails at a time and call hook
// after each of its writes; an error from hook stops it there, as a kill would.
func SetRebuild(s *Store, n int, hook func(step int) error) {
	s.rebuildBatch, s.rebuildHook = n, hook
}

// Seal and Unseal are the store's body sealing, for the fuzzer.
func Seal(s *Store, body []byte) ([]byte, string, error) { return s.seal(body) }
func Unseal(s *Store, data []byte, key string) ([]byte, error) {
	return s.unseal(data, key)
}

// SealText and OpenText are the sealed columns' sealing and opening.
func SealText(s *Store, v string) []byte          { b, _ := s.sealText(v).([]byte); return b }
func OpenText(s *Store, v []byte) (string, error) { return s.openText(v) }
