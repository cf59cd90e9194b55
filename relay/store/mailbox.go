package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/internal/pop3wire"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// Origins of local mail.
const (
	Fetched  = "fetched"  // collected from the provider's IMAP
	Imported = "imported" // saved from the webmail and imported by a technician
	Bounce   = "bounce"   // our DSN for a refused lot
	Notice   = "notice"   // our "still trying" notice
)

// OwnNoticeClass is the class of a notice the relay mailed to the
// practitioner, collected back from the provider.
const (
	OwnNoticeClass = "relay-notice"
	ownNoticeWhy   = "the relay's own notice, back from the provider: hidden from every login (they had it locally)"
)

// MailboxEntry is one message in an account's local mailbox.
type MailboxEntry struct {
	ID          int64        `json:"id"`
	Account     string       `json:"account,omitempty"`
	Origin      string       `json:"origin,omitempty"`
	Received    time.Time    `json:"received,omitzero"`
	Subject     string       `json:"subject,omitempty"`
	From        string       `json:"from,omitempty"`
	MessageID   string       `json:"message_id,omitempty"`
	Size        int64        `json:"size"`
	Folder      string       `json:"folder,omitempty"`  // of origin, for fetched mail
	RefMsg      int64        `json:"ref_msg,omitempty"` // the queued message a bounce or notice is about
	UIDL        string       `json:"uidl,omitempty"`
	Class       string       `json:"class,omitempty"` // arl-positive, noemie-reject… (sesam.Classify)
	ClassWhy    string       `json:"class_why,omitempty"`
	Collections []Collection `json:"collections,omitempty"`
}

// Collection is what one login did with one message.
type Collection struct {
	Login     string    `json:"login,omitempty"`
	Retrieved time.Time `json:"retrieved,omitzero"`
	Deleted   time.Time `json:"deleted,omitzero"`
}

// Origin says where a message comes from, for AddMail.
type Origin struct {
	Kind        string // Fetched, Imported, Bounce, Notice
	Folder      string // IMAP folder, for Fetched
	UIDValidity uint32
	UID         uint32
	RefMsg      int64
}

// Added is the outcome of AddMail.
type Added struct {
	ID        int64
	Duplicate bool // the account already holds the same bytes
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// uidl is a message's POP3 unique id: it never changes, and stays far
// below RFC 1939's 70 characters.
func uidl(id int64, hash string) string { return fmt.Sprintf("%d.%s", id, hash[:16]) }

// mailRow is what the mailbox keeps of a message besides its bytes. It is
// read by readMail, in the caller's goroutine, before the write: nothing
// parses mail inside the committer's transaction.
type mailRow struct {
	body []byte // as the database keeps it: sealed to the write key (see seal)
	key  string // the key that sealed body; "" in clear
	hash string
	head sesam.Headers
	wire int64 // the size POP3 announces (pop3wire: what pop3d sends)
}

// readMail reads what the write needs of a message, and seals its body,
// before the transaction.
func (s *Store) readMail(body []byte) (mailRow, error) {
	m := mailRow{hash: hashOf(body), head: sesam.ReadHeaders(body), wire: pop3wire.Size(body)}
	var err error
	m.body, m.key, err = s.seal(body)
	return m, err
}

// addMail writes a message read by readMail. in is its classification,
// made beforehand and outside the transaction; nil for mail the relay
// writes itself. It only reads a few indexed rows (the duplicate, the own
// notice, the lot candidates) and writes.
func (s *Store) addMail(tx *sql.Tx, account string, o Origin, m mailRow, now time.Time, in *sesam.Inbound) (int64, bool, error) {
	var id int64
	err := tx.QueryRow("SELECT id FROM mailbox WHERE account = ? AND hash = ?", account, m.hash).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, err
	}
	bid, err := putBody(tx, m.body, m.key)
	if err != nil {
		return 0, false, err
	}
	h := m.head
	class, why := o.Kind, "written by the relay"
	var hide []string
	if in != nil {
		class, why = string(in.Class), in.Why
		if logins, own := ownNotice(tx, account, h.MessageID); own {
			// The practitioner's copy of a notice, back from the
			// provider: kept, but no client gets it twice, and it is no
			// return (its words would read as an ARL's).
			class, why, hide, in = OwnNoticeClass, ownNoticeWhy, logins, nil
		}
	}
	res, err := tx.Exec(`INSERT INTO mailbox(account, origin, received_at, subject, from_addr, message_id, size, wire_size, hash, body_id, ref_msg, folder, uidvalidity, uid, class, class_why)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		account, o.Kind, ms(now), s.sealText(h.Subject), s.sealText(h.From), h.MessageID, len(m.body), m.wire, m.hash, bid, o.RefMsg, o.Folder, o.UIDValidity, o.UID, class, why)
	if err != nil {
		return 0, false, err
	}
	if id, err = res.LastInsertId(); err != nil {
		return 0, false, err
	}
	if in != nil {
		s.matchReturn(tx, liveLedger, account, id, *in)
	}
	if err := hideFrom(tx, id, hide, now); err != nil {
		return 0, false, err
	}
	return id, false, nil
}

// Classify is the verdict on an inbound mail under the config's current
// rules. It reads the mail, so it runs in the caller's goroutine, never
// inside a write transaction: a mail that costs the classifier dearly (or
// kills the process) must not hold the committer.
func (s *Store) Classify(body []byte) sesam.Inbound {
	return sesam.Classify(body, s.currentRules())
}

// AddMail stores a message in an account's local mailbox, once, and
// returns when it is durable: the same bytes already there make it a
// duplicate, not a second copy. in is its classification, made by the
// caller (Classify) when it reads the mail under its own guard, as the
// poller does; nil lets AddMail classify fetched and imported mail itself,
// in the caller's goroutine before the write, and leaves the mail the
// relay writes unclassified. For fetched mail, the folder's sync position
// moves to its UID in the same transaction, so a crash can neither lose a
// message nor fetch it twice.
func (s *Store) AddMail(ctx context.Context, account string, o Origin, body []byte, in *sesam.Inbound) (Added, error) {
	var a Added
	fn, after := s.addMailWrite(account, o, body, in, &a)
	err := s.writeWaitThen(ctx, fn, after)
	if err != nil {
		return Added{}, err
	}
	return a, nil
}

// AddMailAsync is AddMail without waiting, for the poller, which sends a
// batch of messages into one group commit and then waits on each. out
// holds the outcome once the Pending ends without error.
func (s *Store) AddMailAsync(account string, o Origin, body []byte, in *sesam.Inbound, out *Added) *Pending {
	if out == nil {
		out = new(Added)
	}
	return s.writeAsyncThen(s.addMailWrite(account, o, body, in, out))
}

// addMailWrite reads and classifies a message (here, in the caller's
// goroutine) and returns the write that stores it into out.
func (s *Store) addMailWrite(account string, o Origin, body []byte, in *sesam.Inbound, out *Added) (func(*sql.Tx) error, func(error)) {
	inbound := o.Kind == Fetched || o.Kind == Imported
	if in == nil && inbound {
		v := s.Classify(body)
		in = &v
	}
	m, err := s.readMail(body)
	if err != nil { // the write reports it; nothing is written
		return func(*sql.Tx) error { return err }, nil
	}
	now := s.now()
	fn := func(tx *sql.Tx) error {
		var err error
		out.ID, out.Duplicate, err = s.addMail(tx, account, o, m, now, in)
		if err != nil {
			return err
		}
		if o.Kind == Fetched {
			_, err = tx.Exec(`INSERT INTO imap_sync(account, folder, uidvalidity, last_uid) VALUES (?, ?, ?, ?)
				ON CONFLICT(account, folder) DO UPDATE SET last_uid = MAX(last_uid, excluded.last_uid)
				WHERE uidvalidity = excluded.uidvalidity`, account, o.Folder, o.UIDValidity, o.UID)
		}
		return err
	}
	after := func(err error) {
		if err == nil && !out.Duplicate && inbound {
			s.ledgerChanged()
		}
	}
	return fn, after
}

// SyncState returns a folder's recorded UIDVALIDITY and last fetched UID (0, 0: never synced).
func (s *Store) SyncState(account, folder string) (uidValidity, lastUID uint32, err error) {
	err = s.r.QueryRow("SELECT uidvalidity, last_uid FROM imap_sync WHERE account = ? AND folder = ?", account, folder).Scan(&uidValidity, &lastUID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	return
}

// ResetSync starts a folder over under a new UIDVALIDITY: every message is
// fetched again and the duplicates are recognised by their bytes.
func (s *Store) ResetSync(ctx context.Context, account, folder string, uidValidity uint32) error {
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO imap_sync(account, folder, uidvalidity, last_uid) VALUES (?, ?, ?, 0)
			ON CONFLICT(account, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = 0`, account, folder, uidValidity)
		return err
	})
}

const entryCols = "id, account, origin, received_at, subject, from_addr, message_id, size, folder, ref_msg, hash, class, class_why"

func (s *Store) scanEntry(row interface{ Scan(...any) error }) (MailboxEntry, error) {
	var e MailboxEntry
	var at int64
	var hash string
	err := row.Scan(&e.ID, &e.Account, &e.Origin, &at, s.clear(&e.Subject), s.clear(&e.From), &e.MessageID, &e.Size, &e.Folder, &e.RefMsg, &hash, &e.Class, &e.ClassWhy)
	e.Received, e.UIDL = fromMS(at), uidl(e.ID, hash)
	return e, err
}

// Mailbox lists an account's local mailbox, oldest first, with who collected what.
func (s *Store) Mailbox(account string) ([]MailboxEntry, error) {
	rows, err := s.r.Query("SELECT "+entryCols+" FROM mailbox WHERE account = ? ORDER BY id", account)
	if err != nil {
		return nil, err
	}
	var out []MailboxEntry
	for rows.Next() {
		e, err := s.scanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	rows.Close()
	cols, err := s.collections("m.account = ?", account)
	for i := range out {
		out[i].Collections = cols[out[i].ID]
	}
	return out, err
}

// collections returns who collected which messages, for the mailbox rows
// that match where (a condition on the mailbox, aliased m).
func (s *Store) collections(where string, arg any) (map[int64][]Collection, error) {
	rows, err := s.r.Query("SELECT v.mailbox_id, v.login, v.retrieved_at, v.deleted_at FROM views v JOIN mailbox m ON m.id = v.mailbox_id WHERE "+where+" ORDER BY v.login", arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][]Collection{}
	for rows.Next() {
		var id, r, d int64
		var c Collection
		if err := rows.Scan(&id, &c.Login, &r, &d); err != nil {
			return nil, err
		}
		c.Retrieved, c.Deleted = fromMS(r), fromMS(d)
		out[id] = append(out[id], c)
	}
	return out, rows.Err()
}

// MailboxEntryByID returns one local message with who collected it.
func (s *Store) MailboxEntryByID(id int64) (MailboxEntry, error) {
	e, err := s.scanEntry(s.r.QueryRow("SELECT "+entryCols+" FROM mailbox WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, err
	}
	cols, err := s.collections("m.id = ?", id)
	e.Collections = cols[id]
	return e, err
}

// MailboxBody returns a local message's bytes, exactly as received.
func (s *Store) MailboxBody(id int64) ([]byte, error) { return s.readBody("mailbox", id) }

// ViewEntry is one message of a login's POP3 maildrop.
type ViewEntry struct {
	ID       int64
	WireSize int64
	UIDL     string
}

// View is what a login sees of its account's mailbox: everything it has
// not deleted, oldest first.
func (s *Store) View(login, account string) ([]ViewEntry, error) {
	rows, err := s.r.Query(`SELECT m.id, m.wire_size, m.hash FROM mailbox m
		LEFT JOIN views v ON v.mailbox_id = m.id AND v.login = ?
		WHERE m.account = ? AND COALESCE(v.deleted_at, 0) = 0 ORDER BY m.id`, login, account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ViewEntry
	for rows.Next() {
		var e ViewEntry
		var hash string
		if err := rows.Scan(&e.ID, &e.WireSize, &hash); err != nil {
			return nil, err
		}
		e.UIDL = uidl(e.ID, hash)
		out = append(out, e)
	}
	return out, rows.Err()
}

// MarkRetrieved records that a login downloaded messages (for `mail`), in
// one write.
func (s *Store) MarkRetrieved(ctx context.Context, login string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	now := s.now()
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.Exec(`INSERT INTO views(login, mailbox_id, retrieved_at) VALUES (?, ?, ?)
				ON CONFLICT(login, mailbox_id) DO UPDATE SET retrieved_at = excluded.retrieved_at`, login, id, ms(now)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteFromView hides messages from one login, durably, all or none: the
// POP3 UPDATE state.
func (s *Store) DeleteFromView(ctx context.Context, login string, ids []int64) error {
	now := s.now()
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.Exec(`INSERT INTO views(login, mailbox_id, deleted_at) VALUES (?, ?, ?)
				ON CONFLICT(login, mailbox_id) DO UPDATE SET deleted_at = excluded.deleted_at`, login, id, ms(now)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Restore makes a message visible again to a login that deleted it.
func (s *Store) Restore(ctx context.Context, login string, id int64) error {
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec("UPDATE views SET deleted_at = 0 WHERE login = ? AND mailbox_id = ? AND deleted_at != 0", login, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("message %d is not deleted for login %s: %w", id, login, ErrWrongState)
		}
		return nil
	})
}

// UpstreamExpired returns the UIDs, in a folder under its current
// UIDVALIDITY, of fetched mail held locally since before `before` and not
// yet deleted upstream.
func (s *Store) UpstreamExpired(account, folder string, uidValidity uint32, before time.Time) ([]uint32, error) {
	rows, err := s.r.Query(`SELECT uid FROM mailbox WHERE account = ? AND origin = ? AND folder = ? AND uidvalidity = ?
		AND upstream_deleted = 0 AND received_at < ? ORDER BY uid`, account, Fetched, folder, uidValidity, ms(before))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var u uint32
		rows.Scan(&u)
		out = append(out, u)
	}
	return out, rows.Err()
}

// MarkUpstreamDeleted records that the provider no longer holds these UIDs.
func (s *Store) MarkUpstreamDeleted(ctx context.Context, account, folder string, uidValidity uint32, uids []uint32) error {
	return s.writeWait(ctx, func(tx *sql.Tx) error {
		for _, u := range uids {
			if _, err := tx.Exec("UPDATE mailbox SET upstream_deleted = 1 WHERE account = ? AND folder = ? AND uidvalidity = ? AND uid = ?", account, folder, uidValidity, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// Purge deletes local mail and finished queue entries older than before
// (the retention), bodies included. It returns how many messages went.
func (s *Store) Purge(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.writeWait(ctx, func(tx *sql.Tx) error {
		cut := ms(before)
		res, err := tx.Exec("DELETE FROM views WHERE mailbox_id IN (SELECT id FROM mailbox WHERE received_at < ?)", cut)
		if err != nil {
			return err
		}
		var bodies []string
		for _, q := range []string{
			"SELECT body_id FROM mailbox WHERE received_at < ?",
			"SELECT body_id FROM messages WHERE received_at < ? AND state IN ('sent', 'bounced', 'dropped')",
		} {
			rows, err := tx.Query(q, cut)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				rows.Scan(&id)
				bodies = append(bodies, id)
			}
			rows.Close()
		}
		for _, q := range []string{
			"DELETE FROM mailbox WHERE received_at < ?",
			"DELETE FROM events WHERE msg_id IN (SELECT id FROM messages WHERE received_at < ? AND state IN ('sent', 'bounced', 'dropped'))",
			"DELETE FROM messages WHERE received_at < ? AND state IN ('sent', 'bounced', 'dropped')",
		} {
			if res, err = tx.Exec(q, cut); err != nil {
				return err
			}
			if strings.HasPrefix(q, "DELETE FROM mailbox") || strings.HasPrefix(q, "DELETE FROM messages") {
				k, _ := res.RowsAffected()
				n += int(k)
			}
		}
		for i := 0; i < len(bodies); i += 500 {
			chunk := bodies[i:min(i+500, len(bodies))]
			if _, err := tx.Exec("DELETE FROM bodies WHERE id IN (" + strings.Join(chunk, ",") + ")"); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// MailboxCount is how many messages an account holds locally.
func (s *Store) MailboxCount(account string) (int, error) {
	var n int
	err := s.r.QueryRow("SELECT COUNT(*) FROM mailbox WHERE account = ?", account).Scan(&n)
	return n, err
}

// currentRules returns the rules set last (none before Configure).
func (s *Store) currentRules() []sesam.Rule {
	if r := s.rules.Load(); r != nil {
		return *r
	}
	return nil
}
