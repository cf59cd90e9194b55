package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// State is where a queued message stands.
type State string

const (
	Queued   State = "queued"   // waiting for its first try
	Deferred State = "deferred" // a try failed; next_attempt says when again
	Sending  State = "sending"  // recorded just before the final dot
	Held     State = "held"     // waits for a technician (uncertain fate, or held by hand)
	Sent     State = "sent"     // the provider answered 250 to the final dot
	Bounced  State = "bounced"  // refused for good; a DSN went to the sender's mailbox
	Dropped  State = "dropped"  // removed by a technician
)

// Envelope is what the submission session knows of a message besides its bytes.
type Envelope struct {
	Account   string   `json:"account,omitempty"`
	From      string   `json:"from,omitempty"`
	To        []string `json:"to,omitempty"`
	Subject   string   `json:"subject,omitempty"`
	MessageID string   `json:"message_id,omitempty"`
	Client    string   `json:"client,omitempty"` // remote address of the submitting client
	// HoldReason, when set, stores the message held instead of queued (the
	// guard against health data in clear).
	HoldReason string `json:"hold_reason,omitempty"`
	// Hash is Fingerprint of the client's bytes (without the Received: line
	// the relay prepends). With MessageID it recognises a resubmission;
	// empty: no check (imports, tests).
	Hash string `json:"-"`
	// Inspection is what the submission side already made of the mail, so
	// that the ledger does not parse it again; nil: the store inspects it.
	Inspection *sesam.Outbound `json:"-"`
}

// Message is one row of the queue.
type Message struct {
	Envelope
	ID          int64     `json:"id"`
	Size        int64     `json:"size"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts"`
	Received    time.Time `json:"received,omitzero"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	HoldReason  string    `json:"hold_reason,omitempty"`
	DoneAt      time.Time `json:"done_at,omitzero"` // sent, bounced or dropped at
	Reply       string    `json:"reply,omitempty"`  // the provider's reply to the final dot
	NoticeSent  bool      `json:"notice_sent,omitempty"`
}

// Event is one line of a message's history, for `queue show`.
type Event struct {
	At   time.Time `json:"at,omitzero"`
	Text string    `json:"text,omitempty"`
}

const msgCols = `id, account, mail_from, rcpts, subject, message_id, client, size, state, attempts,
	received_at, next_attempt, last_attempt, last_error, hold_reason, done_at, reply, notice_sent`

func (s *Store) scanMessage(row interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var rcpts string
	var recv, next, last, done int64
	err := row.Scan(&m.ID, &m.Account, &m.From, &rcpts, s.clear(&m.Subject), &m.MessageID, &m.Client, &m.Size,
		&m.State, &m.Attempts, &recv, &next, &last, &m.LastError, &m.HoldReason, &done, &m.Reply, &m.NoticeSent)
	if err != nil {
		return m, err
	}
	json.Unmarshal([]byte(rcpts), &m.To)
	m.Received, m.NextAttempt, m.LastAttempt, m.DoneAt = fromMS(recv), fromMS(next), fromMS(last), fromMS(done)
	return m, nil
}

// putBody stores a body and returns its id. Every body goes through here.
// putBody writes a body already sealed (seal, before the transaction)
// under key ("" in clear).
func putBody(tx *sql.Tx, data []byte, key string) (int64, error) {
	res, err := tx.Exec("INSERT INTO bodies(data, sealed) VALUES (?, ?)", data, key)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// readBody reads and opens the body of the row id of table where.
//
// The ciphertext is opened straight from the driver's buffer (RawBytes),
// not from a copy of it: a large return costs its size once less.
func (s *Store) readBody(where string, id int64) ([]byte, error) {
	rows, err := s.r.Query("SELECT b.data, b.sealed FROM bodies b JOIN "+where+" t ON t.body_id = b.id WHERE t.id = ?", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	var data sql.RawBytes
	var key string
	if err := rows.Scan(&data, &key); err != nil {
		return nil, err
	}
	if key == "" {
		return bytes.Clone(data), nil // in clear (before encryption): RawBytes is the driver's
	}
	return s.unseal(data, key)
}

func (s *Store) event(tx *sql.Tx, id int64, at time.Time, format string, a ...any) error {
	_, err := tx.Exec("INSERT INTO events(msg_id, at, text) VALUES (?, ?, ?)", id, ms(at), s.sealText(fmt.Sprintf(format, a...)))
	return err
}

// Submit stores a submitted message, or recognises a resubmission (see
// resubmitted), and returns once the outcome is durable: only then may the
// submission be answered 250. A second sending
// of a lot already on its way or gone is stored held (see sentBefore).
func (s *Store) Submit(ctx context.Context, env Envelope, body []byte) (Accepted, error) {
	rcpts, _ := json.Marshal(env.To)
	now := s.now()
	o := env.Inspection
	if o == nil {
		in := sesam.InspectOutbound(body, env.To) // before the transaction: nothing parses inside it
		o = &in
	}
	since := now.Add(-s.resubmitWindow())
	sealed, key, err := s.seal(body) // before the transaction, as the parsing
	if err != nil {
		return Accepted{}, err
	}
	var a Accepted
	err = s.writeWait(ctx, func(tx *sql.Tx) error {
		a = Accepted{}
		first, reused, err := resubmitted(tx, env, since)
		if err != nil {
			return err
		}
		if first != 0 {
			a.ID, a.Resubmission = first, true
			return s.event(tx, first, now, "resubmitted by the client from %s (same Message-ID and bytes): answered 250, not queued again", env.Client)
		}
		st, hold := Queued, env.HoldReason
		if hold != "" {
			st = Held
		}
		dup, isDup, err := s.sentBefore(tx, env.Account, *o, 0)
		if err != nil {
			return err
		}
		if isDup {
			// The duplicate's reason comes first, with its prefix: it is the
			// one that asks for --confirm at release.
			st, hold = Held, joinReasons(duplicateReason(dup), hold)
			a.DuplicateOf = dup.id
		}
		bid, err := putBody(tx, sealed, key)
		if err != nil {
			return err
		}
		res, err := tx.Exec(`INSERT INTO messages(account, mail_from, rcpts, subject, message_id, size, client, body_id, state, received_at, next_attempt, hold_reason, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			env.Account, env.From, string(rcpts), s.sealText(env.Subject), env.MessageID, len(body), env.Client, bid, st, ms(now), ms(now), hold, env.Hash)
		if err != nil {
			return err
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if err := s.event(tx, a.ID, now, "accepted from %s for %s", env.Client, strings.Join(env.To, ", ")); err != nil {
			return err
		}
		if a.SameMessageID = reused; reused != 0 {
			if err := s.event(tx, a.ID, now, "flagged: Message-ID %s was already accepted as mail %d with different bytes; queued anyway — check with the billing software that this is not a resubmission", env.MessageID, reused); err != nil {
				return err
			}
			if err := s.event(tx, reused, now, "flagged: its Message-ID was submitted again with different bytes as mail %d", a.ID); err != nil {
				return err
			}
		}
		s.recordLot(tx, liveLedger, a.ID, env.Account, *o)
		if isDup {
			if err := s.event(tx, dup.id, now, "its lot %s was sent again by the client as mail %d (Message-ID %s): that one is held as a probable DOUBLON", o.Subject.Stamp, a.ID, env.MessageID); err != nil {
				return err
			}
		}
		if hold != "" {
			return s.event(tx, a.ID, now, "held at acceptance: %s", hold)
		}
		return nil
	})
	if err == nil && !a.Resubmission {
		s.notify(env.Account)
	}
	return a, err
}

// Body returns a queued message's bytes, exactly as accepted.
func (s *Store) Body(id int64) ([]byte, error) { return s.readBody("messages", id) }

// Get returns one message with its history.
func (s *Store) Get(id int64) (Message, []Event, error) {
	m, err := s.scanMessage(s.r.QueryRow("SELECT "+msgCols+" FROM messages WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, nil, ErrNotFound
	}
	if err != nil {
		return m, nil, err
	}
	rows, err := s.r.Query("SELECT at, text FROM events WHERE msg_id = ? ORDER BY id", id)
	if err != nil {
		return m, nil, err
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var at int64
		var e Event
		if err := rows.Scan(&at, s.clear(&e.Text)); err != nil {
			return m, nil, err
		}
		e.At = fromMS(at)
		evs = append(evs, e)
	}
	return m, evs, rows.Err()
}

// Filter selects messages for List.
type Filter struct {
	Account string
	States  []State // empty: all
	Limit   int     // 0: 1000
	Offset  int     // skip the newest Offset ones (the pages before)
}

func (f Filter) where() (string, []any) {
	q := " WHERE 1=1"
	var args []any
	if f.Account != "" {
		q += " AND account = ?"
		args = append(args, f.Account)
	}
	if len(f.States) > 0 {
		q += " AND state IN (?" + strings.Repeat(",?", len(f.States)-1) + ")"
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	return q, args
}

// List returns the newest Limit messages past Offset, oldest first.
func (s *Store) List(f Filter) ([]Message, error) {
	where, args := f.where()
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q := "SELECT " + msgCols + " FROM messages" + where + " ORDER BY id DESC LIMIT ? OFFSET ?" // the newest Limit ones...
	out, err := s.query(q, append(args, f.Limit, max(f.Offset, 0))...)
	slices.Reverse(out) // ...oldest first
	return out, err
}

// Count says how many messages the filter selects, whatever its Limit.
func (s *Store) Count(f Filter) (int, error) {
	where, args := f.where()
	var n int
	err := s.r.QueryRow("SELECT COUNT(*) FROM messages"+where, args...).Scan(&n)
	return n, err
}

func (s *Store) query(q string, args ...any) ([]Message, error) {
	rows, err := s.r.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := s.scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Due returns an account's messages whose next try has come, oldest first.
func (s *Store) Due(account string, now time.Time, limit int) ([]Message, error) {
	return s.query("SELECT "+msgCols+" FROM messages WHERE account = ? AND state IN (?, ?) AND next_attempt <= ? ORDER BY id LIMIT ?",
		account, Queued, Deferred, ms(now), limit)
}

// NextAttempt returns when an account's next waiting message is due (ok false: none waits).
func (s *Store) NextAttempt(account string) (time.Time, bool, error) {
	var next sql.NullInt64
	err := s.r.QueryRow("SELECT MIN(next_attempt) FROM messages WHERE account = ? AND state IN (?, ?)", account, Queued, Deferred).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, false, err
	}
	return fromMS(next.Int64), true, nil
}

// Counts returns, per account and state, how many messages there are.
func (s *Store) Counts() (map[string]map[State]int, error) {
	rows, err := s.r.Query("SELECT account, state, COUNT(*) FROM messages GROUP BY account, state")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[State]int{}
	for rows.Next() {
		var a string
		var st State
		var n int
		if err := rows.Scan(&a, &st, &n); err != nil {
			return nil, err
		}
		if out[a] == nil {
			out[a] = map[State]int{}
		}
		out[a][st] = n
	}
	return out, rows.Err()
}

// ErrWrongState is wrapped when a transition does not apply to a message's current state.
var ErrWrongState = errors.New("not in a state that allows this")

// transition moves message id from one of the states in from to "to",
// applying set (extra SQL assignments) and logging an event, in one write.
func (s *Store) transition(tx *sql.Tx, id int64, now time.Time, from []State, to State, set string, args []any, ev string) error {
	q := "UPDATE messages SET state = ?" + set + " WHERE id = ? AND state IN (?" + strings.Repeat(",?", len(from)-1) + ")"
	all := append([]any{to}, args...)
	all = append(all, id)
	for _, f := range from {
		all = append(all, f)
	}
	res, err := tx.Exec(q, all...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var cur State
		if err := tx.QueryRow("SELECT state FROM messages WHERE id = ?", id).Scan(&cur); err != nil {
			return ErrNotFound
		}
		return fmt.Errorf("message %d is %s: %w", id, cur, ErrWrongState)
	}
	return s.event(tx, id, now, "%s", ev)
}

var waiting = []State{Queued, Deferred}

// MarkSending records, durably, that the final dot is about to be sent.
// If the process dies before MarkSent, the message is uncertain and is held.
func (s *Store) MarkSending(ctx context.Context, id int64) error {
	now := s.now()
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		return s.transition(tx, id, now, waiting, Sending, ", attempts = attempts + 1, last_attempt = ?", []any{ms(now)}, "sending the final dot upstream")
	})
}

// MarkSentAsync records the provider's 250 without waiting: the next
// MarkSending (which waits) makes it durable in the same commit. If the
// process dies first, the message comes back as uncertain and is held,
// never resent; if the write fails, the Pending says so and the deliverer
// writes it again. Once it commits, the write path is known to work: the
// next local fault starts a fresh, short pause (see faultPause).
func (s *Store) MarkSentAsync(id int64, reply string) *Pending {
	now := s.now()
	return s.writeAsyncThen(func(tx *sql.Tx) error {
		return s.transition(tx, id, now, []State{Sending}, Sent, ", done_at = ?, reply = ?, last_error = ''", []any{ms(now), reply}, "delivered upstream: "+reply)
	}, func(err error) {
		if err == nil {
			s.fault.mu.Lock()
			s.fault.fails = 0
			s.fault.mu.Unlock()
		}
	})
}

// MarkDeferred records a failed try and when to try again. A try that failed
// before the final dot (state still queued or deferred) counts as an attempt here.
func (s *Store) MarkDeferred(ctx context.Context, id int64, why string, next time.Time) error {
	now := s.now()
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		return s.transition(tx, id, now, []State{Queued, Deferred, Sending}, Deferred,
			", attempts = attempts + CASE WHEN state = 'sending' THEN 0 ELSE 1 END, last_attempt = ?, last_error = ?, next_attempt = ?",
			[]any{ms(now), why, ms(next)}, "deferred: "+why)
	})
}

// uncertainPrefix starts the hold reason of a mail whose final dot may have
// reached the provider.
const uncertainPrefix = sesam.UncertainHoldPrefix

// Uncertain reports whether m is held because it may already have been
// delivered: sending it again could make a DOUBLON.
func (m Message) Uncertain() bool {
	return m.State == Held && strings.HasPrefix(m.HoldReason, uncertainPrefix)
}

// MarkUncertain holds a message whose final dot may have reached the provider
// without its reply reaching us. Only a technician's Release sends it again.
func (s *Store) MarkUncertain(ctx context.Context, id int64, why string) error {
	now := s.now()
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		return s.transition(tx, id, now, []State{Sending}, Held, ", hold_reason = ?, last_error = ?",
			[]any{uncertainPrefix + why, why}, "held as uncertain: "+why)
	})
}

// MarkBounced marks a message refused for good and stores the DSN for the
// sender's account, in one transaction: the bounce is never lost nor doubled.
func (s *Store) MarkBounced(ctx context.Context, id int64, why string, dsn []byte) error {
	now := s.now()
	m, err := s.readMail(dsn)
	if err != nil {
		return err
	}
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		var account string
		if err := tx.QueryRow("SELECT account FROM messages WHERE id = ?", id).Scan(&account); err != nil {
			return ErrNotFound
		}
		if err := s.transition(tx, id, now, []State{Queued, Deferred, Sending}, Bounced, ", done_at = ?, last_error = ?", []any{ms(now), why}, "bounced: "+why); err != nil {
			return err
		}
		_, _, err := s.addMail(tx, account, Origin{Kind: Bounce, RefMsg: id}, m, now, nil)
		return err
	})
}

// AddDelayNotice stores a "still trying" notice for the sender, once per message.
func (s *Store) AddDelayNotice(ctx context.Context, id int64, notice []byte) error {
	now := s.now()
	m, err := s.readMail(notice)
	if err != nil {
		return err
	}
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		var account string
		if err := tx.QueryRow("SELECT account FROM messages WHERE id = ? AND notice_sent = 0", id).Scan(&account); err != nil {
			return nil // already sent, or gone: nothing to do
		}
		if _, err := tx.Exec("UPDATE messages SET notice_sent = 1 WHERE id = ?", id); err != nil {
			return err
		}
		if err := s.event(tx, id, now, "delay notice sent to the sender's mailbox"); err != nil {
			return err
		}
		_, _, err := s.addMail(tx, account, Origin{Kind: Notice, RefMsg: id}, m, now, nil)
		return err
	})
}

// Hold holds a waiting message by hand.
func (s *Store) Hold(ctx context.Context, id int64, reason, who string) error {
	now := s.now()
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		return s.transition(tx, id, now, waiting, Held, ", hold_reason = ?", []any{reason}, "held by "+who+": "+reason)
	})
}

// Release lets a held message (including an uncertain one) be sent again now.
func (s *Store) Release(ctx context.Context, id int64, who string) error {
	now := s.now()
	err := s.writeWait(ctx, func(tx *sql.Tx) error {
		return s.transition(tx, id, now, []State{Held}, Queued, ", hold_reason = '', next_attempt = ?", []any{ms(now)}, "released by "+who)
	})
	if err == nil {
		s.wakeOwner(id)
	}
	return err
}

// Retry makes a waiting message due now.
func (s *Store) Retry(ctx context.Context, id int64, who string) error {
	now := s.now()
	err := s.writeWait(ctx, func(tx *sql.Tx) error {
		return s.transition(tx, id, now, waiting, Queued, ", next_attempt = ?", []any{ms(now)}, "retry asked by "+who)
	})
	if err == nil {
		s.wakeOwner(id)
	}
	return err
}

// RetryAccount makes every waiting message of an account due now and
// wakes its deliverer out of any pause (after `account passwd`: the
// provider password was changed). It returns how many wait.
func (s *Store) RetryAccount(ctx context.Context, account, who string) (int, error) {
	now := s.now()
	var n int
	err := s.writeWait(ctx, func(tx *sql.Tx) error {
		rows, err := tx.Query("SELECT id FROM messages WHERE account = ? AND state IN ('queued','deferred')", account)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			if err := s.transition(tx, id, now, waiting, Queued, ", next_attempt = ?", []any{ms(now)}, "retry asked by "+who); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	if err == nil {
		s.kickOwner(account)
	}
	return n, err
}

// Drop removes a message that has not been sent from delivery. Its bytes stay
// for the record.
func (s *Store) Drop(ctx context.Context, id int64, who string) error {
	now := s.now()
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		return s.transition(tx, id, now, []State{Queued, Deferred, Held}, Dropped, ", done_at = ?", []any{ms(now)}, "dropped by "+who)
	})
}

// RecoverInterrupted holds every message left in "sending" by a crash: its
// final dot may have reached the provider, so it must not be sent again on
// its own. It returns how many it held.
func (s *Store) RecoverInterrupted(ctx context.Context) (int, error) {
	now := s.now()
	var n int
	why := "the relay stopped while sending the final dot: the provider may have it already; check the sent folder, then release or drop"
	err := s.writeWait(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = s.holdUncertain(tx, now, []State{Sending}, uncertainPrefix+why, "held as uncertain: "+why)
		return err
	})
	return n, err
}

// holdUncertain holds every message in one of the states from, with the
// reason given (an uncertain one: release asks --confirm), and says how
// many it held.
func (s *Store) holdUncertain(tx *sql.Tx, now time.Time, from []State, reason, event string) (int, error) {
	q := "SELECT id FROM messages WHERE state IN (?" + strings.Repeat(", ?", len(from)-1) + ")"
	args := make([]any, len(from))
	for i, st := range from {
		args[i] = st
	}
	rows, err := tx.Query(q, args...)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if err := s.transition(tx, id, now, from, Held, ", hold_reason = ?", []any{reason}, event); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// HoldOrphans holds waiting messages of accounts no longer in the config.
func (s *Store) HoldOrphans(ctx context.Context, known []string) (int, error) {
	now := s.now()
	var n int
	err := s.writeWait(ctx, func(tx *sql.Tx) error {
		q := "SELECT id, account FROM messages WHERE state IN ('queued','deferred')"
		rows, err := tx.Query(q)
		if err != nil {
			return err
		}
		isKnown := map[string]bool{}
		for _, k := range known {
			isKnown[k] = true
		}
		var ids []int64
		for rows.Next() {
			var id int64
			var a string
			rows.Scan(&id, &a)
			if !isKnown[a] {
				ids = append(ids, id)
			}
		}
		rows.Close()
		for _, id := range ids {
			if err := s.transition(tx, id, now, waiting, Held, ", hold_reason = ?", []any{"its account is no longer in the config"}, "held: its account is no longer in the config"); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

// wakeOwner tells the deliverer of a message's account that a technician
// wants it tried now.
func (s *Store) wakeOwner(id int64) {
	var account string
	if s.r.QueryRow("SELECT account FROM messages WHERE id = ?", id).Scan(&account) == nil {
		s.kickOwner(account)
	}
}

// Waiting is one account's waiting mail as /metrics exports it.
type Waiting struct {
	Oldest    time.Time // the oldest waiting mail's arrival; zero: none waits
	Uncertain int       // held because it may have left (never resent alone)
}

// WaitingByAccount reads, per account, the oldest mail not yet gone
// (queued, deferred, sending or held) and how many are held as uncertain.
func (s *Store) WaitingByAccount() (map[string]Waiting, error) {
	rows, err := s.r.Query(`SELECT account, MIN(received_at), SUM(state = 'held' AND substr(hold_reason, 1, ?) = ?)
		FROM messages WHERE state IN ('queued', 'deferred', 'sending', 'held') GROUP BY account`, len(uncertainPrefix), uncertainPrefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Waiting{}
	for rows.Next() {
		var a string
		var oldest int64
		var w Waiting
		if err := rows.Scan(&a, &oldest, &w.Uncertain); err != nil {
			return nil, err
		}
		w.Oldest = fromMS(oldest)
		out[a] = w
	}
	return out, rows.Err()
}
