package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dovecot is a private Dovecot instance (Debian's dovecot-imapd and
// dovecot-pop3d) on loopback high ports, with its own config, passwd-file
// and Maildir in a temp folder. Its mail processes run as nobody.
type dovecot struct {
	t          testing.TB
	dir, conf  string
	imap, pop3 string
}

func startDovecot(t testing.TB) *dovecot {
	t.Helper()
	for _, tool := range []string{"dovecot", "doveadm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: .ci/test installs dovecot-imapd and dovecot-pop3d", tool)
		}
	}
	// A short path: Dovecot's sockets live under base_dir.
	dir, err := os.MkdirTemp("/tmp", "dv")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.MkdirAll(filepath.Join(dir, "mail"), 0o755)
	exec.Command("chown", "nobody:nogroup", filepath.Join(dir, "mail")).Run()
	os.WriteFile(filepath.Join(dir, "passwd"), []byte("jean.dupont:{PLAIN}provider-pw\n"), 0o644)
	d := &dovecot{t: t, dir: dir, conf: filepath.Join(dir, "dovecot.conf"), imap: freeTCP(t), pop3: freeTCP(t)}
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	os.WriteFile(d.conf, []byte(fmt.Sprintf(`base_dir = %[1]s/run
instance_name = %[2]s
listen = 127.0.0.1
protocols = imap pop3
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/%%u
log_path = %[1]s/dovecot.log
auth_verbose = yes
mail_max_userip_connections = 1000
# The spam folder as a French provider names it, marked \Junk (RFC 6154).
namespace inbox {
  inbox = yes
  mailbox "Courrier indésirable" {
    special_use = \Junk
    auto = create
  }
}
default_login_user = dovenull
default_internal_user = dovecot
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    port = %[3]s
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = %[4]s
  }
  inet_listener pop3s {
    port = 0
  }
}
`, dir, filepath.Base(dir), port(d.imap), port(d.pop3))), 0o644)
	// Output to a file, not a pipe: the daemonised master keeps its
	// inherited descriptors, and a pipe would never reach EOF.
	startLog, _ := os.Create(filepath.Join(dir, "start.log"))
	cmd := exec.Command("dovecot", "-c", d.conf)
	cmd.Stdout, cmd.Stderr = startLog, startLog
	err = cmd.Run()
	startLog.Close()
	if err != nil {
		out, _ := os.ReadFile(filepath.Join(dir, "start.log"))
		t.Fatalf("starting dovecot: %v %s", err, out)
	}
	t.Cleanup(d.stop)
	for deadline := time.Now().Add(10 * time.Second); !dialOK(d.imap) || !dialOK(d.pop3); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("dovecot did not listen within 10 s")
		}
	}
	return d
}

// seed drops n messages straight into the Maildir's new/ (much faster than
// n doveadm runs); Dovecot picks them up at the next SELECT.
func (d *dovecot) seed(n int, gen func(i int) []byte) {
	md := filepath.Join(d.dir, "mail", "jean.dupont")
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o755)
	}
	for i := 0; i < n; i++ {
		os.WriteFile(filepath.Join(md, "new", fmt.Sprintf("%d.M%dP1.bench", 1700000000+i, i)), gen(i), 0o644)
	}
	exec.Command("chown", "-R", "nobody:nogroup", filepath.Join(d.dir, "mail")).Run()
}

func (d *dovecot) stop() {
	pid, _ := os.ReadFile(filepath.Join(d.dir, "run", "master.pid"))
	if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
		syscall.Kill(n, syscall.SIGTERM)
		for i := 0; i < 50 && syscall.Kill(n, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.RemoveAll(d.dir)
}

// doveadm runs doveadm against this instance.
func (d *dovecot) doveadm(stdin []byte, args ...string) string {
	cmd := exec.Command("doveadm", append([]string{"-c", d.conf}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("doveadm %v: %v %s", args, err, out)
	}
	return string(out)
}

// logins counts the IMAP logins Dovecot accepted so far (its log).
func (d *dovecot) logins() int {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
	return strings.Count(string(b), "imap-login: Info: Login: user=<jean.dupont>,")
}

// setPassword changes the mailbox's password, as a provider does after an
// attack, and waits until Dovecot's auth process answers with it: it reads
// the passwd file again only when it sees the file change, at most once a
// second, so a login right after the write may still take the old one.
func (d *dovecot) setPassword(pw string) {
	d.t.Helper()
	os.WriteFile(filepath.Join(d.dir, "passwd"), []byte("jean.dupont:{PLAIN}"+pw+"\n"), 0o644)
	for end := time.Now().Add(10 * time.Second); exec.Command("doveadm", "-c", d.conf, "auth", "test", "jean.dupont", pw).Run() != nil; {
		if time.Now().After(end) {
			d.t.Fatal("Dovecot did not take the new password in 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// save stores a message byte for byte in a folder.
func (d *dovecot) save(folder string, raw []byte) {
	d.doveadm(raw, "save", "-u", "jean.dupont", "-m", folder)
}

func TestDovecotReturnsReachPOP3UnreadUpstream(t *testing.T) {
	dv := startDovecot(t)
	dv.doveadm(nil, "mailbox", "create", "-u", "jean.dupont", "SPAM")
	for i := 1; i <= 3; i++ {
		dv.save("INBOX", arl(i, 3000))
	}
	dv.save("SPAM", arl(4, 100))
	r := newRelay(t, newProvider(t), opts{imap: dv.imap})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 4 })
	res := r.poplib(pyArgs{})
	for i, m := range res.Messages {
		if !bytes.Equal(m.Raw, arl(i+1, map[bool]int{true: 100, false: 3000}[i == 3])) {
			t.Fatalf("message %d differs from what Dovecot holds", i+1)
		}
	}
	if flags := dv.doveadm(nil, "fetch", "-u", "jean.dupont", "flags", "mailbox", "INBOX", "all"); strings.Contains(flags, `\Seen`) {
		t.Fatalf("messages were marked read upstream:\n%s", flags)
	}
}

// The presets poll `\Junk`: the folder the server marks as spam, whatever
// its name (here French, so modified UTF-7 on the wire).
func TestDovecotSpamFolderIsFoundByItsSpecialUse(t *testing.T) {
	dv := startDovecot(t)
	dv.save("INBOX", arl(1, 100))
	dv.save("Courrier indésirable", arl(2, 100))
	r := newRelay(t, newProvider(t), opts{imap: dv.imap, folders: `"INBOX", "\\Junk"`})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 2 })
	if out, _ := r.cli("status"); strings.Contains(out, "not found") {
		t.Fatalf("status reports a missing folder:\n%s", out)
	}
}

func TestDovecotUIDValidityChangeIsReportedWithoutDuplicates(t *testing.T) {
	dv := startDovecot(t)
	for i := 1; i <= 3; i++ {
		dv.save("INBOX", arl(i, 100))
	}
	r := newRelay(t, newProvider(t), opts{imap: dv.imap})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 3 })
	dv.doveadm(nil, "mailbox", "update", "-u", "jean.dupont", "--uid-validity", "4242", "INBOX")
	dv.save("INBOX", arl(9, 100))
	out, code := r.cli("fetch", "dupont")
	if code != 0 || !strings.Contains(out, "1 new, 3 already held") {
		t.Fatalf("fetch after a UIDVALIDITY change (%d): %s", code, out)
	}
	if out, _ := r.cli("status"); !strings.Contains(out, "UIDVALIDITY of INBOX changed") || !strings.Contains(out, "to 4242") {
		t.Fatalf("status does not report the change:\n%s", out)
	}
	if res := r.poplib(pyArgs{}); res.Stat[0] != 4 {
		t.Fatalf("%d messages served, want 4", res.Stat[0])
	}
}

func TestDovecotRefusedLoginSaysCredentialsRejected(t *testing.T) {
	dv := startDovecot(t)
	r := newRelay(t, newProvider(t), opts{imap: dv.imap})
	// Change the password while the relay is down: a session it already
	// holds (IDLE) would not notice, as with a real provider.
	r.stop()
	os.WriteFile(filepath.Join(r.dir, "upstream-pw"), []byte("an old password\n"), 0o600)
	r.start()
	out, code := r.cli("fetch", "dupont")
	if code == 0 || !strings.Contains(out, "credentials rejected") {
		t.Fatalf("fetch with a wrong password (%d): %s", code, out)
	}
}

func freeTCP(t testing.TB) string {
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestDovecotIdleBringsAReturnBeforeTheNextPoll(t *testing.T) {
	dv := startDovecot(t)
	dv.save("INBOX", arl(1, 10))
	r := newRelay(t, newProvider(t), opts{imap: dv.imap}) // polls every hour
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 1 })
	time.Sleep(500 * time.Millisecond)
	dv.save("INBOX", arl(2, 10))
	waitFor(t, 70*time.Second, "the new return, through IDLE", func() bool { return r.mailboxCount() == 2 })
}
