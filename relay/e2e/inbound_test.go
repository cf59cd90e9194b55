package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

func imapProvider(t *testing.T) *demo.IMAPProvider {
	p, err := demo.StartIMAP("127.0.0.1:0", "jean.dupont", "provider-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// arl is a synthetic return of about size bytes, in 76-character lines
// (poplib refuses lines over 2048 bytes).
func arl(i, size int) []byte {
	body := strings.Repeat(strings.Repeat("y", 76)+"\r\n", size/78) + strings.Repeat("y", size%78)
	return []byte(fmt.Sprintf("From: <arl@cpam.fr>\r\nSubject: ARL lot %03d\r\nMessage-ID: <arl-%d@cpam.fr>\r\n\r\n%s\r\n.line with a leading dot\r\n",
		i, i, body))
}

func (r *relay) mailboxCount() int {
	st := r.status()
	if len(st.Accounts) == 0 {
		return -1
	}
	return st.Accounts[0].Mailbox
}

func TestReturnsFromIMAPAreServedByteForByteOverPOP3(t *testing.T) {
	imapP := imapProvider(t)
	imapP.Deliver("INBOX", arl(1, 500))
	imapP.Deliver("SPAM", arl(2, 500))
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr()})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 2 })
	res := r.poplib(pyArgs{"mode": "stls", "dele": true})
	if res.Stat[0] != 2 {
		t.Fatalf("%+v", res.Stat)
	}
	for i, m := range res.Messages {
		if want := arl(i+1, 500); !bytes.Equal(m.Raw, want) {
			t.Fatalf("message %d changed on its way:\n%q\n%q", i+1, m.Raw[:80], want[:80])
		}
	}
	out, code := r.cli("mail", "dupont")
	if code != 0 || !strings.Contains(out, "ARL lot 001") || !strings.Contains(out, "SPAM") || !strings.Contains(out, "dupont (deleted") || !strings.Contains(out, "arl-unknown") {
		t.Fatalf("mail (%d):\n%s", code, out)
	}
	// A new return arrives; `fetch` polls at once (IDLE may have been quicker).
	imapP.Deliver("INBOX", arl(3, 10))
	out, code = r.cli("fetch", "dupont")
	if code != 0 || !strings.Contains(out, "new, ") {
		t.Fatalf("fetch (%d): %s", code, out)
	}
	if res := r.poplib(pyArgs{}); res.Stat[0] != 1 {
		t.Fatalf("after fetch: %+v", res.Stat)
	}
	out, _ = r.cli("status")
	if !strings.Contains(out, "collecting (imap://") || !strings.Contains(out, "OK, last poll") {
		t.Fatalf("status:\n%s", out)
	}
}

func TestRestoreAndImportFromTheCLI(t *testing.T) {
	imapP := imapProvider(t)
	imapP.Deliver("INBOX", arl(1, 10))
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr()})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 1 })
	r.poplib(pyArgs{"dele": true})
	if res := r.poplib(pyArgs{}); res.Stat[0] != 0 {
		t.Fatal("DELE did not hide the message")
	}
	var mb []store.MailboxEntry
	out, _ := r.cli("mail", "dupont", "--json")
	json.Unmarshal([]byte(out), &mb)
	if out, code := r.cli("mail", "restore", itoa(mb[0].ID), "--login", "dupont"); code != 0 {
		t.Fatalf("restore: %s", out)
	}
	if res := r.poplib(pyArgs{}); res.Stat[0] != 1 {
		t.Fatal("restore did not bring the message back")
	}
	if out, code := r.cli("mail", "restore", itoa(mb[0].ID), "--login", "martin"); code == 0 || !strings.Contains(out, "not a login of account dupont") {
		t.Fatalf("restore for a foreign login: %d %s", code, out)
	}
	// Mail saved from the webmail during an outage.
	f1, f2 := filepath.Join(t.TempDir(), "a.eml"), filepath.Join(t.TempDir(), "b.eml")
	os.WriteFile(f1, arl(1, 10), 0o600) // the same bytes as the fetched one
	os.WriteFile(f2, arl(5, 10), 0o600)
	out, code := r.cli("import", "dupont", f1, f2)
	if code != 0 || !strings.Contains(out, "1 imported, 1 already held") {
		t.Fatalf("import (%d): %s", code, out)
	}
	out, _ = r.cli("mail", "show", itoa(mb[0].ID))
	if !strings.Contains(out, "ARL lot 001") || !strings.Contains(out, "dupont: retrieved") || strings.Contains(out, "yyyyyyyyyy") {
		t.Fatalf("mail show (no body unless --raw):\n%s", out)
	}
	out, _ = r.cli("mail", "show", itoa(mb[0].ID), "--raw")
	if out != string(arl(1, 10)) {
		t.Fatalf("mail show --raw: %q", out)
	}
}

func TestClosedIMAPIsExplainedAndPOP3KeepsServing(t *testing.T) {
	imapP := imapProvider(t)
	imapP.Deliver("INBOX", arl(1, 10))
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr()})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 1 })
	imapP.DisableIMAP(true)
	if out, code := r.cli("fetch", "dupont"); code == 0 || !strings.Contains(out, "closed IMAP access") {
		t.Fatalf("fetch with IMAP closed (%d): %s", code, out)
	}
	out, _ := r.cli("status")
	if !strings.Contains(out, "FAILING since") || !strings.Contains(out, "closed IMAP access") || !strings.Contains(out, "still collects what is held here: 1 message(s)") {
		t.Fatalf("status:\n%s", out)
	}
	if res := r.poplib(pyArgs{}); res.Stat[0] != 1 {
		t.Fatal("POP3 stopped serving while IMAP is closed")
	}
}

// TestKillDuringAPollOf500KeepsEachMessageOnce kills the relay with SIGKILL
// in the middle of fetching 500 messages, restarts it, and counts.
func TestKillDuringAPollOf500KeepsEachMessageOnce(t *testing.T) {
	imapP := imapProvider(t)
	for i := 0; i < 500; i++ {
		imapP.Deliver("INBOX", arl(i, 20_000))
	}
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr()})
	var at int
	waitFor(t, 30*time.Second, "the poll to be under way", func() bool { at = r.mailboxCount(); return at >= 50 })
	r.kill()
	if at >= 500 {
		t.Fatalf("the poll ended before the kill (%d stored)", at)
	}
	r.start()
	waitFor(t, 60*time.Second, "all 500 after restart", func() bool { return r.mailboxCount() >= 500 })
	time.Sleep(500 * time.Millisecond)
	res := r.poplib(pyArgs{"quit": false})
	seen := map[string]int{}
	for _, m := range res.Messages {
		msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(m.Raw)))
		if err != nil {
			t.Fatal(err)
		}
		seen[msg.Header.Get("Message-Id")]++
	}
	for i := 0; i < 500; i++ {
		if n := seen[fmt.Sprintf("<arl-%d@cpam.fr>", i)]; n != 1 {
			t.Errorf("message %d held %d times", i, n)
		}
	}
	if len(res.Messages) != 500 {
		t.Fatalf("%d messages served, want 500", len(res.Messages))
	}
	t.Logf("killed with %d of 500 stored; after restart 500, each once", at)
}

// Odd mail upstream (no header, 8-bit junk, broken MIME, 20 MB) is kept as
// the provider serves it and served so over POP3. Dovecot is the upstream: it
// sends bare LFs as CRLF, so that is the reference.
func TestMalformedAndHugeReturnsAreKeptAndServedAsTheyAre(t *testing.T) {
	dv := startDovecot(t)
	junk := []byte("\xff\xfe no header at all\nbare LF line\n.a dot line\nlast line without newline")
	badMIME := []byte("Subject: =?x-unknown?q?=E9t=E9?=\r\nContent-Type: multipart/mixed; boundary=\"never-closed\"\r\n\r\n--never-closed\r\nContent-Type: application/edi-consent\r\nContent-Transfer-Encoding: base64\r\n\r\n\x80\x81\x82 not base64 \xe9\xe8\r\n")
	var big bytes.Buffer
	big.WriteString("Subject: big attachment\r\nContent-Type: application/octet-stream\r\n\r\n")
	for big.Len() < 20<<20 {
		big.WriteString(strings.Repeat("QUJD", 19) + "\r\n")
	}
	msgs := [][]byte{junk, badMIME, big.Bytes()}
	dv.seed(len(msgs), func(i int) []byte { return msgs[i] })
	r := newRelay(t, newProvider(t), opts{imap: dv.imap})
	waitFor(t, 30*time.Second, "the three odd messages", func() bool { return r.mailboxCount() == 3 })
	crlf := func(b []byte) []byte {
		return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	}
	var mb []store.MailboxEntry
	out, _ := r.cli("mail", "dupont", "--json")
	if err := json.Unmarshal([]byte(out), &mb); err != nil || len(mb) != 3 {
		t.Fatalf("mail --json: %v\n%s", err, out)
	}
	for i, want := range msgs {
		raw, code := r.cli("mail", "show", itoa(mb[i].ID), "--raw")
		if code != 0 || raw != string(crlf(want)) {
			t.Fatalf("message %d not stored as the provider served it (%d bytes, want %d)", i+1, len(raw), len(crlf(want)))
		}
	}
	res := r.poplib(pyArgs{"mode": "ssl"})
	for i, want := range msgs {
		w := crlf(want)
		if !bytes.HasSuffix(w, []byte("\r\n")) {
			w = append(w, "\r\n"...)
		}
		if !bytes.Equal(res.Messages[i].Raw, w) {
			t.Fatalf("message %d served differently (%d bytes, want %d)", i+1, len(res.Messages[i].Raw), len(w))
		}
	}
}

func TestPoplibWithoutTLSOnlyWhenAllowed(t *testing.T) {
	imapP := imapProvider(t)
	imapP.Deliver("INBOX", arl(1, 10))
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr(), listen: "allow_plaintext_auth = true"})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 1 })
	if res := r.poplib(pyArgs{"mode": "plain"}); res.Stat[0] != 1 {
		t.Fatalf("%+v", res.Stat)
	}
	r2 := newRelay(t, newProvider(t), opts{})
	host, port, _ := strings.Cut(r2.pop3, ":")
	b, _ := json.Marshal(pyArgs{"host": host, "port": port, "user": login, "password": password, "mode": "plain"})
	out, err := exec.Command("python3", "testdata/pop3client.py", string(b)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "plaintext login is disabled") {
		t.Fatalf("USER/PASS in clear accepted by default: %v\n%s", err, out)
	}
}

func TestConfiguredRuleClassifiesAReturn(t *testing.T) {
	imapP := imapProvider(t)
	imapP.Deliver("INBOX", []byte("From: <teletrans@cpam-paris.fr>\r\nSubject: Retour de traitement\r\n\r\nx\r\n"))
	imapP.Deliver("INBOX", []byte("From: <someone@example.org>\r\nSubject: Bonjour\r\n\r\nx\r\n"))
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr(), top: "[[sesam.rule]]\nfield = \"from\"\npattern = \"teletrans@cpam\"\nclass = \"noemie-payment\""})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return r.mailboxCount() == 2 })
	var mb []store.MailboxEntry
	out, _ := r.cli("mail", "dupont", "--json")
	json.Unmarshal([]byte(out), &mb)
	if len(mb) != 2 || mb[0].Class != "noemie-payment" || mb[1].Class != "unknown" {
		t.Fatalf("%+v", mb)
	}
	if res := r.poplib(pyArgs{}); res.Stat[0] != 2 {
		t.Fatal("classification kept a message from being served")
	}
}

func TestLotsShowWhatCameBackForEachLot(t *testing.T) {
	prov, imapP := newProvider(t), imapProvider(t)
	r := newRelay(t, prov, opts{imap: imapP.Addr()})
	var stamps []string
	for i := 1; i <= 2; i++ {
		lot := sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: i, At: time.Now(), Seq: i}
		p := filepath.Join(t.TempDir(), "lot.eml")
		os.WriteFile(p, lot.Mail(), 0o600)
		if res := r.python(pyArgs{"file": p, "to": fund}); res[0].Code != 250 {
			t.Fatalf("%+v", res)
		}
		stamps = append(stamps, strings.Split(lot.Subject(), "/")[2])
	}
	waitFor(t, 10*time.Second, "both lots delivered", func() bool { return len(prov.Mails()) == 2 })
	waitFor(t, 5*time.Second, "both lots marked sent", func() bool { return r.states()[store.Sent] == 2 })
	imapP.Deliver("INBOX", sesam.ARLMail{Subject: "ARL positif", Stamp: stamps[0], Outcome: sesam.ARLPositiveText(stamps[0])}.Mail())
	// The second says rejected in its payload only, under a bare Subject.
	imapP.Deliver("INBOX", sesam.ARLMail{Subject: "ARL", Stamp: stamps[1], Outcome: sesam.ARLNegativeText(stamps[1], "SIGNATURE INVERIFIABLE")}.Mail())
	r.cli("fetch", "dupont")
	out, code := r.cli("lots")
	if code != 0 || !strings.Contains(out, "ACKNOWLEDGED") || !strings.Contains(out, "REJECTED") || !strings.Contains(out, "01422") {
		t.Fatalf("lots (%d):\n%s", code, out)
	}
	var all struct {
		Lots []struct {
			ID      int64  `json:"id"`
			State   string `json:"state"`
			Safe    bool   `json:"safe"`
			Returns []struct {
				Certain bool `json:"certain"`
			} `json:"returns"`
		} `json:"lots"`
	}
	out, _ = r.cli("lots", "dupont", "--json")
	if err := json.Unmarshal([]byte(out), &all); err != nil || len(all.Lots) != 2 || all.Lots[1].State != "rejected" || all.Lots[1].Safe ||
		all.Lots[0].State != "acknowledged" || !all.Lots[0].Safe || !all.Lots[0].Returns[0].Certain {
		t.Fatalf("lots --json: %v %+v\n%s", err, all, out)
	}
	out, _ = r.cli("lots", "show", itoa(all.Lots[1].ID))
	if !strings.Contains(out, "REJECTED") || !strings.Contains(out, "arl-negative (certain: the return quotes the lot's stamp") ||
		!strings.Contains(out, "SIGNATURE INVERIFIABLE") || !strings.Contains(out, "no: nothing certain says the fund has it") {
		t.Fatalf("lots show:\n%s", out)
	}
	// The rejection reached the practitioner's phone, in French.
	waitFor(t, 10*time.Second, "the rejection notice", func() bool {
		res := r.poplib(pyArgs{"user": "dupont-mobile", "quit": false})
		for _, m := range res.Messages {
			if subject, body := readNotice(t, m.Raw); strings.Contains(subject, "Lot rejeté par la caisse") &&
				strings.Contains(body, "SIGNATURE INVERIFIABLE") && strings.Contains(body, "Réémettez-le") {
				return true
			}
		}
		return false
	})
	out, code = r.cli("lots", "--rebuild")
	if code != 0 || !strings.Contains(out, "2 lots, 2 returns matched") || !strings.Contains(out, "ACKNOWLEDGED") || !strings.Contains(out, "REJECTED") {
		t.Fatalf("lots --rebuild (%d):\n%s", code, out)
	}
}

func TestNoAcknowledgementIsWarnedToTheHumanLoginOnly(t *testing.T) {
	prov := newProvider(t)
	// Collection works (the relay looked and found no ARL); hours count
	// as calendar ones, so that the test does not wait for Monday.
	r := newRelay(t, prov, opts{imap: imapProvider(t).Addr(), top: "[sesam]\nack_delay = \"2s\"\ncount = \"calendar\"\ndaily_summary = \"off\""})
	path, _ := lotFile(t)
	if res := r.python(pyArgs{"file": path, "to": fund}); res[0].Code != 250 {
		t.Fatalf("%+v", res)
	}
	// The relay must have looked after the delay ran out: a poll then.
	waitFor(t, 15*time.Second, "the warning in status", func() bool {
		r.cli("fetch", "dupont")
		st := r.status()
		return len(st.Accounts[0].Warnings) == 1
	})
	if out, _ := r.cli("lots"); !strings.Contains(out, "no acknowledgement after 2s") {
		t.Fatalf("lots:\n%s", out)
	}
	out, _ := r.cli("status")
	if !strings.Contains(out, "delivered but no acknowledgement after 2s") {
		t.Fatalf("status:\n%s", out)
	}
	phone := r.poplib(pyArgs{"user": "dupont-mobile"})
	if phone.Stat[0] != 1 {
		t.Fatalf("the human login got %d messages", phone.Stat[0])
	}
	subject, body := readNotice(t, phone.Messages[0].Raw)
	if !strings.Contains(subject, "Pas d'accusé de réception") || !strings.Contains(body, "appelez votre caisse avant de renvoyer ce lot") {
		t.Fatalf("notice: %q\n%s", subject, body)
	}
	if billing := r.poplib(pyArgs{}); billing.Stat[0] != 0 {
		t.Fatal("the billing software's login was sent the warning")
	}
	time.Sleep(3 * time.Second)
	if st := r.status(); len(st.Accounts[0].Warnings) != 1 {
		t.Fatal("the warning was given twice")
	}
}

// Mail from the Internet must not fill the disk the lots need: with less
// free space than twice min_free_space after the new mail, nothing is
// fetched, status says why, and the mail waits at the provider. Found by
// review: a 9 MB mail filled a small state folder to 0 bytes free.
func TestFetchingStopsBeforeTheDiskIsFull(t *testing.T) {
	imapP := imapProvider(t)
	imapP.Deliver("INBOX", arl(1, 10))
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr(), top: `min_free_space = "100000G"`})
	waitFor(t, 10*time.Second, "the first poll to fail", func() bool {
		f := r.status().Accounts[0].Fetch
		return f != nil && f.LastError != ""
	})
	if f := r.status().Accounts[0].Fetch; !strings.Contains(f.LastError, "the disk is almost full") || !strings.Contains(f.LastError, "left at the provider") {
		t.Fatalf("status does not say why nothing is collected: %+v", f)
	}
	if n := r.mailboxCount(); n != 0 {
		t.Fatalf("%d messages fetched onto a disk without room", n)
	}
	if out, _ := r.cli("status"); !strings.Contains(out, "the disk is almost full") {
		t.Fatalf("status:\n%s", out)
	}
}

// readNotice decodes a French notice: its Subject and its text.
func readNotice(t *testing.T, raw []byte) (subject, body string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	b, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
	return subject, string(b)
}
