package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
)

// Keys are the appliance's OpenPGP keys. Every body is sealed under Write
// before it reaches the database, and opened with whichever of Read sealed
// it (Write is among them; the others are the keys before a rotation).
// The store never holds a body in clear on disk once it has keys.
//
// A body is not an OpenPGP message of its own: that costs an X25519
// operation per body (95 µs to seal, 71 µs to open 20 KB here, a third of
// the relay's throughput). Each key gives instead a body key, derived from
// its private half (HKDF-SHA256), and bodies are AES-256-GCM under it. The
// OpenPGP key stays the one secret to keep, seal and back up.
type Keys struct {
	Write *openpgp.Entity
	Read  openpgp.EntityList

	once  sync.Once
	aeads map[string]cipher.AEAD // by KeyName
	err   error
}

// KeyName names a key as the store records it beside each body it
// sealed: the hex of the primary key's fingerprint.
func KeyName(e *openpgp.Entity) string { return hex.EncodeToString(e.PrimaryKey.Fingerprint) }

// bodyKeyInfo binds the derived key to its use and to this format.
const bodyKeyInfo = "sesam-relay store body key, AES-256-GCM, format 1"

// bodyMagic starts every sealed body: the format, for the day it changes.
var bodyMagic = []byte("SRB1")

// aead is the body cipher of the key named name.
func (k *Keys) aead(name string) (cipher.AEAD, bool, error) {
	k.once.Do(func() {
		k.aeads = map[string]cipher.AEAD{}
		for _, e := range k.Read {
			if e.PrivateKey == nil {
				k.err = fmt.Errorf("store key %s has no private half", KeyName(e))
				return
			}
			// The secret itself (the Ed25519 seed), not a serialization of
			// it that a library version could change: the body key must be
			// the same for as long as the store lives.
			sk, ok := e.PrivateKey.PrivateKey.(*eddsa.PrivateKey)
			if !ok || len(sk.D) < 32 {
				k.err = fmt.Errorf("store key %s is not an Ed25519 key as sesam-relay makes them", KeyName(e))
				return
			}
			key, err := hkdf.Key(sha256.New, sk.D, []byte(KeyName(e)), bodyKeyInfo, 32)
			if err != nil {
				k.err = err
				return
			}
			block, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCM(block)
			k.aeads[KeyName(e)] = g
		}
	})
	g, ok := k.aeads[name]
	return g, ok, k.err
}

// ErrSealed is returned for a body sealed to a key this store was not
// given (the CLI reading the store while the daemon is down, or a key
// missing after a rotation).
var ErrSealed = errors.New("the body is encrypted and this process has not the key: ask the running daemon, or run as root")

// ErrCorrupt marks a body whose ciphertext does not open (altered on disk).
var ErrCorrupt = errors.New("the stored body is damaged: its encryption does not verify")

// seal encrypts a body under the write key, before the write transaction
// (it parses nothing, but costs time): the magic, a random nonce, the
// ciphertext and its tag, in one allocation. The key's name is bound to it
// (additional data): a body moved beside another key's name does not open.
// Without keys it returns the body as is, with an empty key name: a store
// made for tests, or before `init`.
func (s *Store) seal(body []byte) (sealed []byte, key string, err error) {
	k := s.keys
	if k == nil {
		return body, "", nil
	}
	name := KeyName(k.Write)
	g, _, err := k.aead(name)
	if err != nil {
		return nil, "", err
	}
	out := make([]byte, len(bodyMagic)+g.NonceSize(), len(bodyMagic)+g.NonceSize()+len(body)+g.Overhead())
	copy(out, bodyMagic)
	if _, err := rand.Read(out[len(bodyMagic):]); err != nil {
		return nil, "", err
	}
	return g.Seal(out, out[len(bodyMagic):], body, []byte(name)), name, nil
}

// unseal opens a body read from the database; key is the name stored
// beside it ("" for a body still in clear, from before encryption).
func (s *Store) unseal(data []byte, key string) ([]byte, error) {
	if key == "" {
		return data, nil
	}
	if s.keys == nil {
		return nil, ErrSealed
	}
	g, ok, err := s.keys.aead(key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrSealed
	}
	head := len(bodyMagic) + g.NonceSize()
	if len(data) < head+g.Overhead() || !bytes.Equal(data[:len(bodyMagic)], bodyMagic) {
		return nil, fmt.Errorf("%w (not a sealed body)", ErrCorrupt)
	}
	body, err := g.Open(make([]byte, 0, len(data)-head-g.Overhead()), data[len(bodyMagic):head], data[head:], []byte(key))
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrCorrupt, err)
	}
	return body, nil
}

func (k *Keys) has(name string) bool {
	_, ok, _ := k.aead(name)
	return ok
}

// keysFit says whether the keys given open every sealed body of the store.
func keysFit(r *sql.DB, keys *Keys, dir string) error {
	if keys != nil {
		if _, _, err := keys.aead(""); err != nil { // each key gives its body key, or none is used
			return err
		}
	}
	if keys == nil {
		var n int
		if err := r.QueryRow("SELECT count(*) FROM sealing WHERE name = ?", lookupKeyName).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("the store in %s is encrypted and no key was given", dir)
		}
	}
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
// returns how many bodies and how many values of the sealed columns
// (text.go) it sealed; one that does not open is left as it is and
// counted in damaged.
func (s *Store) Reseal(ctx context.Context) (sealed, fields, damaged int, err error) {
	if s.keys == nil {
		return 0, 0, 0, nil
	}
	current := KeyName(s.keys.Write)
	// Which keys sealed what, from the index alone: a start with nothing
	// to do reads no body (a scan on sealed != ? would read every body's
	// overflow pages to reach the column behind it).
	var stale []string
	rows, err := s.r.QueryContext(ctx, "SELECT DISTINCT sealed FROM bodies")
	if err != nil {
		return 0, 0, 0, err
	}
	for rows.Next() {
		var name string
		rows.Scan(&name)
		if name != current {
			stale = append(stale, name)
		}
	}
	rows.Close()
	plainSeen := slices.Contains(stale, "")
	for _, was := range stale {
		_, d, err := s.resealFrom(ctx, was, &sealed)
		damaged += d
		if err != nil {
			return sealed, fields, damaged, err
		}
	}
	fields, plainTexts, d, err := s.resealTexts(ctx)
	damaged += d
	if err != nil {
		return sealed, fields, damaged, err
	}
	plainSeen = plainSeen || plainTexts > 0
	if sealed > 0 || fields > 0 {
		// A version before encryption did not zero what it freed: the
		// bodies it purged may still lie in free pages. VACUUM rewrites
		// the file from the live rows only (a few seconds, writes wait).
		if plainSeen {
			if _, err := s.w.ExecContext(ctx, "VACUUM"); err != nil {
				return sealed, fields, damaged, fmt.Errorf("rewriting the store after sealing: %w", err)
			}
		}
		if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return sealed, fields, damaged, fmt.Errorf("checkpointing after sealing: %w", err)
		}
	}
	return sealed, fields, damaged, ctx.Err()
}

// resealFrom seals to the write key, a batch per write, the bodies sealed
// under the key named was ("" in clear), through the index on sealed;
// *total counts them for the test hook. A body that does not open is left.
func (s *Store) resealFrom(ctx context.Context, was string, total *int) (sealed, damaged int, err error) {
	type row struct {
		id   int64
		data []byte
		key  string
	}
	var after int64
	for ctx.Err() == nil {
		rows, err := s.r.QueryContext(ctx, "SELECT id, data FROM bodies WHERE sealed = ? AND id > ? ORDER BY id LIMIT ?", was, after, sealBatch)
		if err != nil {
			return sealed, damaged, err
		}
		var batch []row
		n := 0
		for rows.Next() {
			var id int64
			var data []byte
			if err := rows.Scan(&id, &data); err != nil {
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
			batch = append(batch, row{id: id, data: out, key: key})
		}
		rows.Close()
		if n == 0 {
			break
		}
		err = s.writeWait(ctx, func(tx *sql.Tx) error {
			for _, b := range batch {
				if _, err := tx.Exec("UPDATE bodies SET data = ?, sealed = ? WHERE id = ? AND sealed = ?", b.data, b.key, b.id, was); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return sealed, damaged, err
		}
		sealed += len(batch)
		*total += len(batch)
		if dieSealing != "" && *total >= sealBatch {
			os.Exit(3) // TEST-ONLY: a kill half-way (relay/e2e)
		}
	}
	return sealed, damaged, ctx.Err()
}

// dieSealing is a TEST-ONLY hook for relay/e2e, never set in production:
// the process exits after the first batch Reseal wrote, as a kill would.
var dieSealing = os.Getenv("SESAM_RELAY_TEST_DIE_SEALING")
