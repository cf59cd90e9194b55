package backup_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/backup"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// FuzzRead feeds the restore's reader damaged backups: it must refuse
// them (ErrNotBackup) or read them, never panic, and never unpack more
// than the backup held.
// go test ./relay/backup -run '^$' -fuzz FuzzRead -fuzztime 30s
func FuzzRead(f *testing.F) {
	rk, err := keys.New("recovery")
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	st, err := store.Open(filepath.Join(dir, "state"))
	if err != nil {
		f.Fatal(err)
	}
	st.Close()
	path := filepath.Join(dir, "b.pgp")
	if _, err := backup.Write(path, filepath.Join(dir, "state"), dir, []byte("keyring"), backup.Manifest{Hostname: "relais"}, []*openpgp.Entity{rk}); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	if _, err := backup.Read(bytes.NewReader(good), openpgp.EntityList{rk}, f.TempDir()); err != nil {
		f.Fatalf("a good backup does not read: %v", err)
	}
	f.Add(good, 0, byte(0))
	f.Add(good, len(good)/2, byte(0x40))
	f.Add(good[:len(good)/2], 0, byte(0))
	f.Fuzz(func(t *testing.T, data []byte, at int, flip byte) {
		if len(data) > 1<<18 {
			return
		}
		d := bytes.Clone(data)
		if len(d) > 0 {
			at = ((at % len(d)) + len(d)) % len(d)
			d[at] ^= flip
		}
		out := t.TempDir()
		c, err := backup.Read(bytes.NewReader(d), openpgp.EntityList{rk}, out)
		if err != nil {
			return
		}
		if fi, err := os.Stat(c.DB); err != nil || fi.Size() > int64(len(d)) {
			t.Fatalf("a %d-byte backup unpacked to %v (%v)", len(d), fi.Size(), err)
		}
	})
}
