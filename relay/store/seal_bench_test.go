package store_test

import (
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// BenchmarkSeal is the cost of sealing and opening one 20 KB body:
// go test ./relay/store -run '^$' -bench Seal
func BenchmarkSeal(b *testing.B) {
	s, err := store.OpenSealed(b.TempDir(), newKeysF(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, 20<<10)
	out, key, _ := store.Seal(s, body)
	b.Run("seal-20K", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			store.Seal(s, body)
		}
	})
	b.Run("open-20K", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			if _, err := store.Unseal(s, out, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}
