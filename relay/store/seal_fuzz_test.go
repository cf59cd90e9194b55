package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// FuzzUnseal feeds the body opener damaged ciphertext: it must say the
// body is damaged (or, rarely, open it), never panic or run away with
// memory, and a body it opens from untouched ciphertext is the original.
// go test ./relay/store -run '^$' -fuzz FuzzUnseal -fuzztime 30s
func FuzzUnseal(f *testing.F) {
	k := newKeysF(f)
	s, err := store.OpenSealed(f.TempDir(), k)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	orig := sealedBody(1)
	sealed, key, err := store.Seal(s, orig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, 0, byte(0))
	f.Add(sealed, len(sealed)/2, byte(1))
	f.Add(sealed[:len(sealed)/3], 0, byte(0))
	f.Add([]byte{0xc1, 0x5e}, 0, byte(0))
	f.Fuzz(func(t *testing.T, data []byte, at int, flip byte) {
		if len(data) > 1<<16 {
			return
		}
		d := bytes.Clone(data)
		if len(d) > 0 {
			at = ((at % len(d)) + len(d)) % len(d)
			d[at] ^= flip
		}
		body, err := store.Unseal(s, d, key)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("a damaged body gives %v, not ErrCorrupt", err)
			}
			return
		}
		if bytes.Equal(d, sealed) && !bytes.Equal(body, orig) {
			t.Fatal("the untouched ciphertext opens to another body")
		}
		if len(body) > len(d) {
			t.Fatalf("%d bytes of ciphertext opened to %d bytes", len(d), len(body))
		}
	})
}
