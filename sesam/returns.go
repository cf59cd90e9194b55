package sesam

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// The builders below make synthetic returns, for the demo, the tests and
// testdata: DOMAIN.md's record widths, made-up numbers, no patient data
// (they never write the 103/110/120 patient entities).

// NoemieFile describes a synthetic NOEMIE file. Fields longer than their
// width are cut, shorter ones padded with spaces; empty ones get the
// defaults named.
type NoemieFile struct {
	EmitterType string // "CP" (CPAM) by default
	Emitter     string // the fund's emitter number, 14
	Recipient   string // the practitioner's emitter number, 14
	FileID      string // 6
	FileDate    string // YYMMDD
	Demo        bool   // flow type D instead of R
	Lots        []NoemieLotRef
	ReturnType  string // 081: "01" electronic (default), "02" paper, "03" lump sum (a 261 follows)
	// LotRejects are written after the 080 and 081, before any invoice.
	LotRejects []Reject
	// Invoices are written each as a 102 followed by its Rejects (Entity
	// "290" or "294"; Kind is not written, it is read from the label) and
	// its amounts: 198 Claimed and 199 Paid, in cents, each left out when
	// negative.
	Invoices []NoemieInvoice
	// Extra is written as is after the invoices, before the trailer: raw
	// entities a test wants (an unknown code, a malformed amount).
	Extra string
}

// fitWidth fits s to n characters: cut, or padded with spaces.
func fitWidth(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Bytes writes the file: a 128-character 000 header, the entities closed
// by '@', a 128-character 999 trailer whose lot count is at offset 82;
// records are separated by CRLF (the parser accepts line breaks between
// records).
func (f NoemieFile) Bytes() []byte {
	// The routing fields 000 and 999 share: up to and including the
	// exchange type and the file id (55 characters with the code).
	routing := fitWidth(orDefault(f.EmitterType, "CP"), 2) + fitWidth(f.Emitter, 14) + fitWidth("NOEMIE", 6) +
		"PS" + fitWidth(f.Recipient, 14) + fitWidth("LOGPS", 6) + "01" + fitWidth(f.FileID, 6)
	flow := "R"
	if f.Demo {
		flow = "D"
	}
	header := "000" + routing + fitWidth(f.FileDate, 6) + "0576" + "01" + "N" + "N" + "E" + flow +
		fitWidth("", 11) + "128" + fitWidth("", 6) + fitWidth("", 37)

	var ents []string
	for _, l := range f.Lots {
		ents = append(ents, "08001"+fitWidth(l.Date, 6)+fitWidth(l.Number, 3))
	}
	rtype := orDefault(f.ReturnType, "01")
	ents = append(ents, "08101"+fitWidth(rtype, 2)+fitWidth("", 14))
	if rtype == "03" {
		ents = append(ents, "26101") // its fields are not in DOMAIN.md's table
	}
	for i, r := range f.LotRejects {
		ents = append(ents, rejectEntity(r, i+1))
	}
	var paid int64
	for _, inv := range f.Invoices {
		ents = append(ents, "10202"+fitWidth(inv.Number, 9)+fitWidth("", 6)+fitWidth(inv.Lot, 3)+fitWidth(inv.LotDate, 6)+
			"1"+fitWidth(inv.BillingDate, 6)+"0"+"10")
		for i, r := range inv.Rejects {
			ents = append(ents, rejectEntity(r, i+1))
		}
		if inv.Claimed >= 0 {
			ents = append(ents, fmt.Sprintf("19803%08d", inv.Claimed%1e8))
		}
		if inv.Paid >= 0 {
			ents = append(ents, fmt.Sprintf("19903%08d", inv.Paid%1e8))
			paid += inv.Paid % 1e8
		}
	}

	var b strings.Builder
	b.WriteString(header + "\r\n")
	for _, e := range ents {
		b.WriteString(e + "@\r\n")
	}
	b.WriteString(f.Extra)
	records := len(ents) + strings.Count(f.Extra, "@") + 2
	trailer := "999" + routing + fmt.Sprintf("%08d", records%1e8) + flow + fitWidth("", 18) +
		fmt.Sprintf("%03d", len(f.Lots)%1000) + fmt.Sprintf("%011d", paid%1e11) + "+"
	if f.Extra != "" && !strings.HasSuffix(f.Extra, "\n") {
		b.WriteString("\r\n")
	}
	b.WriteString(fitWidth(trailer, 128) + "\r\n")
	return []byte(b.String())
}

// rejectEntity writes a 290 (line, code 10, label 80) or a 294 (code 4,
// label 86, then its other fields blank).
func rejectEntity(r Reject, line int) string {
	if r.Entity == "294" {
		return "29403" + fitWidth(r.Code, 4) + fitWidth(r.Label, 86) + fitWidth("", 1+1+5+6+9+3+2+30)
	}
	return "29003" + fmt.Sprintf("%02d", line%100) + fitWidth(r.Code, 10) + fitWidth(r.Label, 80)
}

// NoemieMail describes a synthetic mail carrying a NOEMIE return: a short
// text part and an Application/EDI-Consent part, base64, gzip'd or not.
type NoemieMail struct {
	From        string    // "noemie@cpam-exemple.test" by default
	To          string    // "jean.dupont@laposte.net" by default
	Subject     string    // "Retour NOEMIE" by default
	Description string    // Content-Description, "NOEMIE RSP 576" by default
	Date        time.Time // the zero time writes no Date
	MessageID   string    // without <>; made from the content by default
	Gzip        bool
	Payload     []byte // the NOEMIE file, e.g. NoemieFile.Bytes()
}

// Mail builds the message, lines ending in CRLF. The same description
// gives the same bytes (no random boundary or id): testdata stays stable.
func (m NoemieMail) Mail() []byte {
	payload := m.Payload
	if m.Gzip {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(payload)
		w.Close()
		payload = z.Bytes()
	}
	return buildEDIMail(mailHead{
		From: orDefault(m.From, "noemie@cpam-exemple.test"), To: m.To, Subject: orDefault(m.Subject, "Retour NOEMIE"),
		Date: m.Date, MessageID: m.MessageID,
	}, "Retour NOEMIE de votre caisse.", orDefault(m.Description, "NOEMIE RSP 576"), payload)
}

// ARLMail describes a synthetic ARL mail. It says what it is told: whether
// Outcome is positive is decided by whoever reads it, not here.
type ARLMail struct {
	From      string    // "arl@cpam-exemple.test" by default
	To        string    // "jean.dupont@laposte.net" by default
	Subject   string    // "ARL" by default; e.g. "ARL positif - IR/<emitter>/<stamp>/<count>"
	Stamp     string    // the lot's 19-digit stamp, quoted in the text part
	Date      time.Time // the zero time writes no Date
	MessageID string    // without <>; made from the content by default
	// Outcome is the text of the EDI payload part (Content-Description
	// ARL), e.g. ARLPositiveText(stamp); empty, the mail is text only.
	Outcome string
}

// ARLPositiveText and ARLNegativeText are outcome texts shaped like an
// acknowledgement's (the real wording is not public: DOMAIN.md).
func ARLPositiveText(stamp string) string {
	return "ARL POSITIF : LOT " + stamp + " RECU ET CONFORME"
}

// ARLNegativeText: see ARLPositiveText.
func ARLNegativeText(stamp, reason string) string {
	return "ARL NEGATIF : LOT " + stamp + " REJETE : " + reason
}

// Mail builds the message, lines ending in CRLF, the same bytes for the
// same description.
func (a ARLMail) Mail() []byte {
	h := mailHead{From: orDefault(a.From, "arl@cpam-exemple.test"), To: a.To, Subject: orDefault(a.Subject, "ARL"), Date: a.Date, MessageID: a.MessageID}
	text := "Accuse de reception logique du lot " + a.Stamp + "."
	if a.Outcome == "" {
		var b bytes.Buffer
		h.write(&b, []byte(text))
		b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n" + text + "\r\n")
		return b.Bytes()
	}
	return buildEDIMail(h, text, "ARL", []byte(a.Outcome+"\r\n"))
}

type mailHead struct {
	From, To, Subject, MessageID string
	Date                         time.Time
}

// write writes the top-level header up to MIME-Version; seed makes the
// default Message-ID.
func (h mailHead) write(b *bytes.Buffer, seed []byte) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format+"\r\n", a...) }
	id := h.MessageID
	if id == "" {
		sum := sha256.Sum256(append([]byte(h.Subject+"\x00"), seed...))
		domain := h.From[strings.LastIndexByte(h.From, '@')+1:]
		id = fmt.Sprintf("%x@%s", sum[:8], domain)
	}
	w("From: <%s>", h.From)
	w("To: <%s>", orDefault(h.To, "jean.dupont@laposte.net"))
	w("Subject: %s", h.Subject)
	if !h.Date.IsZero() {
		w("Date: %s", h.Date.Format(time.RFC1123Z))
	}
	w("Message-ID: <%s>", id)
	w("MIME-Version: 1.0")
}

// buildEDIMail is a multipart/mixed mail: a text part, then an
// Application/EDI-Consent part holding payload in base64.
func buildEDIMail(h mailHead, text, desc string, payload []byte) []byte {
	sum := sha256.Sum256(payload)
	boundary := fmt.Sprintf("----=_edi_%x", sum[:6])
	var b bytes.Buffer
	h.write(&b, payload)
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	w("Content-Type: multipart/mixed; boundary=\"%s\"", boundary)
	w("")
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=us-ascii")
	w("")
	w("%s", text)
	w("--%s", boundary)
	w("Content-Type: Application/EDI-Consent")
	w("Content-Description: %s", desc)
	w("Content-Transfer-Encoding: base64")
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
