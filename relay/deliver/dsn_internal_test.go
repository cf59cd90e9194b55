package deliver

import (
	"bytes"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

var update = flag.Bool("update", false, "rewrite testdata/notices/dsn-*.txt from the notices built")

const provider = "smtp.laposte.net"

func reply(code int, enh smtp.EnhancedCode, text string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
}

// A lot mail's envelope and header block, as the billing software sends it.
func lotMail(fund, subject string) (store.Message, []byte) {
	received := time.Date(2026, 11, 24, 9, 16, 0, 0, time.UTC)
	m := store.Message{ID: 17, Received: received, Envelope: store.Envelope{
		Account: "dupont", From: "cabinet.dupont@laposte.net", To: []string{fund}, Subject: subject}}
	h := "From: cabinet.dupont@laposte.net\r\nTo: " + fund + "\r\nSubject: " + subject + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
	return m, []byte(h)
}

func plainMail(subject string, to ...string) (store.Message, []byte) {
	received := time.Date(2026, 11, 24, 9, 16, 0, 0, time.UTC)
	m := store.Message{ID: 18, Received: received, Envelope: store.Envelope{
		Account: "dupont", From: "cabinet.dupont@laposte.net", To: to, Subject: subject}}
	return m, []byte("From: cabinet.dupont@laposte.net\r\nSubject: " + subject + "\r\n\r\n")
}

type dsnCase struct {
	name    string
	stage   string
	err     error
	delayed bool          // a delay notice, not a bounce
	expired time.Duration // a bounce at the end of the lifetime
	lot     bool
	msg     store.Message
	headers []byte
	contact string
	says    []string // in the French text above "Détail technique"
}

func dsnCases() []dsnCase {
	lot12, h12 := lotMail("01422@422.01.rss.fr", "IR/12345678901234/2026112410150012345/00012")
	lot1, h1 := lotMail("02123@123.02.rss.fr", "IR000001/12345678901234/2026112410150012345/00001")
	fundOnly, hf := lotMail("91751@751.91.rss.fr", "Facturation")
	two, h2 := plainMail("Compte rendu", "secretariat@example.org", "dr.martin@example.org")
	one, h1p := plainMail("Planning", "secretariat@example.org")
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	const contact = "Martin Informatique, 04 00 00 00 00"
	return []dsnCase{
		{name: "rcpt-refused-lot", stage: "RCPT TO <01422@422.01.rss.fr>", err: reply(550, smtp.EnhancedCode{5, 1, 1}, "Recipient address rejected: User unknown in relay recipient table"),
			lot: true, msg: lot12, headers: h12, contact: contact,
			says: []string{"votre messagerie a refusé l'adresse de la caisse", "CPAM n° 422 (régime général)", "12 factures", "(refus définitif)",
				"renvoyez-le depuis votre logiciel de facturation", "prévenez votre caisse", "feuilles de soins papier",
				"Le délai de 3 jours ouvrés (8 en tiers payant) court toujours.", "appelez votre technicien (Martin Informatique, 04 00 00 00 00)", "24/11/2026 à 10:15"}},
		{name: "mail-from-refused-lot", stage: "MAIL FROM", err: reply(553, smtp.EnhancedCode{5, 7, 1}, "Sender address rejected: not owned by user"),
			lot: true, msg: lot1, headers: h1,
			says: []string{"l'adresse d'expéditeur du cabinet", "MSA n° 123 (régime agricole)", "1 facture,", "appelez votre technicien."}},
		{name: "too-big-lot", stage: "the final dot", err: reply(552, smtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed maximum message size"),
			lot: true, msg: lot12, headers: h12, contact: contact,
			says: []string{"ce lot est trop volumineux pour votre messagerie"}},
		{name: "spam-lot", stage: "the final dot", err: reply(554, smtp.EnhancedCode{5, 7, 1}, "Message rejected as spam by Content Filtering"),
			lot: true, msg: fundOnly, headers: hf,
			says: []string{"règle de sécurité", "MGEN n° 751", "renvoyez-le"}},
		{name: "data-refused-message", stage: "DATA", err: reply(554, smtp.EnhancedCode{5, 0, 0}, "Transaction failed"),
			msg: one, headers: h1p, says: []string{"votre messagerie a refusé ce message", "renvoyez-le", "Destinataire :"}},
		{name: "rcpt-refused-two-recipients", stage: "RCPT TO <dr.martin@example.org>", err: reply(550, smtp.EnhancedCode{5, 1, 1}, "No such user here"),
			msg: two, headers: h2, contact: contact, says: []string{"pour 2 destinataires", "l'adresse du destinataire", "Destinataires :"}},
		{name: "login-refused-delayed-lot", stage: "login", err: reply(535, smtp.EnhancedCode{5, 7, 8}, "Authentication credentials invalid"),
			delayed: true, lot: true, msg: lot12, headers: h12, contact: contact,
			says: []string{"l'identifiant ou le mot de passe", "Ne renvoyez pas ce lot", "doublon", "27/11/2026", "court toujours"}},
		{name: "unreachable-delayed-lot", stage: "connect", err: errors.New("dial tcp 127.0.0.1:465: connect: connection refused"),
			delayed: true, lot: true, msg: lot1, headers: h1,
			says: []string{"le relais n'a pas pu joindre votre messagerie", "Ne renvoyez pas ce lot", "pour la MSA n° 123"}},
		{name: "temporary-data-delayed-message", stage: "the final dot", err: reply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem - please try later"),
			delayed: true, msg: one, headers: h1p, says: []string{"(refus temporaire)", "Ne renvoyez pas ce message"}},
		{name: "certificate-delayed-lot", stage: "TLS handshake", err: x509.UnknownAuthorityError{},
			delayed: true, lot: true, msg: lot12, headers: h12, says: []string{"le certificat de sécurité de votre messagerie"}},
		{name: "timeout-delayed-lot", stage: "MAIL FROM", err: timeout,
			delayed: true, lot: true, msg: lot12, headers: h12, says: []string{"n'a pas répondu à temps pendant l'envoi"}},
		{name: "expired-lot", stage: "connect", err: timeout, expired: 72 * time.Hour,
			lot: true, msg: lot12, headers: h12, contact: contact,
			says: []string{"Pendant 3 jours", "n'a pas répondu à temps lors de la connexion", "renvoyez-le depuis votre logiciel de facturation"}},
	}
}

func (c dsnCase) report() report {
	w := &Worker{hostname: "relais.cabinet.lan", contact: c.contact,
		acct: config.Account{Upstream: config.Provider{SMTP: config.Upstream{Host: provider}}}}
	ue := Classify(c.stage, provider, c.err)
	r := w.bounceReport(c.msg, c.headers, ue, c.expired)
	if c.delayed {
		r = w.delayReport(c.msg, c.headers, ue, c.msg.Received.Add(72*time.Hour))
	}
	r.now = c.msg.Received.Add(4 * time.Hour)
	return r
}

var word = regexp.MustCompile(`\p{L}{3,}`)

func words(s string) map[string]bool {
	w := map[string]bool{}
	for _, x := range word.FindAllString(strings.ToLower(s), -1) {
		w[x] = true
	}
	return w
}

// English returns the words of the technician's English text that are
// not also the mail's own (its addresses and subject), the relay's name, nor French.
func english(r report) map[string]bool {
	en := words(r.diagnosis)
	for own := range words(strings.Join(append(r.msg.To, r.msg.From, r.msg.Subject, r.hostname, "sesam-relay"), " ")) {
		delete(en, own)
	}
	for _, both := range []string{"message", "service", "transaction", "local", "content", "date", "client"} {
		delete(en, both)
	}
	return en
}

// parseDSN returns the decoded subject, French text and delivery-status part.
func parseDSN(t *testing.T, raw []byte) (subject, human, status string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch p.Header.Get("Content-Type") {
		case "text/plain; charset=utf-8":
			b, _ = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
			human = strings.ReplaceAll(string(b), "\r\n", "\n")
		case "message/delivery-status":
			status = string(b)
		}
	}
	return
}

func TestDSNSaysInFrenchWhatFailedAndWhatToDo(t *testing.T) {
	for _, c := range dsnCases() {
		t.Run(c.name, func(t *testing.T) {
			r := c.report()
			subject, human, status := parseDSN(t, r.build())
			cut := strings.LastIndex(human, "\nDétail technique : ")
			if cut < 0 {
				t.Fatalf("no \"Détail technique\" line:\n%s", human)
			}
			above, last := human[:cut], strings.TrimSuffix(human[cut+1:], "\n")
			if strings.Contains(last, "\n") {
				t.Errorf("\"Détail technique\" is not the last line:\n%s", human)
			}
			var se *smtp.SMTPError
			if errors.As(c.err, &se) && !strings.Contains(last, se.Message) {
				t.Errorf("the provider's reply %q is not on the last line: %s", se.Message, last)
			}
			if last != "Détail technique : "+oneLine(r.diagnosis) {
				t.Errorf("last line %q, want the technician's text %q", last, r.diagnosis)
			}
			en := english(r)
			for w := range words(above + " " + subject) {
				if en[w] {
					t.Errorf("English %q of the provider's text above \"Détail technique\":\n%s", w, above)
				}
			}
			for _, want := range c.says {
				if !strings.Contains(above, want) {
					t.Errorf("the French text lacks %q:\n%s", want, above)
				}
			}
			if n := utf8.RuneCountInString(subject); n >= 60 {
				t.Errorf("subject of %d characters: %q", n, subject)
			}
			wantSubject := map[[2]bool]string{
				{true, false}: "Lot non transmis", {true, true}: "Lot en attente d'envoi",
				{false, false}: "Message non remis : ", {false, true}: "Message en attente d'envoi : ",
			}[[2]bool{c.lot, c.delayed}]
			if !strings.HasPrefix(subject, wantSubject) {
				t.Errorf("subject %q, want it to start with %q", subject, wantSubject)
			}
			if c.delayed != strings.Contains(above, "Ne renvoyez pas") {
				t.Errorf("delayed %v, yet \"Ne renvoyez pas\" %v:\n%s", c.delayed, !c.delayed, above)
			}
			if c.delayed == strings.Contains(above, "renvoyez-le") {
				t.Errorf("delayed %v, yet \"renvoyez-le\" %v:\n%s", c.delayed, c.delayed, above)
			}
			if c.lot != strings.Contains(above, "3 jours ouvrés") {
				t.Errorf("lot %v, yet the deadline %v:\n%s", c.lot, !c.lot, above)
			}
			for _, bad := range []string{"(s)", "1 factures", "1 destinataires"} {
				if strings.Contains(above, bad) {
					t.Errorf("plural written %q:\n%s", bad, above)
				}
			}
			// The machine-readable part stays as the billing software reads it.
			action := "failed"
			if c.delayed {
				action = "delayed"
			}
			for _, want := range []string{"Action: " + action, "Status: " + r.status, "Remote-MTA: dns; " + provider,
				"Diagnostic-Code: smtp; " + oneLine(r.diagnosis), "Final-Recipient: rfc822; " + c.msg.To[0]} {
				if !strings.Contains(status, want) {
					t.Errorf("delivery-status lacks %q:\n%s", want, status)
				}
			}
			golden(t, "dsn-"+c.name+".txt", "Objet : "+subject+"\n\n"+human)
		})
	}
}

// golden compares a notice with its copy under testdata/notices, kept so a
// reviewer can read the French without running anything; -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "notices", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./relay/deliver -run DSN -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test ./relay/deliver -run DSN -update to accept):\n%s", path, got)
	}
}

func TestDSNWithoutContactStillSendsToTheTechnician(t *testing.T) {
	c := dsnCases()[1]
	c.contact = ""
	_, human, _ := parseDSN(t, c.report().build())
	if !strings.Contains(human, "Pour régler le problème, appelez votre technicien.") {
		t.Errorf("no call to the technician without a contact:\n%s", human)
	}
}
