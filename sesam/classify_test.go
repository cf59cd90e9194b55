package sesam_test

import (
	"regexp"
	"runtime"
	"testing"

	"github.com/sesam-relay/sesam-relay/sesam"
)

func TestClassifyByRulesContentAndReports(t *testing.T) {
	dsn := []byte("From: MAILER-DAEMON@smtp.laposte.net\r\nMessage-ID: <dsn@x>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=q\r\n\r\n" +
		"--q\r\nContent-Type: text/plain\r\n\r\nnon remis\r\n--q\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; 01422@422.01.rss.fr\r\nAction: failed\r\n" +
		"--q\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: IR/1/2/3\r\nMessage-ID: <lot-42@billing.test>\r\n--q--\r\n")
	reject := ediMail("NOEMIE RSP", []byte(noemieFile([][2]string{{"261124", "017"}}, nil, "29401R001"+pad86("ACTE REJETE")+"@")), true)
	warning := ediMail("NOEMIE RSP", []byte(noemieFile([][2]string{{"261124", "017"}}, []string{"W7"}, "")), false)
	payment := ediMail("NOEMIE RSP", []byte(noemieFile([][2]string{{"261124", "017"}}, nil, "")), true)
	cases := []struct {
		name string
		raw  []byte
		want sesam.Class
	}{
		{"positive ARL", arlMail("ARL positif lot 017", "ARL POSITIF : LOT RECU ET CONFORME"), sesam.ARLPositive},
		{"positive Subject, no payload", []byte("From: <arl@cpam.fr>\r\nSubject: ARL positif lot 017\r\n\r\nok\r\n"), sesam.ARLUnknown},
		{"negative ARL", []byte("From: <arl@cpam.fr>\r\nSubject: =?utf-8?q?ARL_n=C3=A9gatif?= lot 017\r\n\r\nko\r\n"), sesam.ARLNegative},
		{"ARL by part description, polarity unsaid", []byte("Subject: retour\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: application/edi-consent\r\nContent-Description: ARL\r\n\r\nx\r\n--a--\r\n"), sesam.ARLUnknown},
		{"bounce", dsn, sesam.Bounce},
		{"NOEMIE reject", reject, sesam.NoemieReject},
		{"NOEMIE warning", warning, sesam.NoemieWarning},
		{"NOEMIE payment", payment, sesam.NoemiePayment},
		{"provider notice", []byte("From: La Poste <securite@laposte.net>\r\nSubject: Votre mot de passe\r\n\r\nx\r\n"), sesam.ProviderNotice},
		{"junk", []byte("\xff\xfe garbage"), sesam.Unknown},
	}
	for _, c := range cases {
		if got := sesam.Classify(c.raw, nil); got.Class != c.want {
			t.Errorf("%s: %s (%s)", c.name, got.Class, got.Why)
		}
	}
	in := sesam.Classify(dsn, nil)
	if in.OrigMessageID != "<lot-42@billing.test>" || len(in.OrigRcpts) != 1 || in.OrigRcpts[0] != "01422@422.01.rss.fr" {
		t.Fatalf("bounce details: %+v", in)
	}
	if in := sesam.Classify(reject, nil); len(in.Rejects) != 1 || in.Rejects[0].Code != "R001" || in.Noemie.Lots[0].Number != "017" {
		t.Fatalf("reject details: %+v", in)
	}
}

func TestConfiguredRulesComeFirst(t *testing.T) {
	raw := []byte("From: <teletrans@cpam-paris.fr>\r\nSubject: Retour de traitement 017\r\n\r\nx\r\n")
	if c := sesam.Classify(raw, nil).Class; c != sesam.Unknown {
		t.Fatalf("without a rule: %s", c)
	}
	rules := []sesam.Rule{{Field: "from", Pattern: regexp.MustCompile(`teletrans@cpam`), Class: sesam.ARLPositive}}
	if c := sesam.Classify(raw, rules).Class; c != sesam.ARLPositive {
		t.Fatalf("with a rule: %s", c)
	}
}

func pad86(s string) string {
	for len(s) < 86 {
		s += " "
	}
	return s
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte("Subject: ARL\r\n\r\n"))
	f.Add(clearLot())
	f.Add(ediParts(zeros(f, 20)))
	f.Add(ediParts([]byte(noemieFile([][2]string{{"261124", "017"}}, []string{"R1"}, "")), zeros(f, 1)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Whatever the input, one message costs its budget plus a
		// bounded multiple of its own size (MIME reading, header copies).
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sesam.Classify(raw, nil)
		runtime.ReadMemStats(&after)
		if n, limit := after.TotalAlloc-before.TotalAlloc, uint64(2*sesam.EDIBudget+16*len(raw)+8<<20); n > limit {
			t.Fatalf("classifying %d bytes allocated %d bytes, over %d", len(raw), n, limit)
		}
	})
}

func TestNoemieWithoutContentDescriptionIsStillRead(t *testing.T) {
	raw := []byte("Subject: x\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\ncontent-type: application/edi-consent\r\n\r\n" +
		noemieFile([][2]string{{"261124", "042"}}, nil, "") + "\r\n--a--\r\n")
	in := sesam.Classify(raw, nil)
	if in.Class != sesam.NoemiePayment || in.Noemie == nil || in.Noemie.Lots[0].Number != "042" {
		t.Fatalf("%+v", in)
	}
}
