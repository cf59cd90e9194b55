package e2e_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bombReturn is a NOEMIE-looking return of parts application/edi-consent
// parts, each the same gzip of mib MiB of zeros.
func bombReturn(parts, mib int) []byte {
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for range mib {
		w.Write(zero)
	}
	w.Close()
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	var lines strings.Builder
	for len(enc) > 76 {
		lines.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	lines.WriteString(enc + "\r\n")
	var b bytes.Buffer
	b.WriteString("From: <noemie@cpam.fr>\r\nSubject: Retour NOEMIE\r\nMessage-ID: <bomb@cpam.fr>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n")
	for i := range parts {
		fmt.Fprintf(&b, "--z\r\nContent-Type: application/EDI-consent\r\nContent-Description: NOEMIE RSP %d\r\nContent-Transfer-Encoding: base64\r\n\r\n%s", i+1, lines.String())
	}
	b.WriteString("--z--\r\n")
	return b.Bytes()
}

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

func TestDovecotReturnOf199GzipBombsIsStoredAndServedWithinMemory(t *testing.T) {
	raw := bombReturn(199, 64)
	t.Logf("return of %d bytes, 199 parts of 64 MiB inflated each", len(raw))
	dv := startDovecot(t)
	dv.save("INBOX", raw)
	r := newRelay(t, newProvider(t), opts{imap: dv.imap})
	waitFor(t, 60*time.Second, "the return fetched", func() bool { return r.mailboxCount() == 1 })
	res := r.poplib(pyArgs{})
	if len(res.Messages) != 1 || !bytes.Equal(res.Messages[0].Raw, raw) {
		t.Fatalf("%d messages served, or the return differs from what Dovecot holds", len(res.Messages))
	}
	peak := peakRSS(t, r.cmd.Process.Pid)
	t.Logf("peak RSS %d MB", peak>>20)
	if peak > 150<<20 {
		t.Fatalf("the relay's peak RSS was %d MB, over 150 MB", peak>>20)
	}
	mb, _ := r.mailbox()
	if mb[0].Class != "unknown" || !strings.HasPrefix(mb[0].ClassWhy, "payload over budget: ") {
		t.Fatalf("class %s (%s), want unknown, payload over budget", mb[0].Class, mb[0].ClassWhy)
	}
}

// runUntilKilled starts the relay and waits for it to kill itself.
func (r *relay) runUntilKilled(within time.Duration) {
	r.t.Helper()
	cmd := exec.Command(binary, "--config", r.cfgPath, "serve")
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Stdout, cmd.Stderr = &lockedWriter{r}, &lockedWriter{r}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			r.t.Fatalf("the relay ended with %v, not killed while reading; log:\n%s", cmd.ProcessState, r.Log())
		}
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		r.t.Fatalf("the relay was not killed within %s; log:\n%s", within, r.Log())
	}
}

func TestDovecotReturnThatKillsTheRelayIsStoredOnceUnreadWithoutALoginLoop(t *testing.T) {
	dv := startDovecot(t)
	r := newRelay(t, newProvider(t), opts{imap: dv.imap, env: []string{"SESAM_RELAY_TEST_DIE_CLASSIFYING=POISON"}})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return dv.logins() == 1 })
	poison := []byte("From: <noemie@cpam.fr>\r\nSubject: Retour POISON\r\nMessage-ID: <poison@cpam.fr>\r\n\r\nkills the reader\r\n")
	dv.save("INBOX", arl(1, 100))
	dv.save("INBOX", poison)
	dv.save("INBOX", arl(3, 100))
	// The technician asks for a poll: the relay dies reading the poison.
	done := make(chan struct{})
	go func() { r.cli("fetch", "dupont"); close(done) }()
	alive := time.AfterFunc(time.Minute, func() { r.cmd.Process.Kill() })
	err := r.cmd.Wait()
	if !alive.Stop() || err == nil {
		t.Fatal("the relay survived the poison: the test hook did not fire")
	}
	r.cmd = nil
	<-done
	// systemd restarts it: it reads the batch again one message at a time
	// and dies on the poison again, marked alone this time.
	r.runUntilKilled(30 * time.Second)
	// The next restart stores it unread and goes on.
	r.start()
	waitFor(t, 30*time.Second, "the three messages", func() bool { return r.mailboxCount() == 3 })
	mb, body := r.mailbox()
	n := 0
	for _, m := range mb {
		if m.Subject == "Retour POISON" {
			n++
			if m.Class != "unknown" || !strings.Contains(m.ClassWhy, "stopped while reading this message") || !bytes.Equal(body(m.ID), poison) {
				t.Fatalf("poison stored as %s (%s)", m.Class, m.ClassWhy)
			}
		}
	}
	if n != 1 {
		t.Fatalf("the poison is held %d times", n)
	}
	if out, _ := r.cli("status"); !strings.Contains(out, "stopped the relay while it was read") {
		t.Fatalf("status does not say so:\n%s", out)
	}
	dv.save("INBOX", arl(4, 100))
	if out, code := r.cli("fetch", "dupont"); code != 0 || !strings.Contains(out, "1 new") {
		t.Fatalf("the poll after the poison (%d): %s", code, out)
	}
	// One login per start: the first, two restarts that died, the last.
	if got := dv.logins(); got != 3 {
		t.Fatalf("%d IMAP logins at the provider, want 3 (one per start)", got)
	}
}

func TestDovecotMessageOverMaxFetchSizeIsLeftUpstreamAndSaid(t *testing.T) {
	dv := startDovecot(t)
	dv.save("INBOX", arl(1, 100))
	dv.save("INBOX", arl(2, 2<<20))
	r := newRelay(t, newProvider(t), opts{imap: dv.imap, provExtra: "insecure = true\n  max_fetch_size = \"1M\""})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 1 })
	out, _ := r.cli("status")
	if !strings.Contains(out, "message UID 2 in INBOX (2 MB) is over max_fetch_size (1 MB): left at the provider, read it in the webmail or raise max_fetch_size") {
		t.Fatalf("status does not say so:\n%s", out)
	}
	if !strings.Contains(r.Log(), "over max_fetch_size left at the provider") {
		t.Fatalf("no warning in the log:\n%s", r.Log())
	}
	dv.save("INBOX", arl(3, 100))
	if out, code := r.cli("fetch", "dupont"); code != 0 || !strings.Contains(out, "1 new") {
		t.Fatalf("the poll after (%d): %s", code, out)
	}
	if mb, _ := r.mailbox(); len(mb) != 2 || mb[1].Subject != "ARL lot 003" {
		t.Fatalf("%d held, want ARL 1 and 3", len(mb))
	}
	if strings.Count(r.Log(), "over max_fetch_size left at the provider") != 1 {
		t.Fatalf("the big message was looked at again:\n%s", r.Log())
	}
}

func TestImportOfSixteenGzipBombsStaysWithinMemory(t *testing.T) {
	// The reproduction of issue 10: a 1.4 MB mail, 16 parts of 64 MiB
	// inflated each, imported by a technician.
	f := t.TempDir() + "/bomb.eml"
	raw := bombReturn(16, 64)
	os.WriteFile(f, raw, 0o644)
	r := newRelay(t, newProvider(t), opts{})
	if out, code := r.cli("import", "dupont", f); code != 0 {
		t.Fatalf("import (%d): %s", code, out)
	}
	peak := peakRSS(t, r.cmd.Process.Pid)
	t.Logf("peak RSS %d MB", peak>>20)
	if peak > 150<<20 {
		t.Fatalf("the relay's peak RSS was %d MB importing a %d-byte mail, over 150 MB", peak>>20, len(raw))
	}
	mb, body := r.mailbox()
	if len(mb) != 1 || mb[0].Class != "unknown" || !strings.HasPrefix(mb[0].ClassWhy, "payload over budget: ") || !bytes.Equal(body(mb[0].ID), raw) {
		t.Fatalf("%d held; class %s (%s)", len(mb), mb[0].Class, mb[0].ClassWhy)
	}
}
