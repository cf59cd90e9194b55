package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Keys are the appliance's OpenPGP keys. Every body is sealed to Write
// before it reaches the database, and opened with whichever of Read sealed
// it (Write is among them; the others are the keys before a rotation).
// The store never holds a body in clear on disk once it has keys.
type Keys struct {
	Write *openpgp.Entity
	Read  openpgp.EntityList
}

// KeyName names a key as the store records it beside each body it
// sealed: the hex of the primary key's fingerprint.
func KeyName(e *openpgp.Entity) string { return hex.EncodeToString(e.PrimaryKey.Fingerprint) }

// sealConfig: AES-256, no compression (it would leak the size of what
// repeats, and costs time), the integrity check of SEIPD.
var sealConfig = &packet.Config{DefaultCipher: packet.CipherAES256, DefaultCompressionAlgo: packet.CompressionNone}

// ErrSealed is returned for a body sealed to a key this store was not
// given (the CLI reading the store while the daemon is down, or a key
// missing after a rotation).
var ErrSealed = errors.New("the body is encrypted and this process has not the key: ask the running daemon")

// maxOpened bounds what one body may open to: above any mail the relay
// accepts (max_message_size) or fetches (max_fetch_size).
const maxOpened = 256 << 20

// ErrCorrupt marks a body whose ciphertext does not open (altered on disk).
var ErrCorrupt = errors.New("the stored body is damaged: its encryption does not verify")

// seal encrypts a body to the write key, before the write transaction (it
// parses nothing, but costs time). Without keys it returns the body as is,
// with an empty key name: a store made for tests, or before `init`.
func (s *Store) seal(body []byte) (sealed []byte, key string, err error) {
	k := s.keys
	if k == nil {
		return body, "", nil
	}
	// One allocation of the ciphertext's size (the packets' headers
	// included): bytes.Buffer's Grow would take twice that.
	b := &sliceWriter{buf: make([]byte, 0, len(body)+len(body)/1024+4096)}
	w, err := openpgp.Encrypt(b, []*openpgp.Entity{k.Write}, nil, &openpgp.FileHints{IsBinary: true}, sealConfig)
	if err != nil {
		return nil, "", fmt.Errorf("encrypting a body: %w", err)
	}
	// In small writes: go-crypto's packet writers buffer what one Write
	// gives them, and a 17 MB return in one Write would cost its size
	// three times over.
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 64<<10)
		if _, err := w.Write(rest[:n]); err != nil {
			return nil, "", fmt.Errorf("encrypting a body: %w", err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		return nil, "", fmt.Errorf("encrypting a body: %w", err)
	}
	return b.buf, KeyName(k.Write), nil
}

// sliceWriter appends to a slice made the right size beforehand.
type sliceWriter struct{ buf []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// unseal opens a body read from the database; key is the name stored
// beside it ("" for a body still in clear, from before encryption).
func (s *Store) unseal(data []byte, key string) ([]byte, error) {
	if key == "" {
		return data, nil
	}
	if s.keys == nil || !s.keys.has(key) {
		return nil, ErrSealed
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(data), s.keys.Read, nil, sealConfig)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrCorrupt, err)
	}
	// The integrity check runs at the end. A sealed body is never compressed
	// (sealConfig), so one that opens to more than the ciphertext's size,
	// or to more than any mail the relay keeps, is damaged or forged.
	// One allocation of the ciphertext's size, which the body never
	// exceeds: no doubling growth for a large return.
	limit := min(int64(len(data)), maxOpened)
	body := make([]byte, 0, limit+1)
	r := io.LimitReader(md.UnverifiedBody, limit+1)
	for {
		n, err := r.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrCorrupt, err)
		}
		if len(body) == cap(body) {
			return nil, fmt.Errorf("%w (it opens to more than it holds)", ErrCorrupt)
		}
	}
	return body, nil
}

func (k *Keys) has(name string) bool {
	for _, e := range k.Read {
		if strings.EqualFold(KeyName(e), name) {
			return true
		}
	}
	return false
}

// keysFit says whether the keys given open every sealed body of the store.
func keysFit(r *sql.DB, keys *Keys, dir string) error {
	rows, err := r.Query("SELECT DISTINCT sealed FROM bodies WHERE sealed != ''")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		switch {
		case keys == nil:
			return fmt.Errorf("the store in %s is encrypted (bodies sealed to key %s) and no key was given", dir, name)
		case !keys.has(name):
			return fmt.Errorf("the store in %s holds bodies sealed to key %s, which is not among the keys given (%s): restore that key, or the store cannot be read", dir, name, keys.names())
		}
	}
	return rows.Err()
}

func (k *Keys) names() string {
	var n []string
	for _, e := range k.Read {
		n = append(n, KeyName(e))
	}
	return strings.Join(n, ", ")
}

// sealBatch is how many bodies Reseal seals per write.
const sealBatch = 50

// Reseal seals to the write key, in place, every body that is not sealed
// to it: those written in clear (by a version before encryption, or
// before the keys were given) and those sealed to an older key (after
// `keys rotate`). It goes a batch per write so that submissions go on
// meanwhile; each batch is read, opened and sealed outside the
// transaction, and written only where the row is still as it was read. A
// kill leaves some done and some not: the next start goes on. When it
// changed any, the write-ahead log is checkpointed and truncated, so that
// no old page stays in it (freed pages are zeroed: secure_delete). It
// returns how many bodies it sealed; a body that does not open is left as
// it is and counted in damaged.
func (s *Store) Reseal(ctx context.Context) (sealed, damaged int, err error) {
	if s.keys == nil {
		return 0, 0, nil
	}
	current := KeyName(s.keys.Write)
	var after int64
	for ctx.Err() == nil {
		rows, err := s.r.QueryContext(ctx, "SELECT id, data, sealed FROM bodies WHERE sealed != ? AND id > ? ORDER BY id LIMIT ?", current, after, sealBatch)
		if err != nil {
			return sealed, damaged, err
		}
		type row struct {
			id        int64
			data, was string
			key       string
		}
		var batch []row
		n := 0
		for rows.Next() {
			var id int64
			var data []byte
			var was string
			if err := rows.Scan(&id, &data, &was); err != nil {
				rows.Close()
				return sealed, damaged, err
			}
			n++
			after = id
			plain, err := s.unseal(data, was)
			if err != nil {
				damaged++ // left as it is: mail show says so, the rest goes on
				continue
			}
			out, key, err := s.seal(plain)
			if err != nil {
				rows.Close()
				return sealed, damaged, err
			}
			batch = append(batch, row{id: id, data: string(out), was: was, key: key})
		}
		rows.Close()
		if n == 0 {
			break
		}
		err = s.writeWait(ctx, func(tx *sql.Tx) error {
			for _, b := range batch {
				if _, err := tx.Exec("UPDATE bodies SET data = ?, sealed = ? WHERE id = ? AND sealed = ?", []byte(b.data), b.key, b.id, b.was); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return sealed, damaged, err
		}
		sealed += len(batch)
		if dieSealing != "" && sealed >= sealBatch {
			os.Exit(3) // TEST-ONLY: a kill half-way (relay/e2e)
		}
	}
	if sealed > 0 {
		if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return sealed, damaged, fmt.Errorf("checkpointing after sealing: %w", err)
		}
	}
	return sealed, damaged, ctx.Err()
}

// dieSealing is a TEST-ONLY hook for relay/e2e, never set in production:
// the process exits after the first batch Reseal wrote, as a kill would.
var dieSealing = os.Getenv("SESAM_RELAY_TEST_DIE_SEALING")
