package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// net runs a program of the host (python3) in the container's network,
// where the relay listens on the container's own loopback.
func (b *booted) net(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(b.pid1), "-n", "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// practiceConfig is the packaged config with one account whose provider is
// unreachable (the lot stays queued), the container's loopback ports, and
// a backup folder.
func practiceConfig(t *testing.T, b *booted, hash string) {
	cfg := strings.NewReplacer(
		`smtp    = ["0.0.0.0:587"]`, `smtp    = ["127.0.0.1:1587"]`,
		`smtps   = ["0.0.0.0:465"]`, `smtps   = []`,
		`pop3    = ["0.0.0.0:110"]`, `pop3    = ["127.0.0.1:1110"]`,
		`pop3s   = ["0.0.0.0:995"]`, `pop3s   = []`,
		`web     = ["0.0.0.0:8443"]`, `web     = []`,
	).Replace(string(mustRead(t, filepath.Join(b.root, "etc/sesam-relay/config.toml"))))
	cfg += fmt.Sprintf(`
[backup]
folder = "/var/backups/sesam-relay"

[[account]]
name          = "dupont"
password_hash = %q
address       = "jean.dupont@laposte.net"
  [account.upstream]
  smtp          = "smtp://127.0.0.1:1"
  username      = "jean.dupont"
  password_file = "/etc/sesam-relay/secrets/dupont"
`, hash)
	os.WriteFile(filepath.Join(b.root, "etc/sesam-relay/config.toml"), []byte(cfg), 0o640)
}

// uidls is what the billing software sees by POP3 (Python's poplib).
func uidls(t *testing.T, b *booted) string {
	t.Helper()
	out, err := b.net("python3", "-c", `
import poplib
p = poplib.POP3("127.0.0.1", 1110, timeout=30)
p.stls(); p.user("dupont"); p.pass_("secret-local")
for l in p.uidl()[1]: print(l.decode())
p.quit()`)
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("poplib UIDL: %v\n%s", err, out)
	}
	return out
}

type lotSeen struct {
	ID       int64
	Stamp    string
	Fund     string
	Invoices int
	Returns  []struct {
		MailboxID int64 `json:"mailbox_id"`
		Class     string
	}
}

func lotsOf(t *testing.T, b *booted) []lotSeen {
	t.Helper()
	var got struct{ Lots []lotSeen }
	out := b.must("sesam-relay", "lots", "--json")
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Lots) == 0 {
		t.Fatalf("lots --json: %v\n%s", err, out)
	}
	return got.Lots
}

// The practice's day, then its SD card replaced: on a booted Debian 12,
// the provider password sealed with `secret set` (real systemd-creds, the
// service restarted by it), a lot submitted and returns imported, the
// recovery key made, the daily backup run by its systemd unit (the timer
// the package enabled); then the package purged and installed again — a
// fresh store with a new key — and the backup restored: the billing
// software (poplib) sees the same UIDLs, `lots` the same lots and returns,
// and the lot that was waiting is held as uncertain, not sent twice.
func TestBackupByTheTimerRestoresOnAFreshInstall(t *testing.T) {
	b := boot(t)
	os.WriteFile(filepath.Join(b.root, "root/sesam-relay.deb"), mustRead(t, debs["amd64"]), 0o644)
	b.must("apt-get", "install", "-y", "/root/sesam-relay.deb")
	if out := b.must("systemctl", "is-enabled", "sesam-relay-backup.timer"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("the backup timer is not enabled by the package: %s", out)
	}
	if out := b.must("systemctl", "list-timers", "--all", "--no-pager"); !strings.Contains(out, "sesam-relay-backup.timer") {
		t.Errorf("the backup timer is not scheduled:\n%s", out)
	}
	// Without a recovery key, the backup fails and says what to do.
	if out, err := b.in("systemctl", "start", "sesam-relay-backup.service"); err == nil {
		t.Errorf("a backup without a recovery key should fail: %s", out)
	}
	if out := b.must("journalctl", "-u", "sesam-relay-backup", "--no-pager", "-o", "cat"); !strings.Contains(out, "keys recovery --out") {
		t.Errorf("the failed backup's journal does not say how to make the recovery key:\n%s", out)
	}

	hash := strings.TrimSpace(b.must("sh", "-c", "printf 'secret-local\\n' | sesam-relay passwd"))
	practiceConfig(t, b, hash)
	out := b.must("sh", "-c", "printf 'provider-pw\\n' | sesam-relay secret set dupont")
	if !strings.Contains(out, "systemd credential") || !strings.Contains(out, "restarted") {
		t.Errorf("secret set under systemd:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(b.root, "etc/sesam-relay/secrets/dupont")); err == nil {
		t.Error("the plain password file is still there")
	}
	if st := b.must("sesam-relay", "status"); strings.Contains(st, "plain file") || !strings.Contains(st, "dupont") {
		t.Errorf("status after secret set (the service must have the sealed password and the account):\n%s", st)
	}
	if out, err := b.in("sesam-relay", "check"); !strings.Contains(out, "127.0.0.1:1") || strings.Contains(out, "sealed in") {
		t.Errorf("check as root reads the sealed password, then fails at the unreachable provider: %v\n%s", err, out)
	}
	// An account added by `account add` under systemd: the password sealed,
	// the file in accounts.d the service's group may read, the service
	// restarted to get both (the provider is unreachable here: --no-check).
	out = b.must("sh", "-c", "printf 'provider-pw-2\\nbilling-pw-2\\n' | sesam-relay account add martin --address cabinet.martin@orange.fr --smtp smtp://127.0.0.1:1 --no-check")
	if !strings.Contains(out, "sealed as the systemd credential") || !strings.Contains(out, "the service was restarted") || !strings.Contains(out, "In the billing software") {
		t.Errorf("account add under systemd:\n%s", out)
	}
	if m := strings.TrimSpace(b.must("stat", "-c", "%04a %U:%G", "/etc/sesam-relay/accounts.d/martin.toml")); m != "0640 root:sesam-relay" {
		t.Errorf("accounts.d/martin.toml is %s", m)
	}
	if st := b.must("sesam-relay", "account", "list"); !strings.Contains(st, "martin  cabinet.martin@orange.fr") || !strings.Contains(st, "sealed (systemd credential)") {
		t.Errorf("account list:\n%s", st)
	}
	if st := b.must("sesam-relay", "status"); !strings.Contains(st, "martin") || !strings.Contains(st, "certificate: SHA-256 ") {
		t.Errorf("status after account add:\n%s", st)
	}
	b.must("sesam-relay", "account", "remove", "martin")

	// The day: a lot from the billing software, returns saved from the webmail.
	lot := string(mustRead(t, "../testdata/mail/lot-smime.eml"))
	if out, err := b.net("python3", "-c", fmt.Sprintf(`
import smtplib
s = smtplib.SMTP("127.0.0.1", 1587, timeout=30)
s.starttls(); s.login("dupont", "secret-local")
s.sendmail("jean.dupont@laposte.net", ["01422@422.01.rss.fr"], %q.encode())
s.quit()`, lot)); err != nil {
		t.Fatalf("submitting the lot: %v\n%s", err, out)
	}
	for _, m := range []string{"arl-positive.eml", "noemie-reject.eml", "provider-notice.eml"} {
		os.WriteFile(filepath.Join(b.root, "root", m), mustRead(t, "../testdata/mail/"+m), 0o644)
		b.must("sesam-relay", "import", "dupont", "/root/"+m)
	}
	before, lotsBefore := uidls(t, b), lotsOf(t, b)

	b.must("sesam-relay", "keys", "recovery", "--out", "/root/recovery-key.asc")
	// The folder is a USB stick or a NAS share: when it is not there, the
	// backup says so rather than filling the SD card.
	if _, err := b.in("systemctl", "start", "sesam-relay-backup.service"); err == nil {
		t.Error("a backup to a folder that does not exist should fail")
	}
	if out := b.must("journalctl", "-u", "sesam-relay-backup", "--no-pager", "-o", "cat"); !strings.Contains(out, "/var/backups/sesam-relay") {
		t.Errorf("the failed backup's journal does not name the missing folder:\n%s", out)
	}
	b.must("mkdir", "-m", "0700", "/var/backups/sesam-relay")
	if out, err := b.in("systemctl", "start", "sesam-relay-backup.service"); err != nil {
		t.Fatalf("the backup unit: %v %s\n%s", err, out, b.must("journalctl", "-u", "sesam-relay-backup", "--no-pager", "-o", "cat"))
	}
	backups, _ := filepath.Glob(filepath.Join(b.root, "var/backups/sesam-relay/sesam-relay-backup-*.pgp"))
	if len(backups) != 1 {
		t.Fatalf("the backup unit wrote %v\n%s", backups, b.must("journalctl", "-u", "sesam-relay-backup", "--no-pager", "-o", "cat"))
	}
	if st := b.must("sesam-relay", "status"); !strings.Contains(st, filepath.Base(backups[0])) {
		t.Errorf("status does not show the last backup:\n%s", st)
	}
	for _, d := range []string{"var/backups/sesam-relay"} {
		for _, secret := range []string{"2026112408150000042", "ACTE NON REMBOURSABLE", "provider-pw"} {
			if out, _ := exec.Command("grep", "-ral", secret, filepath.Join(b.root, d)).Output(); len(out) > 0 {
				t.Errorf("%q is in clear in the backup: %s", secret, out)
			}
		}
	}

	// The SD card dies: purge, install again, the installer's steps, restore.
	b.must("apt-get", "purge", "-y", "sesam-relay")
	if out, _ := exec.Command("sh", "-c", "ls "+filepath.Join(b.root, "etc/systemd/system/sesam-relay.service.d")+" 2>/dev/null").Output(); len(out) > 0 {
		t.Errorf("purge left drop-ins behind (the next install would not start): %s", out)
	}
	b.must("apt-get", "install", "-y", "/root/sesam-relay.deb")
	if out, _ := b.in("systemctl", "is-active", "sesam-relay"); strings.TrimSpace(out) != "active" {
		t.Fatalf("the fresh install is not running: %s\n%s", out, b.journal())
	}
	practiceConfig(t, b, hash)
	b.must("sh", "-c", "printf 'provider-pw\\n' | sesam-relay secret set dupont")
	b.must("systemctl", "stop", "sesam-relay")
	if out, err := b.in("sesam-relay", "restore", "/var/backups/sesam-relay/"+filepath.Base(backups[0]), "--recovery-key", "/root/recovery-key.asc"); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	b.must("systemctl", "start", "sesam-relay")
	if after := uidls(t, b); after != before {
		t.Errorf("the billing software sees other UIDLs after the restore:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if after := lotsOf(t, b); !reflect.DeepEqual(after, lotsBefore) {
		t.Errorf("lots after the restore: %+v, before: %+v", after, lotsBefore)
	}
	if q := b.must("sesam-relay", "queue"); !strings.Contains(q, "held") || !strings.Contains(q, "uncertain") {
		t.Errorf("the lot that was waiting should be held as uncertain after the restore:\n%s", q)
	}
}
