package deliver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// report builds an RFC 3464 delivery status notification whose
// human-readable part is in French: it lands in the practitioner's mailbox,
// where the billing software reads it the way it would read the provider's.
type report struct {
	hostname  string
	upstream  string // the provider's host, for Remote-MTA
	msg       store.Message
	headers   []byte // the original header block, for text/rfc822-headers
	action    string // "failed" or "delayed"
	status    string // e.g. 5.1.1
	diagnosis string // what the provider said, or why we gave up
	retryTill time.Time
	now       time.Time
}

var enhanced = regexp.MustCompile(`\b([245]\.\d{1,3}\.\d{1,3})\b`)

// statusOf picks the enhanced status code out of a provider's reply, or a default.
func statusOf(text, def string) string {
	if m := enhanced.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return def
}

func (r report) subject() string {
	subj := r.msg.Subject
	if subj == "" {
		subj = "(sans objet)"
	}
	if r.action == "failed" {
		return "Non remis : " + subj
	}
	return "Toujours en attente : " + subj
}

func (r report) human() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bonjour,\n\n")
	if r.action == "failed" {
		fmt.Fprintf(&b, "Le relais de messagerie de votre cabinet (sesam-relay, %s) n'a pas pu remettre ce message à votre fournisseur de messagerie.\n\n", r.hostname)
	} else {
		fmt.Fprintf(&b, "Le relais de messagerie de votre cabinet (sesam-relay, %s) n'a pas encore pu remettre ce message à votre fournisseur de messagerie. Il continue d'essayer automatiquement.\n\n", r.hostname)
	}
	fmt.Fprintf(&b, "  Objet :           %s\n", r.msg.Subject)
	fmt.Fprintf(&b, "  Destinataire(s) : %s\n", strings.Join(r.msg.To, ", "))
	fmt.Fprintf(&b, "  Déposé le :       %s\n", sesam.FrenchDate(r.msg.Received))
	fmt.Fprintf(&b, "  Motif :           %s\n\n", r.diagnosis)
	if r.action == "failed" {
		fmt.Fprintf(&b, "Ce message n'a PAS été transmis. S'il s'agit d'un lot de feuilles de soins électroniques (FSE), il n'est pas parvenu à la caisse : une fois le problème réglé, renvoyez-le depuis votre logiciel de facturation, ou appelez votre technicien.\n")
	} else {
		fmt.Fprintf(&b, "Vous n'avez rien à faire pour l'instant. Ne renvoyez pas ce lot : il partira dès que votre fournisseur l'acceptera, et un second envoi serait refusé par la caisse comme doublon. Le relais essaiera jusqu'au %s ; passé ce délai, vous recevrez un avis de non-remise.\n", sesam.FrenchDate(r.retryTill))
	}
	fmt.Fprintf(&b, "\n-- \nsesam-relay, relais de messagerie du cabinet (message n° %d)\n", r.msg.ID)
	return b.String()
}

// build returns the notification's bytes with CRLF line endings.
func (r report) build() []byte {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	id := make([]byte, 8)
	rand.Read(id)
	h := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	h("From", fmt.Sprintf("%s <MAILER-DAEMON@%s>", mime.QEncoding.Encode("utf-8", "Relais SESAM du cabinet"), r.hostname))
	h("To", "<"+r.msg.From+">")
	h("Subject", mime.QEncoding.Encode("utf-8", r.subject()))
	h("Date", r.now.Format(time.RFC1123Z))
	h("Message-ID", fmt.Sprintf("<%s.dsn@%s>", hex.EncodeToString(id), r.hostname))
	h("Auto-Submitted", "auto-replied")
	h("MIME-Version", "1.0")
	h("Content-Type", fmt.Sprintf("multipart/report; report-type=delivery-status; boundary=%q", mw.Boundary()))
	buf.WriteString("\r\n")

	pw, _ := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	qw := quotedprintable.NewWriter(pw)
	qw.Write([]byte(strings.ReplaceAll(r.human(), "\n", "\r\n")))
	qw.Close()

	pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/delivery-status"}})
	var ds strings.Builder
	fmt.Fprintf(&ds, "Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n", r.hostname, r.msg.Received.Format(time.RFC1123Z))
	for _, rcpt := range r.msg.To {
		fmt.Fprintf(&ds, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n", rcpt, r.action, r.status)
		if r.upstream != "" {
			fmt.Fprintf(&ds, "Remote-MTA: dns; %s\r\n", r.upstream)
		}
		fmt.Fprintf(&ds, "Diagnostic-Code: smtp; %s\r\n", oneLine(r.diagnosis))
		if !r.msg.LastAttempt.IsZero() {
			fmt.Fprintf(&ds, "Last-Attempt-Date: %s\r\n", r.msg.LastAttempt.Format(time.RFC1123Z))
		}
		if r.action == "delayed" {
			fmt.Fprintf(&ds, "Will-Retry-Until: %s\r\n", r.retryTill.Format(time.RFC1123Z))
		}
	}
	pw.Write([]byte(ds.String()))

	pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/rfc822-headers"}})
	pw.Write(r.headers)
	mw.Close()
	return buf.Bytes()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// headerBlock returns a message's header block (through the blank line), capped.
func headerBlock(body []byte) []byte {
	end := bytes.Index(body, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(body)
	} else {
		end += 4
	}
	if end > 64<<10 {
		end = 64 << 10
	}
	return body[:end]
}
