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
	var b bytes.Buffer
	b.Grow(len(body) + 512)
	w, err := openpgp.Encrypt(&b, []*openpgp.Entity{k.Write}, nil, &openpgp.FileHints{IsBinary: true}, sealConfig)
	if err != nil {
		return nil, "", fmt.Errorf("encrypting a body: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return nil, "", fmt.Errorf("encrypting a body: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, "", fmt.Errorf("encrypting a body: %w", err)
	}
	return b.Bytes(), KeyName(k.Write), nil
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
	limit := min(int64(len(data)), maxOpened)
	body, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrCorrupt, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w (it opens to more than it holds)", ErrCorrupt)
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

// sealBatch is how many bodies in clear SealPlain seals per write.
const sealBatch = 50

// SealPlain seals, in place, the bodies written in clear (by a version
// before encryption, or before the keys were given), a batch per write so
// that submissions go on meanwhile; each batch is read and sealed outside
// the transaction, and written only where the row is still in clear. A
// kill leaves some sealed and some not: the next start goes on. When it
// sealed any, the write-ahead log is checkpointed and truncated, so that
// no old page in clear stays in it (freed pages are zeroed: secure_delete).
// It returns how many bodies it sealed.
func (s *Store) SealPlain(ctx context.Context) (int, error) {
	if s.keys == nil {
		return 0, nil
	}
	total := 0
	for ctx.Err() == nil {
		rows, err := s.r.QueryContext(ctx, "SELECT id, data FROM bodies WHERE sealed = '' ORDER BY id LIMIT ?", sealBatch)
		if err != nil {
			return total, err
		}
		type sealed struct {
			id   int64
			data []byte
			key  string
		}
		var batch []sealed
		for rows.Next() {
			var b sealed
			var plain []byte
			if err := rows.Scan(&b.id, &plain); err != nil {
				rows.Close()
				return total, err
			}
			if b.data, b.key, err = s.seal(plain); err != nil {
				rows.Close()
				return total, err
			}
			batch = append(batch, b)
		}
		rows.Close()
		if len(batch) == 0 {
			break
		}
		err = s.writeWait(ctx, func(tx *sql.Tx) error {
			for _, b := range batch {
				if _, err := tx.Exec("UPDATE bodies SET data = ?, sealed = ? WHERE id = ? AND sealed = ''", b.data, b.key, b.id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(batch)
		if dieSealing != "" && total >= sealBatch {
			os.Exit(3) // TEST-ONLY: a kill half-way (relay/e2e)
		}
	}
	if total > 0 {
		if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return total, fmt.Errorf("checkpointing after sealing: %w", err)
		}
	}
	return total, ctx.Err()
}

// dieSealing is a TEST-ONLY hook for relay/e2e, never set in production:
// the process exits after the first batch SealPlain wrote, as a kill would.
var dieSealing = os.Getenv("SESAM_RELAY_TEST_DIE_SEALING")
