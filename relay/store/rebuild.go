package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// rebuildBatch is how many stored mails one write of a rebuild handles:
// between two, the committer serves submissions, which get their 250.
const rebuildBatch = 200

// RebuildLedger forgets the ledger and builds it again from the stored
// mail: every queued lot, then every collected message, reclassified with
// the current rules and matched in arrival order. Warnings already given are
// kept, so a rebuild never notifies twice. It returns the counts.
//
// It goes in batches of rebuildBatch mails, each read and classified here,
// outside any transaction, then written in one short write into the
// rebuild's own tables (rebuild_lots, rebuild_returns): meanwhile the live
// ledger stays whole, so the DOUBLON guard and the warner never see a half
// ledger. Mail stored meanwhile (higher ids) is taken in further batches.
// The last write, once no mail is left unread, puts the rebuilt tables in
// place of the live ones and records the rules that built them (see
// RebuildIfRulesChanged), in one transaction: a rebuild killed before it
// leaves the old ledger and the old rules' mark, and a restart redoes it.
func (s *Store) RebuildLedger(ctx context.Context) (lots, matched int, err error) {
	s.rebuilding.Lock()
	defer s.rebuilding.Unlock()
	rules := s.currentRules()
	batch := rebuildBatch
	if s.rebuildBatch > 0 {
		batch = s.rebuildBatch
	}
	step := 0
	done := func() error {
		step++
		if s.rebuildHook != nil {
			return s.rebuildHook(step)
		}
		return nil
	}
	if err := s.writeWait(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec("DELETE FROM rebuild_returns; DELETE FROM rebuild_lots")
		return err
	}); err != nil {
		return 0, 0, err
	}
	var lastMsg, lastMail int64
	for {
		// The lots first, then the returns, as they came. A return is
		// matched only once every lot stored before it is recorded: the
		// returns read are those stored before the lots were found all read.
		var upTo int64
		for {
			if err := s.r.QueryRow(lastCollected, Fetched, Imported).Scan(&upTo); err != nil {
				return 0, 0, err
			}
			ins, err := s.readLots(lastMsg, batch)
			if err != nil || len(ins) == 0 {
				if err != nil {
					return 0, 0, err
				}
				break
			}
			if err := s.writeWait(ctx, func(tx *sql.Tx) error {
				for _, m := range ins {
					s.recordLot(tx, rebuildLedger, m.id, m.account, m.out)
				}
				return nil
			}); err != nil {
				return 0, 0, err
			}
			lastMsg = ins[len(ins)-1].id
			if err := done(); err != nil {
				return 0, 0, err
			}
		}
		for {
			ins, err := s.readReturns(lastMail, upTo, batch, rules)
			if err != nil || len(ins) == 0 {
				if err != nil {
					return 0, 0, err
				}
				break
			}
			if err := s.writeWait(ctx, func(tx *sql.Tx) error {
				for _, m := range ins {
					if _, own := ownNotice(tx, m.account, m.messageID); own {
						tx.Exec("UPDATE mailbox SET class = ?, class_why = ? WHERE id = ?", OwnNoticeClass, ownNoticeWhy, m.id)
						continue
					}
					tx.Exec("UPDATE mailbox SET class = ?, class_why = ? WHERE id = ?", string(m.in.Class), m.in.Why, m.id)
					s.matchReturn(tx, rebuildLedger, m.account, m.id, m.in)
				}
				return nil
			}); err != nil {
				return 0, 0, err
			}
			lastMail = ins[len(ins)-1].id
			if err := done(); err != nil {
				return 0, 0, err
			}
		}
		more := false
		err := s.writeWait(ctx, func(tx *sql.Tx) error {
			var maxMsg, maxMail int64
			if err := tx.QueryRow("SELECT COALESCE(MAX(id), 0) FROM messages").Scan(&maxMsg); err != nil {
				return err
			}
			if err := tx.QueryRow(lastCollected, Fetched, Imported).Scan(&maxMail); err != nil {
				return err
			}
			if more = maxMsg > lastMsg || maxMail > lastMail; more {
				return nil // stored since: read those first
			}
			for _, q := range []string{
				"DELETE FROM lot_returns",
				"DELETE FROM lots",
				// Mail purged during the rebuild leaves its rows behind.
				`INSERT INTO lots(msg_id, account, fund, emitter, stamp, stamp_key, day_key, lot_at, invoices, test)
					SELECT msg_id, account, fund, emitter, stamp, stamp_key, day_key, lot_at, invoices, test FROM rebuild_lots
					WHERE msg_id IN (SELECT id FROM messages)`,
				`INSERT INTO lot_returns(lot_id, mailbox_id, class, certain, how, detail, facts)
					SELECT lot_id, mailbox_id, class, certain, how, detail, facts FROM rebuild_returns
					WHERE lot_id IN (SELECT msg_id FROM lots) AND mailbox_id IN (SELECT id FROM mailbox)`,
				"DELETE FROM rebuild_returns",
				"DELETE FROM rebuild_lots",
			} {
				if _, err := tx.Exec(q); err != nil {
					return err
				}
			}
			if _, err := tx.Exec("INSERT INTO ledger_rules (id, fingerprint) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint", rulesFingerprint(rules)); err != nil {
				return err
			}
			if err := tx.QueryRow("SELECT COUNT(*) FROM lots").Scan(&lots); err != nil {
				return err
			}
			return tx.QueryRow("SELECT COUNT(*) FROM lot_returns").Scan(&matched)
		})
		if err != nil {
			return 0, 0, err
		}
		if !more {
			s.ledgerChanged()
			return lots, matched, nil
		}
	}
}

// ledgerInput is one stored mail, read for the rebuild.
type ledgerInput struct {
	id        int64
	account   string
	messageID string
	out       sesam.Outbound // a queued message
	in        sesam.Inbound  // a collected one
}

// readLots reads and inspects the queued mail after id after, at most n:
// the lots among them, and the last id read (a lot or not) as the last one.
func (s *Store) readLots(after int64, n int) ([]ledgerInput, error) {
	rows, err := s.r.Query("SELECT m.id, m.account, m.rcpts, b.data, b.sealed FROM messages m JOIN bodies b ON b.id = m.body_id WHERE m.id > ? ORDER BY m.id LIMIT ?", after, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledgerInput
	for rows.Next() {
		var m ledgerInput
		var rcpts string
		var body []byte
		var key string
		var to []string
		if err := rows.Scan(&m.id, &m.account, &rcpts, &body, &key); err != nil {
			return nil, err
		}
		if body, err = s.unseal(body, key); err != nil {
			return nil, fmt.Errorf("message %d: %w", m.id, err)
		}
		json.Unmarshal([]byte(rcpts), &to)
		m.out = sesam.InspectOutbound(body, to) // recordLot skips what is no lot
		out = append(out, m)
	}
	return out, rows.Err()
}

// lastCollected is the id of the last collected mail.
const lastCollected = "SELECT COALESCE(MAX(id), 0) FROM mailbox WHERE origin IN (?, ?)"

// readReturns reads and classifies the collected mail after id after, up
// to id upTo, at most n.
func (s *Store) readReturns(after, upTo int64, n int, rules []sesam.Rule) ([]ledgerInput, error) {
	rows, err := s.r.Query("SELECT x.id, x.account, x.message_id, b.data, b.sealed FROM mailbox x JOIN bodies b ON b.id = x.body_id WHERE x.origin IN (?, ?) AND x.id > ? AND x.id <= ? ORDER BY x.id LIMIT ?", Fetched, Imported, after, upTo, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledgerInput
	for rows.Next() {
		var m ledgerInput
		var body []byte
		var key string
		if err := rows.Scan(&m.id, &m.account, &m.messageID, &body, &key); err != nil {
			return nil, err
		}
		if body, err = s.unseal(body, key); err != nil {
			// A damaged body is still a return: unknown, to look at.
			m.in = sesam.Inbound{Class: sesam.Unknown, Why: "the stored body does not open: " + err.Error()}
		} else {
			m.in = sesam.Classify(body, rules)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
