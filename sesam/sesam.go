// Package sesam holds what sesam-relay knows of SESAM-Vitale
// teletransmission by mail: how lots and returns look. Pure functions over
// bytes, no network code. See DOMAIN.md for where each fact comes from.
package sesam

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"
)

// FundAddress returns the teletransmission address of a fund: régime (2
// digits) and caisse (3 digits) give RRCCC@CCC.RR.rss.fr.
func FundAddress(regime, caisse string) string {
	return fmt.Sprintf("%s%s@%s.%s.rss.fr", regime, caisse, caisse, regime)
}

// Lot describes a synthetic lot mail.
type Lot struct {
	From     string    // the practitioner's provider address
	Fund     string    // recipient, e.g. FundAddress("01", "996") (a test fund)
	Emitter  string    // 14 characters
	Invoices int       // invoice count
	At       time.Time // stamp
	Seq      int       // the 5 digits after the stamp's seconds
	Payload  int       // bytes of fake encrypted payload
}

// Subject is the lot's Subject: IR/emitter/stamp(19)/invoices(5).
func (l Lot) Subject() string {
	return fmt.Sprintf("IR/%s/%s%05d/%05d", l.Emitter, l.At.Format("20060102150405"), l.Seq%100000, l.Invoices)
}

// Mail builds a lot mail shaped like the billing software's: multipart/mixed
// holding an S/MIME application/pkcs7-mime part. The "encrypted" payload is
// random bytes: no real care sheet, no patient data. Lines end in CRLF.
func (l Lot) Mail() []byte {
	if l.Payload <= 0 {
		l.Payload = 4096
	}
	payload := make([]byte, l.Payload)
	rand.Read(payload)
	id := make([]byte, 8)
	rand.Read(id)
	boundary := fmt.Sprintf("----=_lot_%x", id)
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	w("From: <%s>", l.From)
	w("To: <%s>", l.Fund)
	w("Subject: %s", l.Subject())
	w("Date: %s", l.At.Format(time.RFC1123Z))
	w("Message-ID: <%x.%s@sesam.test>", id, l.Emitter)
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/mixed; boundary=\"%s\"", boundary)
	w("")
	w("--%s", boundary)
	w("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"")
	w("Content-Transfer-Encoding: base64")
	w("Content-Disposition: attachment; filename=\"smime.p7m\"")
	w("")
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 76 {
		w("%s", enc[:76])
		enc = enc[76:]
	}
	w("%s", enc)
	w("--%s--", boundary)
	return b.Bytes()
}
