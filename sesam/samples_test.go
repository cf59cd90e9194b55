package sesam_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

var update = flag.Bool("update", false, "write testdata/mail/*.eml again from the builders")

// samples are the synthetic messages of testdata/mail (see its README): the
// file name, how it is made, and what the relay must make of it.
func samples() map[string][]byte {
	at := time.Date(2026, 11, 24, 8, 15, 0, 0, time.UTC)
	lot := sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: "12345678901234", Invoices: 3, At: at, Seq: 42, Payload: 600}
	test := lot
	test.Fund = sesam.FundAddress("01", "996")
	single, signed := lot, lot
	single.Shape, signed.Shape = sesam.LotSinglePart, sesam.LotSignedOnly
	stamp := strings.Split(lot.Subject(), "/")[2]
	fund := sesam.NoemieFile{Emitter: "01422000000000", Recipient: lot.Emitter, FileID: "000043", FileDate: "261128"}
	invoiceReject := twelveInvoices(sesam.Reject{Entity: "294", Code: "R417", Label: "ACTE NON REMBOURSABLE"})
	doublon := twelveInvoices(sesam.Reject{Entity: "290", Code: "D0001", Label: "FACTURE EN DOUBLON"})
	doublon.Invoices = doublon.Invoices[7:10]
	lumpSum, paper := fund, fund
	lumpSum.ReturnType, paper.ReturnType = "03", "02"
	returnMail := func(f sesam.NoemieFile, gz bool) []byte {
		return sesam.NoemieMail{Subject: "Retour NOEMIE " + f.FileID, Date: at.Add(96 * time.Hour), Gzip: gz, Payload: f.Bytes()}.Mail()
	}
	return map[string][]byte{
		"noemie-invoice-reject.eml": returnMail(invoiceReject, true),
		"noemie-doublon.eml":        returnMail(doublon, false),
		"noemie-lump-sum.eml":       returnMail(lumpSum, true),
		"noemie-paper.eml":          returnMail(paper, false),
		"arl-payload-negative.eml": sesam.ARLMail{Subject: "ARL", Stamp: stamp, Date: at.Add(2 * time.Hour),
			Outcome: sesam.ARLNegativeText(stamp, "SIGNATURE INVERIFIABLE")}.Mail(),
		"arl-positive.eml": sesam.ARLMail{Subject: "ARL positif - " + lot.Subject(), Stamp: stamp, Date: at.Add(2 * time.Hour),
			Outcome: sesam.ARLPositiveText(stamp)}.Mail(),
		"lot-smime.eml":         lot.Mail(),
		"lot-test-fund.eml":     test.Mail(),
		"lot-single-part.eml":   single.Mail(),
		"lot-signed-only.eml":   signed.Mail(),
		"lot-clear.eml":         clearLot(),
		"arl-subject-only.eml":  []byte("From: <arl@cpam-exemple.test>\r\nTo: <jean.dupont@laposte.net>\r\nSubject: ARL positif - " + lot.Subject() + "\r\nMessage-ID: <arl-pos@cpam-exemple.test>\r\n\r\nLot " + stamp + " recu et conforme.\r\n"),
		"arl-negative.eml":      []byte("From: <arl@cpam-exemple.test>\r\nTo: <jean.dupont@laposte.net>\r\nSubject: ARL negatif - " + lot.Subject() + "\r\nMessage-ID: <arl-neg@cpam-exemple.test>\r\n\r\nLot " + stamp + " rejete : fichier non conforme.\r\n"),
		"noemie-payment-gz.eml": ediMail("NOEMIE RSP 576", []byte(noemieFile([][2]string{{"261124", "042"}}, nil, "")), true),
		"noemie-reject.eml":     ediMail("NOEMIE RSP 576", []byte(noemieFile([][2]string{{"261124", "042"}}, nil, "29401R001"+pad86("ACTE NON REMBOURSABLE")+"@")), false),
		"noemie-warning.eml":    ediMail("NOEMIE RSP 576", []byte(noemieFile([][2]string{{"261124", "042"}}, []string{"S07"}, "")), true),
		"dsn-lot.eml": []byte("From: MAILER-DAEMON@smtp.laposte.test\r\nTo: <jean.dupont@laposte.net>\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@smtp.laposte.test>\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n" +
			"--q\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; smtp.laposte.test\r\n\r\nFinal-Recipient: rfc822; 01422@422.01.rss.fr\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
			"--q\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: " + lot.Subject() + "\r\nMessage-ID: <lot-42@billing.test>\r\n--q--\r\n"),
		"provider-notice.eml": []byte("From: La Poste Mail <securite@laposte.net>\r\nTo: <jean.dupont@laposte.net>\r\nSubject: Information importante sur votre compte\r\nMessage-ID: <notice@laposte.net>\r\n\r\nVotre mot de passe doit etre change.\r\n"),
		"junk.eml":            []byte("\xff\xfe\x00 pas un courriel\nligne\nsans en-tete\n"),
	}
}

var wantClass = map[string]sesam.Class{
	"arl-positive.eml": sesam.ARLPositive, "arl-negative.eml": sesam.ARLNegative, "arl-subject-only.eml": sesam.ARLUnknown,
	"arl-payload-negative.eml": sesam.ARLNegative, "noemie-invoice-reject.eml": sesam.NoemieReject, "noemie-doublon.eml": sesam.NoemieReject,
	"noemie-lump-sum.eml": sesam.NoemieNoLot, "noemie-paper.eml": sesam.NoemieNoLot, "noemie-payment-gz.eml": sesam.NoemiePayment,
	"noemie-reject.eml": sesam.NoemieReject, "noemie-warning.eml": sesam.NoemieWarning, "dsn-lot.eml": sesam.Bounce,
	"provider-notice.eml": sesam.ProviderNotice, "junk.eml": sesam.Unknown,
}

func TestSamples(t *testing.T) {
	dir := "../testdata/mail"
	if *update {
		for name, b := range samples() {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%v (run go test ./sesam -run TestSamples -update)", err)
		}
		return b
	}
	for name, want := range wantClass {
		if got := sesam.Classify(read(name), nil); got.Class != want {
			t.Errorf("%s: %s (%s), want %s", name, got.Class, got.Why, want)
		}
	}
	o := sesam.InspectOutbound(read("lot-smime.eml"), []string{"01422@422.01.rss.fr"})
	if !o.Lot || !o.Encrypted || o.Clear || o.Test {
		t.Errorf("lot-smime.eml: %+v", o)
	}
	if o := sesam.InspectOutbound(read("lot-test-fund.eml"), []string{"01996@996.01.rss.fr"}); !o.Test || o.Clear {
		t.Errorf("lot-test-fund.eml: %+v", o)
	}
	if o := sesam.InspectOutbound(read("lot-clear.eml"), []string{"01422@422.01.rss.fr"}); !o.Clear {
		t.Errorf("lot-clear.eml: %+v", o)
	}
	if o := sesam.InspectOutbound(read("lot-single-part.eml"), []string{"01422@422.01.rss.fr"}); !o.Lot || !o.Encrypted || o.Clear {
		t.Errorf("lot-single-part.eml: %+v", o)
	}
	if o := sesam.InspectOutbound(read("lot-signed-only.eml"), []string{"01422@422.01.rss.fr"}); !o.Lot || o.Encrypted || !o.Clear || !strings.Contains(o.ClearWhy, "only signed") {
		t.Errorf("lot-signed-only.eml: %+v", o)
	}
	if n := sesam.Classify(read("noemie-reject.eml"), nil); len(n.Rejects) != 1 || n.Rejects[0].Label != "ACTE NON REMBOURSABLE" {
		t.Errorf("noemie-reject.eml: %+v", n.Rejects)
	}
}
