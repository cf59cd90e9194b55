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

// FuzzOpenText is FuzzUnseal for the sealed columns (text.go): a value
// altered on disk reads as damaged or sealed to an unknown key, never as
// another text, never a panic.
// go test ./relay/store -run '^$' -fuzz FuzzOpenText -fuzztime 30s
func FuzzOpenText(f *testing.F) {
	s, err := store.OpenSealed(f.TempDir(), newKeysF(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	orig := "IR/12345678901234/2026112309000000001/00003"
	sealed := store.SealText(s, orig)
	f.Add(sealed, 0, byte(0))
	f.Add(sealed, 5, byte(1))
	f.Add(sealed, 20, byte(0x80))
	f.Add(sealed[:14], 0, byte(0))
	f.Add([]byte("SRT1"), 0, byte(0))
	f.Fuzz(func(t *testing.T, data []byte, at int, flip byte) {
		if len(data) > 1<<12 {
			return
		}
		d := bytes.Clone(data)
		if len(d) > 0 {
			at = ((at % len(d)) + len(d)) % len(d)
			d[at] ^= flip
		}
		v, err := store.OpenText(s, d)
		switch {
		case err != nil && !errors.Is(err, store.ErrCorrupt) && !errors.Is(err, store.ErrSealed):
			t.Fatalf("a damaged value gives %v", err)
		case err == nil && bytes.HasPrefix(d, []byte("SRT1")) && !bytes.Equal(d, sealed):
			t.Fatalf("an altered value opened, to %q", v)
		case err == nil && bytes.Equal(d, sealed) && v != orig:
			t.Fatalf("the untouched value opens to %q", v)
		}
	})
}
