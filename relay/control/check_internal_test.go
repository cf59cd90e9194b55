package control

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// A password file the installer made 0600 root:root is read by check run
// as root, but not by the service: check says so, and how to fix it.
func TestAPasswordFileTheServiceCannotReadIsNamed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test reads files as another user's mode bits would: run it as root, as .ci/test does")
	}
	nobody := &user.User{Uid: "65534", Gid: "65534", Username: "nobody"}
	dir, err := os.MkdirTemp("", "pwfile") // in /tmp itself: t.TempDir's parent is closed to others
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	f := filepath.Join(dir, "dupont")
	os.WriteFile(f, []byte("pw\n"), 0o600)
	err = readableBy(f, nobody)
	if err == nil || !strings.Contains(err.Error(), "cannot be read by user nobody") || !strings.Contains(err.Error(), "chmod 0640") {
		t.Fatalf("0600 root:root: %v", err)
	}
	os.Chmod(f, 0o644)
	if err := readableBy(f, nobody); err != nil {
		t.Fatalf("0644: %v", err)
	}
	os.Chmod(dir, 0o700)
	if err := readableBy(f, nobody); err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Fatalf("a closed folder: %v", err)
	}
}
