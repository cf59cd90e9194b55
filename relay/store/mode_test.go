package store_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The store holds health data: its files are 0640 or stricter even when the
// process runs under umask 022 (init from an installer's shell), and a file
// an older version left 0644 is tightened.
func TestStoreFilesAreNeverWorldReadable(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sesam-relay.db-shm"), nil, 0o644) // left by an older version
	s := open(t, dir)
	if _, err := enqueue(s, env("dupont"), []byte("Subject: x\r\n\r\ncare sheets\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sesam-relay.db", "sesam-relay.db-wal", "sesam-relay.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o027 != 0 {
			t.Errorf("%s is %v: others may read it, or the group may write it", name, fi.Mode().Perm())
		}
	}
}
