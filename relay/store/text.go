package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sealed columns. Beside the bodies, the columns that may carry a patient's
// or a lot's data are sealed too: subjects, the sender of a collected
// mail, a lot's stamp, what a return said (its match, its rejects, its
// facts), the warnings and notices given, and a message's history. The
// rest stays readable (addresses of the envelope, Message-IDs, sizes,
// states, times, classes): the relay needs it to route and to list, and
// none of it is health data (README, "What is encrypted").
//
// A sealed value is a BLOB: the magic, the first bytes of the sealing
// key's fingerprint, a random nonce, the AES-256-GCM ciphertext and its
// tag, under the key's body key (see Keys) with its own additional data.
// A value in clear is TEXT, as a version before encryption wrote it: the
// type alone tells them apart, in Go and in SQL (typeof).
var textMagic = []byte("SRT1")

// textKeyID is how many bytes of the key's fingerprint name it in a value.
const textKeyID = 8

// textAAD binds a sealed value to its use: a body cannot pass for one.
func textAAD(name string) []byte { return []byte("text " + name) }

// sealedColumns are the columns Reseal seals in place (resealTexts).
var sealedColumns = []struct{ table, column string }{
	{"messages", "subject"},
	{"events", "text"},
	{"mailbox", "subject"},
	{"mailbox", "from_addr"},
	{"lots", "stamp"},
	{"lot_returns", "how"},
	{"lot_returns", "detail"},
	{"lot_returns", "facts"},
	{"rebuild_lots", "stamp"},
	{"rebuild_returns", "how"},
	{"rebuild_returns", "detail"},
	{"rebuild_returns", "facts"},
	{"warnings", "text"},
	{"account_notices", "text"},
	{"sealing", "value"}, // the lookup key; the texts' mark is a key name, in clear (resealTexts)
}

// textPrefix is what starts every value sealed under the write key.
func (s *Store) textPrefix() []byte {
	return append(append([]byte{}, textMagic...), s.keys.Write.PrimaryKey.Fingerprint[:textKeyID]...)
}

// sealText is the value to write for v: sealed under the write key, or v
// itself in a store without keys (tests) and for "" (nothing to hide, and
// the columns' defaults stay comparable).
func (s *Store) sealText(v string) any {
	if s.keys == nil || v == "" {
		return v
	}
	name := KeyName(s.keys.Write)
	g, _, err := s.keys.aead(name)
	if err != nil {
		panic(err) // keysFit made every body key at open
	}
	prefix := s.textPrefix()
	out := make([]byte, len(prefix)+g.NonceSize(), len(prefix)+g.NonceSize()+len(v)+g.Overhead())
	copy(out, prefix)
	if _, err := rand.Read(out[len(prefix):]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return g.Seal(out, out[len(prefix):], []byte(v), textAAD(name))
}

// What a sealed value reads as when it cannot be opened.
const (
	textUnreadable = "(damaged: does not decrypt)"
	textLocked     = "(encrypted: run as root)"
)

// openText opens a value read from a sealed column.
func (s *Store) openText(v []byte) (string, error) {
	if !bytes.HasPrefix(v, textMagic) {
		return string(v), nil // a BLOB in clear: not one of ours
	}
	if s.keys == nil {
		return "", ErrSealed
	}
	id := v[len(textMagic):min(len(v), len(textMagic)+textKeyID)]
	for _, e := range s.keys.Read {
		if !bytes.Equal(e.PrimaryKey.Fingerprint[:textKeyID], id) {
			continue
		}
		name := KeyName(e)
		g, _, err := s.keys.aead(name)
		if err != nil {
			return "", err
		}
		head := len(textMagic) + textKeyID + g.NonceSize()
		if len(v) < head+g.Overhead() {
			return "", ErrCorrupt
		}
		p, err := g.Open(nil, v[len(textMagic)+textKeyID:head], v[head:], textAAD(name))
		if err != nil {
			return "", ErrCorrupt
		}
		return string(p), nil
	}
	return "", ErrSealed
}

// clear scans a sealed column into *dst: sealed or in clear, or a word
// that says why it cannot be read (a listing goes on past one damaged row).
func (s *Store) clear(dst *string) sql.Scanner { return opener{s, dst} }

type opener struct {
	s   *Store
	dst *string
}

func (o opener) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*o.dst = ""
	case string:
		*o.dst = x
	case []byte:
		p, err := o.s.openText(x)
		switch {
		case errors.Is(err, ErrSealed):
			*o.dst = textLocked
		case err != nil:
			*o.dst = textUnreadable
		default:
			*o.dst = p
		}
	default:
		return fmt.Errorf("a sealed column holds a %T", v)
	}
	return nil
}

// The lookup key. The DOUBLON guard and the matching of returns look lots
// up by stamp, and by the day in it, which are sealed: they look up a
// keyed hash of it instead (HMAC-SHA256 under a random key of the store,
// itself sealed in the table sealing), which says nothing to whoever has
// not the key. The key is the store's own, not derived from the store key,
// so that a rotation keeps every lookup as it was. A store without keys
// looks up the values themselves.
const lookupKeyName = "lookup key"

// lookup is what a lot is looked up by, for a value of a kind.
func (s *Store) lookup(kind, v string) string {
	if s.lookupKey == nil {
		if kind == dayLookup && len(v) > 8 {
			return v[:8]
		}
		return v
	}
	if kind == dayLookup && len(v) > 8 {
		v = v[:8]
	}
	m := hmac.New(sha256.New, s.lookupKey)
	m.Write([]byte(kind + "\x00" + v))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// The kinds of lookup: a lot's stamp, and its day (the stamp's first
// eight digits, YYYYMMDD), which a NOEMIE lot date names.
const (
	stampLookup = "stamp"
	dayLookup   = "day"
)

// loadLookupKey reads the store's lookup key, making it on a store's first
// open with keys. That first open also turns the ledger's lookups, which
// were the stamps themselves, into keyed ones, in the same transaction: no
// lookup ever runs against a half-converted ledger.
func (s *Store) loadLookupKey(db *sql.DB, create bool) error {
	if s.keys == nil {
		return nil
	}
	var v []byte
	err := db.QueryRow("SELECT value FROM sealing WHERE name = ?", lookupKeyName).Scan(&v)
	if err == nil {
		p, err := s.openText(v)
		if err != nil {
			return fmt.Errorf("the store's lookup key: %w", err)
		}
		if s.lookupKey, err = hex.DecodeString(p); err != nil || len(s.lookupKey) != 32 {
			return fmt.Errorf("the store's lookup key is damaged")
		}
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) || !create {
		if errors.Is(err, sql.ErrNoRows) {
			return nil // read-only, before the daemon's first start with keys: the ledger looks up in clear
		}
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO sealing(name, value) VALUES (?, ?)", lookupKeyName, s.sealText(hex.EncodeToString(key))); err != nil {
		return err
	}
	s.lookupKey = key
	rows, err := tx.Query("SELECT msg_id, stamp FROM lots WHERE typeof(stamp) = 'text'")
	if err != nil {
		s.lookupKey = nil
		return err
	}
	type lot struct {
		id    int64
		stamp string
	}
	var lots []lot
	for rows.Next() {
		var l lot
		rows.Scan(&l.id, &l.stamp)
		lots = append(lots, l)
	}
	rows.Close()
	for _, l := range lots {
		if _, err := tx.Exec("UPDATE lots SET stamp_key = ?, day_key = ? WHERE msg_id = ?", s.lookup(stampLookup, l.stamp), s.lookup(dayLookup, l.stamp), l.id); err != nil {
			s.lookupKey = nil
			return err
		}
	}
	// A rebuild left half-way starts again from the beginning anyway.
	if _, err := tx.Exec("DELETE FROM rebuild_returns; DELETE FROM rebuild_lots"); err != nil {
		s.lookupKey = nil
		return err
	}
	if err := tx.Commit(); err != nil {
		s.lookupKey = nil
		return err
	}
	return nil
}

// textsMark names, in the table sealing, the key every sealed column was
// last found sealed to: a start whose write key it names reads no column.
const textsMark = "texts sealed to"

// textBatch is how many values resealTexts seals per write.
const textBatch = 200

// resealTexts seals to the write key every value of the sealed columns
// that is not: in clear (a version before encryption) or under an older
// key. A batch per write, each checked unchanged; a kill leaves the mark
// unset and the next start goes on. It returns how many it sealed, and
// how many in clear it found (the caller VACUUMs then).
func (s *Store) resealTexts(ctx context.Context) (sealed, plain, damaged int, err error) {
	current := KeyName(s.keys.Write)
	var mark string
	s.r.QueryRowContext(ctx, "SELECT value FROM sealing WHERE name = ?", textsMark).Scan(&mark)
	if mark == current {
		return 0, 0, 0, nil
	}
	prefix := s.textPrefix()
	for _, c := range sealedColumns {
		where := fmt.Sprintf("((typeof(%[1]s) = 'text' AND %[1]s != '') OR (typeof(%[1]s) = 'blob' AND substr(%[1]s, 1, %[2]d) != ?))", c.column, len(prefix))
		if c.table == "sealing" {
			where += " AND name = '" + lookupKeyName + "'"
		}
		var after int64
		for ctx.Err() == nil {
			type val struct {
				id       int64
				old, new any
			}
			rows, err := s.r.QueryContext(ctx, fmt.Sprintf("SELECT rowid, %s FROM %s WHERE %s AND rowid > ? ORDER BY rowid LIMIT ?", c.column, c.table, where), prefix, after, textBatch)
			if err != nil {
				return sealed, plain, damaged, err
			}
			var batch []val
			n := 0
			for rows.Next() {
				var id int64
				var v any
				if err := rows.Scan(&id, &v); err != nil {
					rows.Close()
					return sealed, plain, damaged, err
				}
				n++
				after = id
				var p string
				switch x := v.(type) {
				case string:
					p = x
					plain++
				case []byte:
					if p, err = s.openText(x); err != nil {
						damaged++ // left as it is: it reads as damaged, the rest goes on
						continue
					}
				}
				batch = append(batch, val{id, v, s.sealText(p)})
			}
			rows.Close()
			if n == 0 {
				break
			}
			if err := s.writeWait(ctx, func(tx *sql.Tx) error {
				for _, b := range batch {
					if _, err := tx.Exec(fmt.Sprintf("UPDATE %s SET %s = ? WHERE rowid = ? AND %s = ?", c.table, c.column, c.column), b.new, b.id, b.old); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return sealed, plain, damaged, err
			}
			sealed += len(batch)
		}
	}
	if err := ctx.Err(); err != nil {
		return sealed, plain, damaged, err
	}
	err = s.writeWait(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec("INSERT OR REPLACE INTO sealing(name, value) VALUES (?, ?)", textsMark, current)
		return err
	})
	return sealed, plain, damaged, err
}
