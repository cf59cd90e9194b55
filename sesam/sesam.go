// Package sesam holds what sesam-relay knows of SESAM-Vitale
// teletransmission by mail: how lots and returns look. Pure functions over
// bytes, no network code. See DOMAIN.md for where each fact comes from.
package sesam

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"time"
)

// FundAddress returns the teletransmission address of a fund: régime (2
// digits) and caisse (3 digits) give RRCCC@CCC.RR.rss.fr.
func FundAddress(regime, caisse string) string {
	return fmt.Sprintf("%s%s@%s.%s.rss.fr", regime, caisse, caisse, regime)
}

// SampleLot describes a synthetic lot mail, for the demo, the tests and the
// benchmarks: not a lot the relay handles (that is Lot).
type SampleLot struct {
	From     string    // the practitioner's provider address
	Fund     string    // recipient, e.g. FundAddress("01", "996") (a test fund)
	Emitter  string    // 14 characters
	Invoices int       // invoice count
	At       time.Time // stamp
	Seq      int       // the 5 digits after the stamp's seconds
	Payload  int       // bytes of fake ciphertext (rounded up to the AES block), or of fake B2 file in a signed-only lot
	Shape    LotShape  // how the mail is laid out; the zero value is the usual multipart lot
}

// LotShape is how a synthetic lot mail is laid out: the shapes senders use
// (DOMAIN.md, "Outbound mail"), and one a guard must hold.
type LotShape int

const (
	// LotMultipart is multipart/mixed holding an application/pkcs7-mime
	// (smime.p7m) part of CMS enveloped-data: the usual encrypted lot.
	LotMultipart LotShape = iota
	// LotSinglePart is a single-part mail whose top-level type is
	// Application/EDI-consent (Content-Description: IRIS/B2/Z) with the CMS
	// enveloped-data as its base64 body: encrypted too.
	LotSinglePart
	// LotSignedOnly is multipart/mixed holding an application/pkcs7-mime
	// part of CMS signed-data, whose B2 file anyone can read: not encrypted.
	LotSignedOnly
)

// Subject is the lot's Subject: IR/emitter/stamp(19)/invoices(5).
func (l SampleLot) Subject() string {
	return fmt.Sprintf("IR/%s/%s%05d/%05d", l.Emitter, l.At.Format("20060102150405"), l.Seq%100000, l.Invoices)
}

// Mail builds a lot mail shaped like the billing software's (see Shape).
// Its CMS is structurally real DER but holds only random bytes: no real
// care sheet, no patient data, nothing anyone can decrypt. Lines end in
// CRLF.
func (l SampleLot) Mail() []byte {
	if l.Payload <= 0 {
		l.Payload = 4096
	}
	id := random(8)
	boundary := fmt.Sprintf("----=_lot_%x", id)
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	w("From: <%s>", l.From)
	w("To: <%s>", l.Fund)
	w("Subject: %s", l.Subject())
	w("Date: %s", l.At.Format(time.RFC1123Z))
	w("Message-ID: <%x.%s@sesam.test>", id, l.Emitter)
	w("MIME-Version: 1.0")
	var der []byte
	switch l.Shape {
	case LotSinglePart:
		w("Content-Type: Application/EDI-consent")
		w("Content-Description: IRIS/B2/Z")
		w("Content-Transfer-Encoding: base64")
		w("")
		writeBase64(w, syntheticEnveloped(l.Payload))
		return b.Bytes()
	case LotSignedOnly:
		// What S/MIME signs is a MIME entity: here the B2 part, in clear
		// inside the signature (random bytes stand for its gzip'd records).
		var inner bytes.Buffer
		iw := func(format string, a ...any) { fmt.Fprintf(&inner, format+"\r\n", a...) }
		iw("Content-Type: Application/EDI-consent")
		iw("Content-Description: IRIS/B2/Z")
		iw("Content-Transfer-Encoding: base64")
		iw("")
		writeBase64(iw, random(l.Payload))
		der = syntheticSigned(inner.Bytes())
	default:
		der = syntheticEnveloped(l.Payload)
	}
	smimeType := "enveloped-data"
	if l.Shape == LotSignedOnly {
		smimeType = "signed-data"
	}
	w("Content-Type: multipart/mixed; boundary=\"%s\"", boundary)
	w("")
	w("--%s", boundary)
	w("Content-Type: application/pkcs7-mime; smime-type=%s; name=\"smime.p7m\"", smimeType)
	w("Content-Transfer-Encoding: base64")
	w("Content-Disposition: attachment; filename=\"smime.p7m\"")
	w("")
	writeBase64(w, der)
	w("--%s--", boundary)
	return b.Bytes()
}

// writeBase64 writes data in base64 lines of 76 characters.
func writeBase64(w func(format string, a ...any), data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		w("%s", enc[:76])
		enc = enc[76:]
	}
	w("%s", enc)
}
