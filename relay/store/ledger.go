package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// The ledger's writes ride in the transaction of the mail they are about,
// and their errors are ignored: a ledger that cannot be written must never
// keep a lot from being accepted or a return from being stored (SQLite
// rolls back only the failed statement).

// ledgerTables names the tables a ledger is written to: the live ones, or
// the rebuild's (see RebuildLedger), which become the live ones at its end.
type ledgerTables struct{ lots, returns string }

var (
	liveLedger    = ledgerTables{"lots", "lot_returns"}
	rebuildLedger = ledgerTables{"rebuild_lots", "rebuild_returns"}
)

// sql puts the tables' names in a query written with {lots} and {returns}.
func (t ledgerTables) sql(query string) string {
	return strings.NewReplacer("{lots}", t.lots, "{returns}", t.returns).Replace(query)
}

// recordLot notes a lot mail at acceptance (or in a rebuild).
func (s *Store) recordLot(tx *sql.Tx, t ledgerTables, id int64, account string, o sesam.Outbound) {
	if !o.Lot {
		return
	}
	tx.Exec(`INSERT OR IGNORE INTO `+t.lots+`(msg_id, account, fund, emitter, stamp, stamp_key, day_key, lot_at, invoices, test) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, account, o.Fund.String(), o.Subject.Emitter, s.sealText(o.Subject.Stamp), s.lookup(stampLookup, o.Subject.Stamp), s.lookup(dayLookup, o.Subject.Stamp),
		ms(o.Subject.At), o.Subject.Invoices, o.Test)
}

// matchReturn ties a classified return to its lot, by the lot rules
// (sesam.MatchReturn). It runs in the write transaction of the return, so
// that the returns of one batch see each other's matches; it reads no mail
// (the return was classified before), only a few indexed rows.
func (s *Store) matchReturn(tx *sql.Tx, t ledgerTables, account string, mailboxID int64, in sesam.Inbound) {
	switch in.Class {
	case sesam.Unknown, sesam.ProviderNotice, sesam.NoemieNoLot:
		return
	}
	cands, err := s.candidates(tx, t, account, in)
	if err != nil {
		return
	}
	m, ok := sesam.MatchReturn(in, cands)
	if !ok {
		return
	}
	facts, _ := json.Marshal(returnFacts(in))
	tx.Exec("INSERT OR IGNORE INTO "+t.returns+"(lot_id, mailbox_id, class, certain, how, detail, facts) VALUES (?, ?, ?, ?, ?, ?, ?)",
		m.LotID, mailboxID, string(in.Class), m.Certain, s.sealText(m.How), s.sealText(rejectDetail(in.Rejects)), s.sealText(string(facts)))
}

// The candidates a return may match (sesam.MatchReturn's contract): the
// lot whose Message-ID a report names, the lots whose stamps it quotes,
// the lots of its NOEMIE lot dates, and the oldest delivered lots of the
// last 60 days with no ARL yet — each by an index, each bounded.
const candCols = `SELECT l.msg_id, m.message_id, l.emitter, l.stamp, m.state FROM {lots} l JOIN messages m ON m.id = l.msg_id `

func (s *Store) candidates(q querier, t ledgerTables, account string, in sesam.Inbound) ([]sesam.LotCandidate, error) {
	var out []sesam.LotCandidate
	seen := map[int64]bool{}
	add := func(query string, args ...any) error {
		rows, err := q.Query(t.sql(candCols+query), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c sesam.LotCandidate
			var state string
			if err := rows.Scan(&c.ID, &c.MessageID, &c.Emitter, s.clear(&c.Stamp), &state); err != nil {
				return err
			}
			if !seen[c.ID] {
				seen[c.ID] = true
				c.Queue, c.LotAt = sesam.QueueState(state), sesam.StampTime(c.Stamp, nil)
				out = append(out, c)
			}
		}
		return rows.Err()
	}
	if in.OrigMessageID != "" {
		if err := add("WHERE m.account = ? AND m.message_id = ? AND m.message_id != '' ORDER BY l.msg_id LIMIT 10", account, in.OrigMessageID); err != nil {
			return nil, err
		}
	}
	for _, st := range in.Stamps {
		if err := add("WHERE l.account = ? AND l.stamp_key = ? ORDER BY l.msg_id LIMIT 10", account, s.lookup(stampLookup, st)); err != nil {
			return nil, err
		}
	}
	if in.Noemie != nil {
		for _, nl := range in.Noemie.Lots {
			if len(nl.Date) == 6 {
				if err := add("WHERE l.account = ? AND l.day_key = ? ORDER BY l.msg_id LIMIT 50", account, s.lookup(dayLookup, "20"+nl.Date)); err != nil {
					return nil, err
				}
			}
		}
	}
	if in.Class.IsARL() {
		since := time.Now().Add(-60 * 24 * time.Hour)
		if err := add(`WHERE l.account = ? AND m.state = 'sent' AND m.done_at >= ?
			AND NOT EXISTS (SELECT 1 FROM {returns} r WHERE r.lot_id = l.msg_id AND r.class IN (?, ?, ?))
			ORDER BY l.msg_id LIMIT 20`, account, ms(since), sesam.ARLPositive, sesam.ARLNegative, sesam.ARLUnknown); err != nil {
			return nil, err
		}
	}
	for i := range out {
		rows, err := q.Query("SELECT class FROM "+t.returns+" WHERE lot_id = ?", out[i].ID)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c string
			rows.Scan(&c)
			out[i].Answered = append(out[i].Answered, sesam.Class(c))
		}
		rows.Close()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// querier is a transaction or the read pool.
type querier interface {
	Query(query string, args ...any) (*sql.Rows, error)
}

// returnFacts keeps what a return says beyond its class, with its match.
func returnFacts(in sesam.Inbound) sesam.ReturnFacts {
	var f sesam.ReturnFacts
	if in.ARL != nil {
		f.ARL = in.ARL.PayloadText
	}
	if in.Noemie != nil {
		f.Invoices, f.LotRejects = in.Noemie.Outcomes()
	}
	return f
}

func rejectDetail(rs []sesam.Reject) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, strings.TrimSpace(r.Code+" "+r.Label))
	}
	return strings.Join(parts, "; ")
}

// lotCols reads a lot's row: the ledger's facts and its mail's queue state.
const lotCols = `SELECT l.msg_id, l.account, l.fund, l.emitter, l.stamp, l.invoices, l.test, m.received_at, m.state, m.done_at, m.hold_reason
	FROM lots l JOIN messages m ON m.id = l.msg_id `

// Lots lists the ledger, oldest first (account "" for all), each lot with
// the returns matched to it. The lot rules (sesam.Lot.Status) say
// what state that makes.
func (s *Store) Lots(account string, since time.Time) ([]sesam.Lot, error) {
	rows, err := s.r.Query(lotCols+`WHERE (? = '' OR l.account = ?) AND m.received_at >= ? ORDER BY l.msg_id`, account, account, ms(since))
	if err != nil {
		return nil, err
	}
	var out []sesam.Lot
	for rows.Next() {
		var l sesam.Lot
		var fund, state string
		var sub, done int64
		if err := rows.Scan(&l.ID, &l.Account, &fund, &l.Emitter, s.clear(&l.Stamp), &l.Invoices, &l.Test, &sub, &state, &done, &l.HoldReason); err != nil {
			rows.Close()
			return nil, err
		}
		if len(fund) == 5 {
			l.Fund = sesam.Fund{Regime: fund[:2], Caisse: fund[2:]}
		}
		l.Submitted, l.Queue = fromMS(sub), sesam.QueueState(state)
		if l.Queue == sesam.QueueSent {
			l.Delivered = fromMS(done)
		}
		out = append(out, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	byID := make(map[int64]int, len(out))
	for i := range out {
		byID[out[i].ID] = i
	}
	// One query for every lot's returns, not one per lot.
	rets, err := s.r.Query(`SELECT r.lot_id, r.mailbox_id, r.class, r.certain, r.how, r.facts, b.received_at, b.subject
		FROM lot_returns r JOIN mailbox b ON b.id = r.mailbox_id JOIN messages m ON m.id = r.lot_id
		WHERE (? = '' OR b.account = ?) AND m.received_at >= ? ORDER BY b.id`, account, account, ms(since))
	if err != nil {
		return nil, err
	}
	defer rets.Close()
	for rets.Next() {
		var lotID, at int64
		var r sesam.LotReturn
		var class, facts string
		if err := rets.Scan(&lotID, &r.MailboxID, &class, &r.Certain, s.clear(&r.How), s.clear(&facts), &at, s.clear(&r.Subject)); err != nil {
			return nil, err
		}
		r.Class, r.Received = sesam.Class(class), fromMS(at)
		if facts != "" {
			json.Unmarshal([]byte(facts), &r.Facts)
		}
		if i, ok := byID[lotID]; ok {
			out[i].Returns = append(out[i].Returns, r)
		}
	}
	return out, rets.Err()
}

// Unmatched is a return tied to no lot: a lump-sum payment, a paper
// return, or one that names no lot the ledger knows.
type Unmatched struct {
	MailboxID int64       `json:"mailbox_id"`
	Account   string      `json:"account"`
	Class     sesam.Class `json:"class"`
	Why       string      `json:"why"`
	Received  time.Time   `json:"received"`
	Subject   string      `json:"subject"`
}

// UnmatchedReturns lists the returns (ARLs, NOEMIE, reports) since a time
// that no lot claims, newest first, at most limit.
func (s *Store) UnmatchedReturns(account string, since time.Time, limit int) ([]Unmatched, error) {
	rows, err := s.r.Query(`SELECT b.id, b.account, b.class, b.class_why, b.received_at, b.subject FROM mailbox b
		WHERE (? = '' OR b.account = ?) AND b.received_at >= ? AND b.origin IN (?, ?)
		AND b.class IN (?, ?, ?, ?, ?, ?, ?, ?)
		AND NOT EXISTS (SELECT 1 FROM lot_returns r WHERE r.mailbox_id = b.id)
		ORDER BY b.id DESC LIMIT ?`, account, account, ms(since), Fetched, Imported,
		sesam.ARLPositive, sesam.ARLNegative, sesam.ARLUnknown, sesam.NoemiePayment, sesam.NoemieReject, sesam.NoemieWarning, sesam.NoemieNoLot, sesam.Bounce, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Unmatched
	for rows.Next() {
		var u Unmatched
		var class string
		var at int64
		if err := rows.Scan(&u.MailboxID, &u.Account, &class, &u.Why, &at, s.clear(&u.Subject)); err != nil {
			return nil, err
		}
		u.Class, u.Received = sesam.Class(class), fromMS(at)
		out = append(out, u)
	}
	return out, rows.Err()
}

// Warning is a notice given: about a lot (LotID), or about an account
// (LotID 0: collection blocked or back, the daily summary).
type Warning struct {
	Account string    `json:"account"`
	LotID   int64     `json:"lot_id,omitempty"`
	Kind    string    `json:"kind"` // sesam.NoticeKind, with its key
	At      time.Time `json:"at"`
	Text    string    `json:"text"` // English, for the technician
}

// PracticeNotice is a notice to give once: recorded under its key (Account, LotID,
// Kind), stored in the account's mailbox for the logins in To (the others
// get it as already deleted), and sent through the provider to the Notify
// addresses, so that it reaches the practitioner's own mailbox.
type PracticeNotice struct {
	Warning
	Mail      []byte   // the French notice
	MessageID string   // Mail's Message-ID: its copy coming back is recognised
	To        []string // logins that see it locally
	AllLogins []string
	From      string   // the account's provider address, for Notify
	Notify    []string // addresses it is mailed to
}

// GiveNotice gives a notice once. It reports false when it was given
// before (nothing is written then).
func (s *Store) GiveNotice(ctx context.Context, n PracticeNotice) (bool, error) {
	now := s.now()
	var m mailRow
	if n.Mail != nil {
		var err error
		if m, err = s.readMail(n.Mail); err != nil { // here, not in the transaction
			return false, err
		}
	}
	given := false
	err := s.writeWait(ctx, func(tx *sql.Tx) error {
		given = false
		var res sql.Result
		var err error
		if n.LotID != 0 {
			res, err = tx.Exec("INSERT OR IGNORE INTO warnings(lot_id, kind, at, text) VALUES (?, ?, ?, ?)", n.LotID, n.Kind, ms(now), s.sealText(n.Text))
		} else {
			res, err = tx.Exec("INSERT OR IGNORE INTO account_notices(account, kind, at, text) VALUES (?, ?, ?, ?)", n.Account, n.Kind, ms(now), s.sealText(n.Text))
		}
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return nil // given before
		}
		given = true
		if n.Mail == nil {
			return nil
		}
		logins, _ := json.Marshal(n.AllLogins)
		if n.MessageID != "" {
			if _, err := tx.Exec("INSERT OR IGNORE INTO own_notices(message_id, account, logins, at) VALUES (?, ?, ?, ?)", n.MessageID, n.Account, string(logins), ms(now)); err != nil {
				return err
			}
		}
		if len(n.To) > 0 {
			id, _, err := s.addMail(tx, n.Account, Origin{Kind: "warning", RefMsg: n.LotID}, m, now, nil)
			if err != nil {
				return err
			}
			if err := hideFrom(tx, id, except(n.AllLogins, n.To), now); err != nil {
				return err
			}
		}
		if len(n.Notify) > 0 {
			return s.queueNotice(tx, n, m, now)
		}
		return nil
	})
	if err == nil && given && len(n.Notify) > 0 {
		s.notify(n.Account)
	}
	return given, err
}

// queueNotice puts a notice in the queue, from the account to its Notify
// addresses: it leaves through the provider like any mail.
func (s *Store) queueNotice(tx *sql.Tx, n PracticeNotice, m mailRow, now time.Time) error {
	bid, err := putBody(tx, m.body, m.key)
	if err != nil {
		return err
	}
	rcpts, _ := json.Marshal(n.Notify)
	res, err := tx.Exec(`INSERT INTO messages(account, mail_from, rcpts, subject, message_id, size, client, body_id, state, received_at, next_attempt, hash)
		VALUES (?, ?, ?, ?, ?, ?, 'sesam-relay', ?, ?, ?, ?, ?)`,
		n.Account, n.From, string(rcpts), s.sealText(m.head.Subject), n.MessageID, len(m.body), bid, Queued, ms(now), ms(now), m.hash)
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	return s.event(tx, id, now, "the relay's notice to the practitioner (%s), sent to %s", n.Kind, strings.Join(n.Notify, ", "))
}

func except(all, keep []string) []string {
	var out []string
	for _, l := range all {
		if !slices.Contains(keep, l) {
			out = append(out, l)
		}
	}
	return out
}

// hideFrom makes a message already deleted for these logins.
func hideFrom(tx *sql.Tx, mailboxID int64, logins []string, now time.Time) error {
	for _, l := range logins {
		if _, err := tx.Exec("INSERT OR IGNORE INTO views(login, mailbox_id, deleted_at) VALUES (?, ?, ?)", l, mailboxID, ms(now)); err != nil {
			return err
		}
	}
	return nil
}

// ownNotice says whether a collected message is the relay's own notice
// come back from the provider, and to which logins it was given: its
// Message-ID is one the relay made (random, so that nobody can make a
// mail pass for a notice and hide it from the billing software).
func ownNotice(tx *sql.Tx, account, messageID string) ([]string, bool) {
	if messageID == "" {
		return nil, false
	}
	var logins string
	if tx.QueryRow("SELECT logins FROM own_notices WHERE message_id = ? AND account = ?", messageID, account).Scan(&logins) != nil {
		return nil, false
	}
	var out []string
	json.Unmarshal([]byte(logins), &out)
	return out, true
}

// Warnings lists the notices given since a time, newest first, at most limit.
func (s *Store) Warnings(account string, since time.Time, limit int) ([]Warning, error) {
	rows, err := s.r.Query(`SELECT l.account, w.lot_id, w.kind, w.at, w.text FROM warnings w JOIN lots l ON l.msg_id = w.lot_id
		WHERE (? = '' OR l.account = ?) AND w.at >= ?
		UNION ALL SELECT account, 0, kind, at, text FROM account_notices WHERE (? = '' OR account = ?) AND at >= ?
		ORDER BY 4 DESC LIMIT ?`, account, account, ms(since), account, account, ms(since), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Warning
	for rows.Next() {
		var w Warning
		var at int64
		if err := rows.Scan(&w.Account, &w.LotID, &w.Kind, &at, s.clear(&w.Text)); err != nil {
			return nil, err
		}
		w.At = fromMS(at)
		out = append(out, w)
	}
	return out, rows.Err()
}

// Given says whether an account notice was given.
func (s *Store) Given(account, kind string) (bool, error) {
	var n int
	err := s.r.QueryRow("SELECT COUNT(*) FROM account_notices WHERE account = ? AND kind = ?", account, kind).Scan(&n)
	return n > 0, err
}

// LastGiven is the newest account notice whose kind starts with prefix.
func (s *Store) LastGiven(account, prefix string) (string, bool, error) {
	var kind string
	err := s.r.QueryRow("SELECT kind FROM account_notices WHERE account = ? AND kind LIKE ? ORDER BY at DESC, kind DESC LIMIT 1", account, prefix+"%").Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return kind, err == nil, err
}

// CollectedSince counts an account's collected mail since a time, by class.
func (s *Store) CollectedSince(account string, since time.Time) (map[sesam.Class]int, error) {
	rows, err := s.r.Query("SELECT class, COUNT(*) FROM mailbox WHERE account = ? AND origin = ? AND received_at >= ? GROUP BY class", account, Fetched, ms(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[sesam.Class]int{}
	for rows.Next() {
		var c string
		var n int
		if err := rows.Scan(&c, &n); err != nil {
			return nil, err
		}
		out[sesam.Class(c)] = n
	}
	return out, rows.Err()
}
