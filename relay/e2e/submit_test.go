package e2e_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

func lotFile(t *testing.T) (string, []byte) {
	lot := sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 3, At: time.Now(), Seq: 1, Payload: 20000}
	b := lot.Mail()
	p := filepath.Join(t.TempDir(), "lot.eml")
	os.WriteFile(p, b, 0o600)
	return p, b
}

// upstreamCopy checks that what the provider got is the Received line plus
// the submitted bytes, unchanged.
func upstreamCopy(t *testing.T, got, sent []byte) {
	t.Helper()
	if !bytes.HasPrefix(got, []byte("Received: from ")) {
		t.Fatalf("no Received line upstream: %q", got[:min(len(got), 200)])
	}
	if !bytes.HasSuffix(got, sent) || len(got)-len(sent) > 400 {
		t.Fatalf("the lot changed on its way: sent %d bytes, provider got %d", len(sent), len(got))
	}
}

func TestLotFromSmtplibReachesProviderByteForByte(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	path, sent := lotFile(t)
	res := r.python(pyArgs{"mode": "starttls", "mech": "LOGIN", "file": path, "to": fund})
	if len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission: %+v", res)
	}
	waitFor(t, 10*time.Second, "delivery upstream", func() bool { return len(prov.Mails()) == 1 })
	m := prov.Mails()[0]
	upstreamCopy(t, m.Data, sent)
	if m.From != sender || len(m.To) != 1 || m.To[0] != fund {
		t.Fatalf("envelope changed: %+v", m)
	}
	if !bytes.Contains(m.Data, []byte("with ESMTPSA")) {
		t.Fatal("Received line does not say TLS+auth")
	}
	waitFor(t, 5*time.Second, "state sent", func() bool { return r.states()[store.Sent] == 1 })
	log := r.Log()
	if strings.Contains(log, password) || strings.Contains(log, "provider-pw") || strings.Contains(log, "smime.p7m") {
		t.Fatal("the log holds a password or mail content")
	}
	if !strings.Contains(log, "mail queued") || !strings.Contains(log, "delivered upstream") {
		t.Fatalf("the log misses the events:\n%s", log)
	}
	if fi, err := os.Stat(r.control); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("control socket mode: %v %v", fi.Mode(), err)
	}
}

func TestImplicitTLSWithAuthPlain(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	res := r.python(pyArgs{"mode": "ssl", "mech": "PLAIN", "count": 3})
	for _, x := range res {
		if x.Code != 250 {
			t.Fatalf("%+v", res)
		}
	}
	waitFor(t, 10*time.Second, "3 deliveries", func() bool { return len(prov.Mails()) == 3 })
}

func TestCurlSubmitsOverSTARTTLS(t *testing.T) {
	need(t, "curl")
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	path, sent := lotFile(t)
	out, err := exec.Command("curl", "-sS", "--url", "smtp://"+r.smtp, "--ssl-reqd", "-k",
		"--user", login+":"+password, "--mail-from", sender, "--mail-rcpt", fund, "--upload-file", path).CombinedOutput()
	// (the lot is S/MIME: the guard lets it through)
	if err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	waitFor(t, 10*time.Second, "delivery", func() bool { return len(prov.Mails()) == 1 })
	upstreamCopy(t, prov.Mails()[0].Data, sent)
}

func TestSwaksAuthLoginOverImplicitTLS(t *testing.T) {
	need(t, "swaks")
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	host, port := r.hostPort(true)
	out, err := exec.Command("swaks", "--server", host, "--port", port, "--tlsc", "--auth", "LOGIN", "--au", login, "--ap", password,
		"--from", sender, "--to", other, "--header", "Subject: essai depuis swaks").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "250 2.0.0 OK: queued as") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "delivery", func() bool { return len(prov.Mails()) == 1 })
}

func TestUnauthenticatedSubmissionIsRefused(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	res := r.python(pyArgs{"user": ""})
	if len(res) != 1 || res[0].Code != 530 {
		t.Fatalf("want 530, got %+v", res)
	}
}

func TestPlaintextAuthNeedsTLSUnlessAllowed(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	res := r.python(pyArgs{"mode": "plain"})
	if len(res) != 1 || res[0].Code == 250 {
		t.Fatalf("AUTH without TLS was accepted by default: %+v", res)
	}
	r2 := newRelay(t, prov, opts{listen: "allow_plaintext_auth = true"})
	res = r2.python(pyArgs{"mode": "plain", "mech": "LOGIN"})
	if len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("allow_plaintext_auth = true, still refused: %+v", res)
	}
}

func TestClientOutsideAllowIsRefusedAtConnect(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{allow: `"192.0.2.0/24"`})
	c, err := net.Dial("tcp", r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 200)
	n, _ := c.Read(b)
	if !strings.HasPrefix(string(b[:n]), "554 5.7.1") {
		t.Fatalf("got %q", b[:n])
	}
	res := r.python(pyArgs{})
	if len(res) != 1 || res[0].Code == 250 {
		t.Fatalf("smtplib got through: %+v", res)
	}
	if !strings.Contains(r.Log(), "not in [listen] allow") {
		t.Fatal("the refusal is not logged")
	}
}

func TestRepeatedWrongPasswordsSlowDownThen421(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{localAuth: "max_failures = 3\nfailure_delay = \"200ms\""})
	var codes []int
	start := time.Now()
	for i := 0; i < 4; i++ {
		res := r.python(pyArgs{"password": "wrong"})
		codes = append(codes, res[0].Code)
	}
	if codes[0] != 535 || codes[1] != 535 || codes[2] != 421 || codes[3] != 421 {
		t.Fatalf("codes %v, want 535 535 421 421", codes)
	}
	if time.Since(start) < 600*time.Millisecond { // 200+400+600 ms of delays at least
		t.Fatal("failures were not slowed down")
	}
	// The right password from the blocked address is refused too, for the window.
	if res := r.python(pyArgs{}); res[0].Code == 250 {
		t.Fatal("a blocked address could still submit")
	}
}

func TestSmugglingAttemptIsRefusedAndNothingIsQueued(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	p := filepath.Join(t.TempDir(), "smuggle.eml")
	os.WriteFile(p, []byte("Subject: hi\r\n\r\nhello\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nforged\r\n"), 0o600)
	res := r.python(pyArgs{"file": p})
	if len(res) != 1 || res[0].Code != 521 {
		t.Fatalf("want 521, got %+v", res)
	}
	// The published variants smtplib would not send (it stuffs a dot after
	// any LF), written on a raw socket: each is refused, the session stays in
	// step, and a clean mail after them on the same connection is queued.
	forged := "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nforged\r\n"
	for _, end := range []string{"\r\n.\r", "\n.\r\n", "\r.\r\n", "\r.\r", "\r\n.\n"} {
		got := r.rawSubmit(t, "Subject: hi\r\n\r\nhello"+end+forged+"\r\n.\r\n", "Subject: clean\r\n\r\nclean\r\n.\r\n")
		if !strings.HasPrefix(got[0], "521 5.5.2") || !strings.HasPrefix(got[1], "250 ") {
			t.Fatalf("%q: want 521 then 250 for a clean mail, got %q", end, got)
		}
	}
	for _, m := range r.queue() {
		if m.Subject != "clean" {
			t.Fatalf("a smuggling attempt was queued: %+v", m)
		}
	}
}

// A lot written by a Windows program in text mode ends its lines in CR CR
// LF. Nothing can read that as the end of a mail, so it is accepted and
// reaches the provider byte for byte.
func TestLotWithCRCRLFLinesIsAcceptedAndRelayedByteForByte(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	_, lot := lotFile(t)
	sent := bytes.ReplaceAll(lot, []byte("\r\n"), []byte("\r\r\n"))
	p := filepath.Join(t.TempDir(), "crcrlf.eml")
	os.WriteFile(p, sent, 0o600)
	res := r.python(pyArgs{"file": p, "to": fund})
	if len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("a CR CR LF lot: want 250, got %+v", res)
	}
	waitFor(t, 10*time.Second, "delivery upstream", func() bool { return len(prov.Mails()) == 1 })
	upstreamCopy(t, prov.Mails()[0].Data, sent)
}

func TestOversizeMailGets552(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{top: `max_message_size = "16K"`})
	res := r.python(pyArgs{"size": 40000})
	if len(res) != 1 || res[0].Code != 552 {
		t.Fatalf("want 552, got %+v", res)
	}
	res = r.python(pyArgs{"size": 4000})
	if len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("a small mail after a big one: %+v", res)
	}
}

func TestFullDiskAnswers451AndKeepsEarlierMail(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small tmpfs (the test needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	prov := newProvider(t)
	prov.Off() // keep everything in the queue
	r := newRelay(t, prov, opts{stateDir: dir, top: `min_free_space = 0`})
	res := r.python(pyArgs{"count": 300, "size": 20000})
	ok, full := 0, 0
	for _, x := range res {
		switch x.Code {
		case 250:
			ok++
		case 451:
			full++
		default:
			t.Fatalf("unexpected answer on a full disk: %+v", x)
		}
	}
	if full == 0 || ok == 0 {
		t.Fatalf("%d accepted, %d refused with 451: the disk never filled?", ok, full)
	}
	if n := len(r.queue()); n != ok {
		t.Fatalf("%d mails answered 250 but %d in the queue", ok, n)
	}
	t.Logf("disk full: %d accepted, then %d answered 451", ok, full)
}

// clearLot is a lot whose B2 file travels outside S/MIME: health data in clear.
func clearLotFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "clear-lot.eml")
	os.WriteFile(p, []byte("From: <"+sender+">\r\nTo: <"+fund+">\r\nSubject: IR/12345678901234/2026112408150012345/00003\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/EDI-consent\r\n"+
		"Content-Description: IRIS/B2/Z\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n"), 0o600)
	return p
}

// A lot with an S/MIME part on top and a care sheet in clear twelve
// multiparts down: the guard reads the whole tree (within a budget, past
// which it holds too), so the lot is held, not sent.
func TestDeepCareSheetInClearIsHeld(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	var b strings.Builder
	b.WriteString("From: " + sender + "\r\nTo: " + fund + "\r\nSubject: lot\r\nMessage-ID: <deep@test>\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"top\"\r\n\r\n--top\r\n")
	b.WriteString("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQA=\r\n--top\r\n")
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\n\r\nFACTURES EN CLAIR\r\n")
	for i := 11; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	b.WriteString("--top--\r\n")
	p := filepath.Join(t.TempDir(), "deep.eml")
	os.WriteFile(p, []byte(b.String()), 0o600)
	if res := r.python(pyArgs{"file": p, "to": fund}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("the billing software must get its 250: %+v", res)
	}
	waitFor(t, 5*time.Second, "the lot held", func() bool { return r.states()[store.Held] == 1 })
	if m := r.queue()[0]; !strings.Contains(m.HoldReason, "IRIS/B2/Z") {
		t.Fatalf("held for another reason: %+v", m)
	}
	time.Sleep(1500 * time.Millisecond)
	if len(prov.Mails()) != 0 {
		t.Fatal("a lot with a care sheet in clear was sent")
	}
}

func TestLotInClearIsHeldUntilATechnicianReleasesIt(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	if res := r.python(pyArgs{"file": clearLotFile(t), "to": fund}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("the billing software must get its 250: %+v", res)
	}
	path, _ := lotFile(t) // an encrypted lot goes through as usual
	r.python(pyArgs{"file": path, "to": fund})
	waitFor(t, 10*time.Second, "the encrypted lot delivered", func() bool { return len(prov.Mails()) == 1 })
	var held store.Message
	for _, m := range r.queue() {
		if m.State == store.Held {
			held = m
		}
	}
	if !strings.Contains(held.HoldReason, "health data in clear") || !strings.Contains(held.HoldReason, "IRIS/B2/Z") {
		t.Fatalf("held: %+v", held)
	}
	out, _ := r.cli("queue")
	if !strings.Contains(out, "health data in clear") {
		t.Fatalf("queue does not show why:\n%s", out)
	}
	if out, _ := r.cli("status"); !strings.Contains(out, "1 held") {
		t.Fatalf("status:\n%s", out)
	}
	time.Sleep(1500 * time.Millisecond)
	if len(prov.Mails()) != 1 {
		t.Fatal("the lot in clear was sent")
	}
	r.cli("queue", "release", itoa(held.ID))
	waitFor(t, 10*time.Second, "the released lot delivered", func() bool { return len(prov.Mails()) == 2 })
}

func TestClearLotGuardCanBeSwitchedOff(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{top: "[sesam]\nguard_clear_lots = false"})
	r.python(pyArgs{"file": clearLotFile(t), "to": fund})
	waitFor(t, 10*time.Second, "delivery without the guard", func() bool { return len(prov.Mails()) == 1 })
}
