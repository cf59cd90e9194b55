package sesam

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"time"
)

// LotFacts is what a warning about a lot says of it.
type LotFacts struct {
	Fund, Emitter string
	Invoices      int
	LotAt         time.Time // the Subject's stamp
	Submitted     time.Time
	Delivered     time.Time
}

// Warning kinds.
const (
	WarnUndelivered = "undelivered"
	WarnNoAck       = "no-ack"
	WarnRejected    = "rejected"
	WarnBounced     = "bounced"
)

// WarningNotice builds the short notice, in French, that lands in the
// practitioner's mailbox about a lot that needs attention. It carries no
// patient data: the lot's stamp, fund and invoice count, and the reason.
func WarningNotice(kind string, l LotFacts, reason string, after time.Duration, hostname string, now time.Time) []byte {
	date := FrenchDate
	lot := fmt.Sprintf("le lot du %s (caisse %s, émetteur %s, %d facture(s))", date(l.LotAt), l.Fund, l.Emitter, l.Invoices)
	var subject, body string
	switch kind {
	case WarnUndelivered:
		subject = fmt.Sprintf("Lot pas encore transmis depuis %s", hours(after))
		body = fmt.Sprintf("Bonjour,\n\n%s, déposé le %s, n'a pas encore pu être transmis à votre fournisseur de messagerie. Le relais continue d'essayer.\n\nLes FSE doivent parvenir à la caisse sous 3 jours ouvrés (8 en tiers payant) : si le problème dure, appelez votre technicien. Ne renvoyez pas le lot vous-même : il partira dès que possible.\n", capital(lot), date(l.Submitted))
	case WarnNoAck:
		subject = fmt.Sprintf("Pas d'accusé de réception (ARL) après %s", hours(after))
		body = fmt.Sprintf("Bonjour,\n\n%s a été transmis le %s, mais aucun accusé de réception logique (ARL) de la caisse n'est arrivé depuis.\n\nVotre responsabilité sur ce lot ne prend fin qu'à réception d'un ARL positif. Vérifiez les retours dans votre logiciel de facturation ; s'il n'y a rien, contactez la caisse avant de renvoyer le lot (un second envoi serait refusé comme doublon).\n", capital(lot), date(l.Delivered))
	case WarnRejected:
		subject = "Lot rejeté par la caisse"
		body = fmt.Sprintf("Bonjour,\n\n%s a été rejeté par la caisse.\n\n  Motif : %s\n\nUn accusé de réception négatif signifie que le lot doit être renvoyé après correction depuis votre logiciel de facturation.\n", capital(lot), reason)
	default:
		subject = "Lot non remis"
		body = fmt.Sprintf("Bonjour,\n\n%s n'a pas pu être remis.\n\n  Motif : %s\n\nIl n'est pas parvenu à la caisse : renvoyez-le depuis votre logiciel de facturation une fois le problème réglé, ou appelez votre technicien.\n", capital(lot), reason)
	}
	body += fmt.Sprintf("\n-- \nsesam-relay, relais de messagerie du cabinet (%s)\n", hostname)
	id := make([]byte, 8)
	rand.Read(id)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <MAILER-DAEMON@%s>\r\n", mime.QEncoding.Encode("utf-8", "Relais SESAM du cabinet"), hostname)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", "[sesam-relay] "+subject))
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%s.warning@%s>\r\nAuto-Submitted: auto-generated\r\n", now.Format(time.RFC1123Z), hex.EncodeToString(id), hostname)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qw := quotedprintable.NewWriter(&b)
	qw.Write(bytes.ReplaceAll([]byte(body), []byte("\n"), []byte("\r\n")))
	qw.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

func hours(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d jour(s)", int(d/(24*time.Hour)))
	}
	if d >= time.Hour {
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return d.Round(time.Second).String()
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return "L" + s[1:]
}
