package sesam_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// nested builds a mail whose IRIS/B2 part, in clear, sits depth levels down
// inside multiparts, each with `wide` empty text parts beside it.
func nested(depth, wide int) []byte {
	var b strings.Builder
	b.WriteString("From: jean.dupont@laposte.net\r\nTo: 01422@422.01.rss.fr\r\nSubject: lot\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
		for j := 0; j < wide; j++ {
			fmt.Fprintf(&b, "Content-Type: text/plain\r\n\r\nfiller\r\n--b%d\r\n", i)
		}
	}
	b.WriteString("Content-Type: application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\n\r\nFACTURES EN CLAIR\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return []byte(b.String())
}

func TestGuardFindsAClearCareSheetDeepInside(t *testing.T) {
	o := sesam.InspectOutbound(nested(12, 0), []string{"secretariat@cabinet-voisin.test"})
	if !o.Clear || !strings.Contains(o.ClearWhy, "IRIS/B2/Z") {
		t.Fatalf("an IRIS/B2 part in clear at depth 12 was not seen: %+v", o)
	}
}

func TestGuardThatCannotFinishReadingHoldsTheMail(t *testing.T) {
	for name, raw := range map[string][]byte{
		"deep": nested(60, 0),
		"wide": nested(1, 1200),
	} {
		o := sesam.InspectOutbound(raw, []string{"secretariat@cabinet-voisin.test"})
		if !o.Clear || !strings.Contains(o.ClearWhy, "could not read the mail to its end") {
			t.Errorf("%s: a mail the guard could not read to its end was not held: %+v", name, o)
		}
	}
	// Within the budget, an ordinary nested mail with no care sheet passes.
	ok := strings.Replace(string(nested(20, 3)), "Content-Type: application/EDI-consent\r\nContent-Description: IRIS/B2/Z", "Content-Type: text/plain", 1)
	if o := sesam.InspectOutbound([]byte(ok), []string{"secretariat@cabinet-voisin.test"}); o.Clear {
		t.Fatalf("a nested mail with nothing in clear was held: %+v", o)
	}
}

// A care sheet in clear inside an attached mail (message/rfc822) is in
// clear too (found by review: the guard did not look inside).
func TestGuardLooksInsideAttachedMails(t *testing.T) {
	raw := "From: jean.dupont@laposte.net\r\nTo: 01422@422.01.rss.fr\r\nSubject: lot\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"top\"\r\n\r\n--top\r\n" +
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQA=\r\n--top\r\n" +
		"Content-Type: message/rfc822\r\n\r\n" +
		"Subject: forwarded\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"in\"\r\n\r\n--in\r\n" +
		"Content-Type: application/EDI-consent\r\nContent-Description: IRIS/B2/Z\r\n\r\nFACTURES EN CLAIR\r\n--in--\r\n" +
		"--top--\r\n"
	if o := sesam.InspectOutbound([]byte(raw), []string{"01422@422.01.rss.fr"}); !o.Clear || !strings.Contains(o.ClearWhy, "IRIS/B2/Z") {
		t.Fatalf("a care sheet in clear inside an attached mail was not seen: %+v", o)
	}
}
