package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// The ledger's writes ride in the transaction of the mail they are about,
// and their errors are ignored: a ledger that cannot be written must never
// keep a lot from being accepted or a return from being stored (SQLite
// rolls back only the failed statement).

// recordLot notes a lot mail at acceptance.
func recordLot(tx *sql.Tx, id int64, account string, o sesam.Outbound) {
	if !o.Lot {
		return
	}
	tx.Exec(`INSERT OR IGNORE INTO lots(msg_id, account, fund, emitter, stamp, lot_at, invoices, test) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		id, account, o.Fund.String(), o.Subject.Emitter, o.Subject.Stamp, ms(o.Subject.At), o.Subject.Invoices, o.Test)
}

type candidate struct {
	id      int64
	stamp   string
	emitter string
	lotAt   time.Time
	msgID   string
}

// matchReturn ties a classified return to its lot. The lot number is inside
// the fund's encryption, so matching uses what both sides carry:
//   - certain: a bounce naming the lot's Message-ID; a return quoting the
//     lot's 19-digit stamp;
//   - probable: a NOEMIE lot date (080) equal to the stamp's date, for the
//     same emitter; else the oldest delivered lot still waiting for its
//     answer (funds answer in order).
func matchReturn(tx *sql.Tx, account string, mailboxID int64, body []byte, in sesam.Inbound) {
	if in.Class == sesam.Unknown || in.Class == sesam.ProviderNotice {
		return
	}
	detail := rejectDetail(in.Rejects)
	if in.Class == sesam.Bounce && in.OrigMessageID != "" {
		var id int64
		if tx.QueryRow("SELECT l.msg_id FROM lots l JOIN messages m ON m.id = l.msg_id WHERE l.account = ? AND m.message_id = ?", account, in.OrigMessageID).Scan(&id) == nil {
			link(tx, id, mailboxID, in.Class, true, "the report names the lot's Message-ID "+in.OrigMessageID, detail)
		}
		return
	}
	rows, err := tx.Query(`SELECT l.msg_id, l.stamp, l.emitter, l.lot_at, m.message_id FROM lots l JOIN messages m ON m.id = l.msg_id
		WHERE l.account = ? AND m.state = 'sent'
		AND NOT EXISTS (SELECT 1 FROM lot_returns r WHERE r.lot_id = l.msg_id AND r.class = ?)
		ORDER BY l.msg_id`, account, in.Class)
	if err != nil {
		return
	}
	var cands []candidate
	for rows.Next() {
		var c candidate
		var at int64
		rows.Scan(&c.id, &c.stamp, &c.emitter, &at, &c.msgID)
		c.lotAt = fromMS(at)
		cands = append(cands, c)
	}
	rows.Close()
	for _, c := range cands {
		if len(c.stamp) >= 14 && bytes.Contains(body, []byte(c.stamp)) {
			link(tx, c.id, mailboxID, in.Class, true, "the return quotes the lot's stamp "+c.stamp, detail)
			return
		}
	}
	if in.Noemie != nil {
		for _, nl := range in.Noemie.Lots {
			for _, c := range cands {
				if c.lotAt.Format("060102") == nl.Date && (in.Noemie.Recipient == "" || in.Noemie.Recipient == c.emitter) {
					link(tx, c.id, mailboxID, in.Class, false, fmt.Sprintf("NOEMIE lot %s of %s, same emitter and date as this lot", nl.Number, nl.Date), detail)
					return
				}
			}
		}
	}
	if len(cands) > 0 {
		link(tx, cands[0].id, mailboxID, in.Class, false, "the oldest delivered lot still waiting for this kind of answer", detail)
	}
}

func link(tx *sql.Tx, lot, mailboxID int64, class sesam.Class, certain bool, how, detail string) {
	tx.Exec("INSERT OR IGNORE INTO lot_returns(lot_id, mailbox_id, class, certain, how, detail) VALUES (?, ?, ?, ?, ?, ?)",
		lot, mailboxID, string(class), certain, how, detail)
}

func rejectDetail(rs []sesam.Reject) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, strings.TrimSpace(r.Code+" "+r.Label))
	}
	return strings.Join(parts, "; ")
}

// Lot is one line of the ledger.
type Lot struct {
	ID          int64 // the queued message's id
	Account     string
	Fund        string
	Emitter     string
	Stamp       string
	LotAt       time.Time
	Invoices    int
	Test        bool
	Submitted   time.Time
	QueueState  State
	DeliveredAt time.Time
	State       string // queued, deferred, held, delivered, acknowledged, rejected, bounced…
	Returns     []LotReturn
}

// LotReturn is a return matched to a lot.
type LotReturn struct {
	MailboxID int64
	Class     string
	Certain   bool
	How       string
	Detail    string
	Received  time.Time
	Subject   string
}

// Lots lists the ledger, oldest first (account "" for all).
func (s *Store) Lots(account string, since time.Time) ([]Lot, error) {
	rows, err := s.r.Query(`SELECT l.msg_id, l.account, l.fund, l.emitter, l.stamp, l.lot_at, l.invoices, l.test, m.received_at, m.state, m.done_at
		FROM lots l JOIN messages m ON m.id = l.msg_id WHERE (? = '' OR l.account = ?) AND m.received_at >= ? ORDER BY l.msg_id`,
		account, account, ms(since))
	if err != nil {
		return nil, err
	}
	var out []Lot
	for rows.Next() {
		var l Lot
		var lotAt, sub, done int64
		if err := rows.Scan(&l.ID, &l.Account, &l.Fund, &l.Emitter, &l.Stamp, &lotAt, &l.Invoices, &l.Test, &sub, &l.QueueState, &done); err != nil {
			rows.Close()
			return nil, err
		}
		l.LotAt, l.Submitted = fromMS(lotAt), fromMS(sub)
		if l.QueueState == Sent {
			l.DeliveredAt = fromMS(done)
		}
		out = append(out, l)
	}
	rows.Close()
	for i := range out {
		out[i].Returns, err = s.lotReturns(out[i].ID)
		if err != nil {
			return nil, err
		}
		out[i].State = lotState(out[i])
	}
	return out, nil
}

func (s *Store) lotReturns(id int64) ([]LotReturn, error) {
	rows, err := s.r.Query(`SELECT r.mailbox_id, r.class, r.certain, r.how, r.detail, b.received_at, b.subject
		FROM lot_returns r JOIN mailbox b ON b.id = r.mailbox_id WHERE r.lot_id = ? ORDER BY b.id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LotReturn
	for rows.Next() {
		var r LotReturn
		var at int64
		if err := rows.Scan(&r.MailboxID, &r.Class, &r.Certain, &r.How, &r.Detail, &at, &r.Subject); err != nil {
			return nil, err
		}
		r.Received = fromMS(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// lotState sums up a lot from its queue state and what came back; the most
// telling answer wins (a rejection over an acknowledgement).
func lotState(l Lot) string {
	switch l.QueueState {
	case Queued, Deferred, Sending, Held, Dropped:
		return string(l.QueueState)
	case Bounced:
		return "bounced"
	}
	state := "delivered"
	for _, r := range l.Returns {
		switch sesam.Class(r.Class) {
		case sesam.ARLNegative, sesam.NoemieReject, sesam.Bounce:
			return "rejected"
		case sesam.ARLPositive:
			state = "acknowledged"
		case sesam.NoemiePayment, sesam.NoemieWarning:
			if state == "delivered" {
				state = "returned"
			}
		}
	}
	return state
}

// Warning is a warning given about a lot.
type Warning struct {
	LotID int64
	Kind  string // undelivered, no-ack, rejected, bounced
	At    time.Time
	Text  string
}

// Warn records a warning about a lot once, and stores its notice in the
// account's mailbox visible only to the logins in `to` (every other login
// of the account gets it as already deleted). It reports false when this
// warning was given before.
func (s *Store) Warn(account string, allLogins, to []string, w Warning, notice []byte) (bool, error) {
	now := s.now()
	given := false
	err := <-s.write(func(tx *sql.Tx) error {
		res, err := tx.Exec("INSERT OR IGNORE INTO warnings(lot_id, kind, at, text) VALUES (?, ?, ?, ?)", w.LotID, w.Kind, ms(now), w.Text)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // given before
		}
		given = true
		if len(to) == 0 || notice == nil {
			return nil
		}
		id, _, err := addMail(tx, account, Origin{Kind: "warning", RefMsg: w.LotID}, notice, now, nil)
		if err != nil {
			return err
		}
		visible := map[string]bool{}
		for _, l := range to {
			visible[l] = true
		}
		for _, l := range allLogins {
			if !visible[l] {
				if _, err := tx.Exec("INSERT OR IGNORE INTO views(login, mailbox_id, deleted_at) VALUES (?, ?, ?)", l, id, ms(now)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return given, err
}

// Warnings lists the warnings given since a time, newest first.
func (s *Store) Warnings(account string, since time.Time) ([]Warning, error) {
	rows, err := s.r.Query(`SELECT w.lot_id, w.kind, w.at, w.text FROM warnings w JOIN lots l ON l.msg_id = w.lot_id
		WHERE (? = '' OR l.account = ?) AND w.at >= ? ORDER BY w.at DESC`, account, account, ms(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Warning
	for rows.Next() {
		var w Warning
		var at int64
		if err := rows.Scan(&w.LotID, &w.Kind, &at, &w.Text); err != nil {
			return nil, err
		}
		w.At = fromMS(at)
		out = append(out, w)
	}
	return out, rows.Err()
}

// RebuildLedger forgets the ledger and builds it again from the stored
// mail: every queued lot, then every collected message, reclassified with
// the current rules and matched in arrival order. Warnings already given are
// kept, so a rebuild never notifies twice. It returns the counts.
//
// The mail is read and classified first, outside the write transaction;
// the transaction only writes. Mail stored or purged in between is seen
// there (the counts and last ids differ), and the rebuild starts over.
func (s *Store) RebuildLedger(ctx context.Context) (lots, matched int, err error) {
	for try := 1; ; try++ {
		lots, matched, err = s.rebuildLedger(ctx)
		if !errors.Is(err, errMailChanged) || try == 3 {
			return lots, matched, err
		}
	}
}

var errMailChanged = errors.New("mail was stored or purged during the ledger rebuild: run it again")

// ledgerInput is one stored mail, read for the rebuild.
type ledgerInput struct {
	id      int64
	account string
	body    []byte
	out     sesam.Outbound // a queued message
	in      sesam.Inbound  // a collected one
}

// ledgerMark tells whether the mail changed between reading and writing.
const ledgerMark = `SELECT (SELECT COUNT(*) || ':' || COALESCE(MAX(id), 0) FROM messages) || '/' ||
	(SELECT COUNT(*) || ':' || COALESCE(MAX(id), 0) FROM mailbox WHERE origin IN (?, ?))`

func (s *Store) rebuildLedger(ctx context.Context) (lots, matched int, err error) {
	var mark string
	if err := s.r.QueryRow(ledgerMark, Fetched, Imported).Scan(&mark); err != nil {
		return 0, 0, err
	}
	var msgs, mails []ledgerInput
	rows, err := s.r.Query("SELECT m.id, m.account, m.rcpts, b.data FROM messages m JOIN bodies b ON b.id = m.body_id ORDER BY m.id")
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var m ledgerInput
		var rcpts string
		var to []string
		rows.Scan(&m.id, &m.account, &rcpts, &m.body)
		json.Unmarshal([]byte(rcpts), &to)
		if m.out = sesam.InspectOutbound(m.body, to); m.out.Lot {
			m.body = nil
			msgs = append(msgs, m)
		}
	}
	rows.Close()
	rows, err = s.r.Query("SELECT x.id, x.account, b.data FROM mailbox x JOIN bodies b ON b.id = x.body_id WHERE x.origin IN (?, ?) ORDER BY x.id", Fetched, Imported)
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var m ledgerInput
		rows.Scan(&m.id, &m.account, &m.body)
		m.in = s.Classify(m.body)
		mails = append(mails, m)
	}
	rows.Close()
	err = s.writeWait(ctx, func(tx *sql.Tx) error {
		var now string
		if err := tx.QueryRow(ledgerMark, Fetched, Imported).Scan(&now); err != nil {
			return err
		}
		if now != mark {
			return errMailChanged
		}
		for _, q := range []string{"DELETE FROM lot_returns", "DELETE FROM lots"} {
			if _, err := tx.Exec(q); err != nil {
				return err
			}
		}
		for _, m := range msgs {
			recordLot(tx, m.id, m.account, m.out)
		}
		for _, m := range mails {
			tx.Exec("UPDATE mailbox SET class = ?, class_why = ? WHERE id = ?", string(m.in.Class), m.in.Why, m.id)
			matchReturn(tx, m.account, m.id, m.body, m.in)
		}
		return tx.QueryRow("SELECT COUNT(*) FROM lot_returns").Scan(&matched)
	})
	return len(msgs), matched, err
}
