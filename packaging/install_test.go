package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chroot is a fresh Debian 12 (debootstrap's minbase, as small as a
// practice's box gets), in which the package is installed, upgraded,
// removed and purged. No systemd runs there: the postinst must not start
// anything, and the test runs the daemon itself as the service user.
type chroot struct {
	t    *testing.T
	root string
}

func newChroot(t *testing.T) *chroot {
	need(t, "debootstrap", "chroot", "mount")
	if os.Geteuid() != 0 {
		t.Fatal("the install test needs root (debootstrap, chroot): .ci/run runs as root")
	}
	root := filepath.Join(t.TempDir(), "debian")
	t.Logf("debootstrap bookworm into %s", root)
	run(t, "debootstrap", "--variant=minbase", "bookworm", root, "http://deb.debian.org/debian")
	run(t, "mount", "-t", "proc", "proc", filepath.Join(root, "proc"))
	t.Cleanup(func() {
		// Unmounted before t.TempDir's removal walks the tree.
		exec.Command("umount", "-l", filepath.Join(root, "proc")).Run()
	})
	os.WriteFile(filepath.Join(root, "etc/resolv.conf"), mustRead(t, "/etc/resolv.conf"), 0o644)
	c := &chroot{t: t, root: root}
	c.run("apt-get", "update", "-qq")
	return c
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs a command inside the chroot as root.
func (c *chroot) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command("chroot", append([]string{c.root}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("in the chroot, %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// as runs a command inside the chroot as user (with that user's groups).
func (c *chroot) as(user string, args ...string) (string, error) {
	cmd := exec.Command("chroot", append([]string{c.root, "runuser", "-u", user, "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *chroot) path(p string) string { return filepath.Join(c.root, p) }

// install copies a package into the chroot and installs it with apt-get,
// as the README tells an installer to.
func (c *chroot) install(deb string) string {
	c.t.Helper()
	dst := "/tmp/" + filepath.Base(deb)
	os.WriteFile(c.path(dst), mustRead(c.t, deb), 0o644)
	return c.run("apt-get", "install", "-y", "--no-install-recommends", "./"+strings.TrimPrefix(dst, "/"))
}

// files lists the chroot's files, leaving out what churns by itself (apt's
// caches and lists, logs, dpkg's own records, the shadow files' backups).
func (c *chroot) files() []string {
	var list []string
	skip := []string{"proc/", "tmp/", "run/", "dev/", "var/cache/", "var/log/", "var/lib/apt/", "var/lib/dpkg/"}
	filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(c.root, p)
		for _, s := range skip {
			if strings.HasPrefix(rel+"/", s) {
				if d != nil && d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if strings.HasPrefix(rel, "etc/") && strings.HasSuffix(rel, "-") {
			return nil // /etc/passwd- and co: adduser's backups
		}
		list = append(list, rel)
		return nil
	})
	sort.Strings(list)
	return list
}

// mode returns "0640 root:sesam-relay" for a path in the chroot.
func (c *chroot) mode(p string) string {
	c.t.Helper()
	return strings.TrimSpace(c.run("stat", "-c", "%04a %U:%G", p))
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestInstallUpgradeRemovePurgeOnAFreshDebian(t *testing.T) {
	need(t, "python3")
	c := newChroot(t)
	before := c.files()

	// Install: user, folders, modes, certificate; enabled, not started.
	out := c.install(debs["amd64"])
	if !strings.Contains(out, "SHA-256 fingerprint") {
		t.Errorf("the postinst did not prepare the store and certificate:\n%s", out)
	}
	pw := strings.Split(strings.TrimSpace(c.run("getent", "passwd", "sesam-relay")), ":")
	if len(pw) != 7 || pw[5] != "/var/lib/sesam-relay" || pw[6] != "/usr/sbin/nologin" {
		t.Errorf("the service user: %v", pw)
	}
	for path, want := range map[string]string{
		"/etc/sesam-relay/config.toml":            "0640 root:sesam-relay",
		"/etc/sesam-relay/secrets":                "0750 root:sesam-relay",
		"/etc/sesam-relay/keys":                   "0700 sesam-relay:sesam-relay",
		"/etc/sesam-relay/keys/store-key":         "0600 sesam-relay:sesam-relay", // no systemd here: a plain file
		"/var/lib/sesam-relay":                    "0750 sesam-relay:sesam-relay",
		"/var/lib/sesam-relay/tls/selfsigned.pem": "0600 sesam-relay:sesam-relay",
		"/var/lib/sesam-relay/sesam-relay.db":     "0640 sesam-relay:sesam-relay",
		"/usr/bin/sesam-relay":                    "0755 root:root",
	} {
		if got := c.mode(path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if _, err := os.Lstat(c.path("/etc/systemd/system/multi-user.target.wants/sesam-relay.service")); err != nil {
		t.Errorf("the service is not enabled: %v", err)
	}
	if out, err := c.as("sesam-relay", "sesam-relay", "check", "--config", "/etc/sesam-relay/config.toml"); err != nil || !strings.Contains(out, "check: OK") {
		t.Errorf("check as the service user: %v\n%s", err, out)
	}

	// The installer's edits: an account (its provider unreachable, so the
	// mail stays queued), loopback ports, a provider password.
	smtp := freePort(t)
	cfg := strings.NewReplacer(
		`smtp    = ["0.0.0.0:587"]`, fmt.Sprintf(`smtp    = [%q]`, smtp),
		`smtps   = ["0.0.0.0:465"]`, `smtps   = []`,
		`pop3    = ["0.0.0.0:110"]`, `pop3    = []`,
		`pop3s   = ["0.0.0.0:995"]`, `pop3s   = []`,
		`web     = ["0.0.0.0:8443"]`, `web     = []`,
	).Replace(string(mustRead(t, c.path("/etc/sesam-relay/config.toml"))))
	hash := strings.TrimSpace(runIn(t, c, "secret-local\n", "sesam-relay", "passwd"))
	cfg += fmt.Sprintf(`
[[account]]
name          = "dupont"
password_hash = %q
address       = "jean.dupont@laposte.net"
  [account.upstream]
  smtp          = "smtp://127.0.0.1:1"
  username      = "jean.dupont"
  password_file = "/etc/sesam-relay/secrets/dupont"
`, hash)
	os.WriteFile(c.path("/etc/sesam-relay/config.toml"), []byte(cfg), 0o640)
	os.WriteFile(c.path("/etc/sesam-relay/secrets/dupont"), []byte("provider-pw\n"), 0o640)
	c.run("chgrp", "sesam-relay", "/etc/sesam-relay/secrets/dupont")
	if out, err := c.as("sesam-relay", "sesam-relay", "check"); err == nil || !strings.Contains(out, "dupont: FAILED") {
		t.Errorf("check with an unreachable provider should say so: %v\n%s", err, out)
	}

	// The daemon as systemd would run it: the service user, its runtime folder.
	c.run("install", "-d", "-o", "sesam-relay", "-g", "sesam-relay", "-m", "0750", "/run/sesam-relay")
	daemon := exec.Command("chroot", "--userspec=sesam-relay:sesam-relay", c.root, "/usr/bin/sesam-relay", "serve")
	daemon.Env = []string{"PATH=/usr/bin:/bin"}
	var log bytes.Buffer
	daemon.Stdout, daemon.Stderr = &log, &log
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			daemon.Process.Signal(syscall.SIGTERM)
			daemon.Wait()
			stopped = true
		}
	}
	defer stop()
	waitUntil(t, "the daemon's control socket", func() bool { _, err := os.Stat(c.path("/run/sesam-relay/control.sock")); return err == nil })

	// A technician in group sesam-relay reads the status without sudo;
	// another user cannot.
	c.run("useradd", "--no-create-home", "--groups", "sesam-relay", "tech")
	c.run("useradd", "--no-create-home", "visitor")
	if out, err := c.as("tech", "sesam-relay", "status"); err != nil || !strings.Contains(out, "dupont") {
		t.Errorf("status as a member of group sesam-relay: %v\n%s", err, out)
	}
	if out, err := c.as("visitor", "sesam-relay", "status"); err == nil || !strings.Contains(out, "permission") {
		t.Errorf("status as someone outside the group should be refused and say why: %v\n%s", err, out)
	}

	// A lot submitted with Python's smtplib; it waits in the queue.
	host, port, _ := strings.Cut(smtp, ":")
	submit := fmt.Sprintf(`
import smtplib
s = smtplib.SMTP(%q, %s, timeout=30)
s.starttls(); s.login("dupont", "secret-local")
s.sendmail("jean.dupont@laposte.net", ["secretariat@cabinet.test"], b"Subject: kept across upgrades\r\n\r\nbody\r\n")
s.quit()
`, host, port)
	if out, err := exec.Command("python3", "-c", submit).CombinedOutput(); err != nil {
		t.Fatalf("submitting: %v\n%s\nthe daemon's log:\n%s", err, out, log.String())
	}
	// A power cut, as far as the daemon can tell: SIGKILL. The mail is in
	// the write-ahead log, which the technician, who may not write there,
	// still reads (through a copy).
	daemon.Process.Signal(syscall.SIGKILL)
	daemon.Wait()
	stopped = true
	if !strings.Contains(log.String(), "sesam-relay ready") {
		t.Errorf("the daemon's log:\n%s", log.String())
	}
	if fi, err := os.Stat(c.path("/var/lib/sesam-relay/sesam-relay.db-wal")); err != nil || fi.Size() == 0 {
		t.Errorf("expected a write-ahead log after SIGKILL: %v", err)
	}
	techQueue(t, c, "after SIGKILL")
	cfgBefore := mustRead(t, c.path("/etc/sesam-relay/config.toml"))

	// Upgrade: the config and the mail stay.
	c.install(debs["newer"])
	if got := c.run("sesam-relay", "version"); strings.TrimSpace(got) != "sesam-relay "+newer {
		t.Errorf("after the upgrade: %q", got)
	}
	if !bytes.Equal(mustRead(t, c.path("/etc/sesam-relay/config.toml")), cfgBefore) {
		t.Errorf("the upgrade changed the edited config")
	}
	if got := c.mode("/etc/sesam-relay/config.toml"); got != "0640 root:sesam-relay" {
		t.Errorf("config after the upgrade: %s", got)
	}
	techQueue(t, c, "after the upgrade, the daemon stopped")

	// Remove keeps the config, the passwords and the mail; purge deletes them.
	c.run("apt-get", "remove", "-y", "sesam-relay")
	for _, p := range []string{"/etc/sesam-relay/config.toml", "/etc/sesam-relay/secrets/dupont", "/var/lib/sesam-relay/sesam-relay.db"} {
		if _, err := os.Stat(c.path(p)); err != nil {
			t.Errorf("remove deleted %s", p)
		}
	}
	if _, err := os.Stat(c.path("/usr/bin/sesam-relay")); err == nil {
		t.Error("remove left the binary")
	}
	c.run("apt-get", "purge", "-y", "sesam-relay")
	// Whatever apt pulled in for it goes, as an installer's autoremove
	// would take it.
	c.run("apt-get", "autoremove", "--purge", "-y")
	c.run("userdel", "tech")
	c.run("userdel", "visitor")
	if out, _ := c.as("root", "getent", "passwd", "sesam-relay"); out != "" {
		t.Errorf("purge left the user: %s", out)
	}
	if out, _ := c.as("root", "getent", "group", "sesam-relay"); out != "" {
		t.Errorf("purge left the group: %s", out)
	}
	after := c.files()
	if added, removed := diff(before, after); len(added)+len(removed) > 0 {
		t.Errorf("after purge, the system differs from before the install:\nadded %v\nremoved %v", added, removed)
	}
}

// runIn runs a command in the chroot with stdin.
func runIn(t *testing.T, c *chroot, stdin string, args ...string) string {
	cmd := exec.Command("chroot", append([]string{c.root}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return string(out)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func diff(a, b []string) (added, removed []string) {
	in := func(l []string, s string) bool {
		i := sort.SearchStrings(l, s)
		return i < len(l) && l[i] == s
	}
	for _, s := range b {
		if !in(a, s) {
			added = append(added, s)
		}
	}
	for _, s := range a {
		if !in(b, s) {
			removed = append(removed, s)
		}
	}
	return added, removed
}

// techQueue reads the queue with the daemon down: a technician of group
// sesam-relay sees the mail but not its Subject, which is sealed to the
// store key that only root and the service read; root sees it.
func techQueue(t *testing.T, c *chroot, when string) {
	t.Helper()
	out, _ := c.as("tech", "sesam-relay", "queue")
	if !strings.Contains(out, "secretariat@cabinet.test") || !strings.Contains(out, "(encrypted: run as root)") || strings.Contains(out, "kept across upgrades") {
		t.Errorf("the queued mail %s, read by a technician:\n%s", when, out)
	}
	if out := c.run("sesam-relay", "queue"); !strings.Contains(out, "kept across upgrades") {
		t.Errorf("the queued mail %s, read by root:\n%s", when, out)
	}
}
