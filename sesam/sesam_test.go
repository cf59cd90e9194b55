package sesam_test

import (
	"bytes"
	"net/mail"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

func TestSampleLotHasTheLotShape(t *testing.T) {
	l := sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: sesam.FundAddress("01", "996"), Emitter: "12345678901234", Invoices: 3,
		At: time.Date(2026, 11, 24, 8, 15, 0, 0, time.UTC), Seq: 42, Payload: 1000}
	if l.Fund != "01996@996.01.rss.fr" {
		t.Fatalf("fund %q", l.Fund)
	}
	if got := l.Subject(); got != "IR/12345678901234/2026112408150000042/00003" {
		t.Fatalf("subject %q", got)
	}
	raw := l.Mail()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Subject") != l.Subject() || !bytes.Contains(raw, []byte("application/pkcs7-mime")) {
		t.Fatal("headers")
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("bare LF in a lot mail")
	}
	if _, err := sesam.ParseLotSubject(l.Subject()); err != nil {
		t.Fatalf("the sample's own Subject does not parse: %v", err)
	}
}

func TestReadHeadersDecodesAndNeverFails(t *testing.T) {
	h := sesam.ReadHeaders([]byte("Subject: =?iso-8859-1?q?Retour_NO=C9MIE?=\r\nFrom: CPAM <noemie@cpam.fr>\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n"))
	if h.Subject != "Retour NOÉMIE" || h.From != "CPAM <noemie@cpam.fr>" || h.MessageID != "<a@b>" {
		t.Fatalf("%+v", h)
	}
	for _, raw := range []string{"", "no header at all", "\x00\xff: \r\n", "Subject: x\nFrom: y\n\nbare LF body"} {
		sesam.ReadHeaders([]byte(raw))
	}
	if h := sesam.ReadHeaders([]byte("Subject: x\nFrom: y\n\nbody")); h.Subject != "x" {
		t.Fatalf("bare-LF header: %+v", h)
	}
}

func FuzzReadHeaders(f *testing.F) {
	f.Add([]byte("Subject: =?utf-8?b?w6k=?=\r\n\r\n"))
	f.Add([]byte("From: a\r\n b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) { sesam.ReadHeaders(raw) })
}

func TestACRCRLFLotIsReadLikeItsCRLFTwin(t *testing.T) {
	lot := sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: "12345678901234", Invoices: 3, At: time.Now(), Seq: 1, Payload: 2000}
	crlf := lot.Mail()
	crcrlf := bytes.ReplaceAll(crlf, []byte("\r\n"), []byte("\r\r\n"))
	if a, b := sesam.ReadHeaders(crlf), sesam.ReadHeaders(crcrlf); a != b || a.MessageID == "" {
		t.Fatalf("headers differ: %+v vs %+v", a, b)
	}
	a, b := sesam.InspectOutbound(crlf, []string{lot.Fund}), sesam.InspectOutbound(crcrlf, []string{lot.Fund})
	if a != b || !b.Encrypted || b.Clear {
		t.Fatalf("inspection differs: %+v vs %+v", a, b)
	}
}
