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
	"github.com/sesam-relay/sesam-relay/relay/upstream"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// report builds an RFC 3464 delivery status notification whose
// human-readable part is in French: it lands in the practitioner's mailbox,
// where the billing software reads it the way it would read the provider's.
// The French text follows FRENCH.md: the point in the subject, what
// happened, what to do, the deadline, and the provider's raw reply only on
// the last line, for the technician.
type report struct {
	hostname  string
	upstream  string // the provider's host, for Remote-MTA
	msg       store.Message
	headers   []byte // the original header block, for text/rfc822-headers
	action    string // "failed" or "delayed"
	status    string // e.g. 5.1.1
	diagnosis string // what the provider said, or why we gave up (English, for the technician)
	failure   sesam.SMTPFailure
	expired   time.Duration // a failure because the lifetime ran out after this long
	contact   string        // the technician, from sesam.contact
	retryTill time.Time
	now       time.Time
}

// bounceReport is the notice that m is given up: the provider refused it
// for good, or (expired > 0) it was not delivered within its lifetime, ue
// being the last failure.
func (w *Worker) bounceReport(m store.Message, body []byte, ue *upstream.Error, expired time.Duration) report {
	r := w.report(m, body, ue)
	r.action, r.status, r.expired = "failed", statusOf(ue.Text, "5.0.0"), expired
	if expired > 0 {
		r.diagnosis = fmt.Sprintf("no delivery after %s; last error: %s", expired, ue.Text)
		r.status = statusOf(r.diagnosis, "4.4.7")
	}
	return r
}

// delayReport is the notice that m still waits, retried until expiry.
func (w *Worker) delayReport(m store.Message, body []byte, ue *upstream.Error, expiry time.Time) report {
	r := w.report(m, body, ue)
	r.action, r.status, r.retryTill = "delayed", statusOf(ue.Text, "4.0.0"), expiry
	return r
}

func (w *Worker) report(m store.Message, body []byte, ue *upstream.Error) report {
	return report{hostname: w.hostname, upstream: w.acct.Upstream.SMTP.Host, msg: m, headers: headerBlock(body),
		diagnosis: ue.Text, failure: ue.Fail, contact: w.contact, now: time.Now()}
}

var enhanced = regexp.MustCompile(`\b([245]\.\d{1,3}\.\d{1,3})\b`)

// statusOf picks the enhanced status code out of a provider's reply, or a default.
func statusOf(text, def string) string {
	if m := enhanced.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return def
}

// maxSubject keeps the subject readable in a phone's list of mail.
const maxSubject = 59

func (r report) subject() string {
	o := r.outbound()
	if o.Lot {
		s := "Lot non transmis"
		if r.action != "failed" {
			s = "Lot en attente d'envoi"
		}
		if o.Fund != (sesam.Fund{}) {
			s += " : " + o.Fund.French()
		}
		return s
	}
	s := "Message non remis : "
	if r.action != "failed" {
		s = "Message en attente d'envoi : "
	}
	subj := strings.TrimSpace(r.msg.Subject)
	if subj == "" {
		subj = "(sans objet)"
	}
	if room := maxSubject - len([]rune(s)); len([]rune(subj)) > room {
		subj = strings.TrimSpace(string([]rune(subj)[:room-1])) + "…"
	}
	return s + subj
}

// outbound is what the notice can tell of the mail: a lot, its fund, its
// stamp and invoice count (sesam.InspectOutbound decides what a lot is).
func (r report) outbound() sesam.Outbound {
	return sesam.InspectOutbound(r.headers, r.msg.To)
}

// technician is the sentence that sends the practitioner to their
// technician, named when the contact setting is there.
func (r report) technician(lead string) string {
	c := strings.TrimSpace(r.contact)
	if c == "" {
		return lead + " votre technicien."
	}
	return lead + " votre technicien (" + c + ")."
}

func (r report) human() string {
	o := r.outbound()
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("Bonjour,\n\n")

	// What: "votre lot du 24/11/2026 à 10:15 (12 factures)", "votre message « Objet » pour 2 destinataires".
	var what, dest string
	if o.Lot {
		what = "votre lot"
		if o.SubjectOK {
			what += fmt.Sprintf(" du %s (%s)", sesam.FrenchDate(o.Subject.At), sesam.Plural(o.Subject.Invoices, "facture", "factures"))
		}
		dest = "à la caisse"
		if o.Fund != (sesam.Fund{}) {
			dest = toFund("à", o.Fund)
		}
	} else {
		what = "votre message"
		if s := strings.TrimSpace(r.msg.Subject); s != "" {
			what += " « " + s + " »"
		}
		if len(r.msg.To) > 1 {
			what += " pour " + sesam.Plural(len(r.msg.To), "destinataire", "destinataires")
		}
	}
	why := sesam.ExplainSMTPFailure(r.failure, o.Lot)

	switch {
	case r.action == "failed" && r.expired > 0:
		p("Pendant %s, le relais de votre cabinet a essayé en vain de transmettre %s%s : %s.\n\n", sesam.FrenchDuration(r.expired), what, prefixed(" ", dest), why)
	case r.action == "failed" && o.Lot:
		p("%s n'a pas pu être transmis %s : %s.\n\n", capital(what), dest, why)
	case r.action == "failed":
		p("%s n'a pas pu être remis : %s.\n\n", capital(what), why)
	default:
		p("%s n'est pas encore parti%s : %s. Le relais réessaie automatiquement jusqu'au %s ; passé ce délai, vous recevrez un avis de non-remise.\n\n", capital(what), prefixed(" ", forFund(o)), why, sesam.FrenchDate(r.retryTill))
	}

	later := r.technician("Si le problème dure, appelez")
	if r.failure.WontClear() {
		later = "Ce problème ne se réglera pas tout seul : " + strings.TrimSuffix(r.technician("appelez"), ".") + " aujourd'hui."
	}
	switch {
	case r.action == "failed" && o.Lot:
		p("Ce lot n'est pas parvenu à la caisse : une fois le problème réglé, renvoyez-le depuis votre logiciel de facturation. %s Si l'envoi reste impossible, prévenez votre caisse ; en dernier recours, utilisez des feuilles de soins papier.\n\n", r.technician("Pour régler le problème, appelez"))
	case r.action == "failed":
		p("Une fois le problème réglé, renvoyez-le. %s\n\n", r.technician("Si le problème dure, appelez"))
	case o.Lot:
		p("Ne renvoyez pas ce lot : il partira de lui-même dès que votre messagerie l'acceptera, et un second envoi serait refusé par la caisse comme doublon. %s\n\n", later)
	default:
		p("Ne renvoyez pas ce message : il partira de lui-même dès que votre messagerie l'acceptera. %s\n\n", later)
	}
	switch {
	case o.Lot && o.Test:
		p("C'est un lot de test : aucun délai ne court.\n\n")
	case o.Lot:
		p("Le délai de 3 jours ouvrés (8 en tiers payant) court toujours.\n\n")
	}

	// The facts, to find the mail in the billing software.
	fact := func(k, v string) { p("  %-16s %s\n", k+" :", v) }
	if o.Lot {
		if o.Fund != (sesam.Fund{}) {
			fact("Caisse", o.Fund.French())
		}
		if o.SubjectOK {
			fact("Lot", fmt.Sprintf("du %s, %s, émetteur %s", sesam.FrenchDate(o.Subject.At), sesam.Plural(o.Subject.Invoices, "facture", "factures"), o.Subject.Emitter))
		}
	} else {
		fact("Objet", r.msg.Subject)
		if len(r.msg.To) > 1 {
			fact("Destinataires", strings.Join(r.msg.To, ", "))
		} else {
			fact("Destinataire", strings.Join(r.msg.To, ", "))
		}
	}
	fact("Déposé le", sesam.FrenchDate(r.msg.Received))
	fact("Relais", fmt.Sprintf("sesam-relay sur %s, message n° %d", r.hostname, r.msg.ID))
	p("\nDétail technique : %s\n", oneLine(r.diagnosis))
	return b.String()
}

// toFund is "à la CPAM n° 422 (régime général)", "au RSI n° 751 (indépendants)".
func toFund(prep string, f sesam.Fund) string {
	name := f.French()
	switch {
	case strings.HasPrefix(name, "RSI") && prep == "à":
		return "au " + name
	case strings.HasPrefix(name, "RSI"):
		return prep + " le " + name
	}
	return prep + " la " + name
}

// forFund is "pour la CPAM n° 422 (régime général)", or "" when the mail
// is not a lot for a known fund.
func forFund(o sesam.Outbound) string {
	switch {
	case !o.Lot:
		return ""
	case o.Fund == (sesam.Fund{}):
		return "pour la caisse"
	}
	return toFund("pour", o.Fund)
}

func prefixed(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// capital starts a sentence: "votre lot" → "Votre lot".
func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
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
