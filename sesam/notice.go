package sesam

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// The notices the practitioner reads, in French (see FRENCH.md): a subject
// that says the point, one sentence of what happened, one of what to do,
// the deadline where it matters, "ne renvoyez pas" wherever a second
// sending would be a DOUBLON, the technician's contact, and last a
// "Détail technique" line where English may stay. They carry no patient
// data: a lot's date, fund and invoice count; invoice numbers and the
// fund's own labels.

// NoticeContext is what every notice needs beside its subject matter.
type NoticeContext struct {
	Hostname string
	Contact  string // the technician, e.g. "Martin Informatique, 04 00 00 00 00"
	Provider string // the provider's name as the practitioner knows it, e.g. "laposte.net"
	Now      time.Time
	// WorkingDays: the delays count working days only (say so).
	WorkingDays bool
}

// Text is a notice before it becomes a mail.
type Text struct {
	Subject string
	Body    string // paragraphs separated by blank lines, no trailing newline
	Detail  string // the "Détail technique" line; may be English
}

// deadline is said wherever a lot still has to reach the fund.
const deadline = "Le délai de 3 jours ouvrés (8 en tiers payant) court toujours."

func (c NoticeContext) technician() string {
	if c.Contact == "" {
		return "votre technicien"
	}
	return "votre technicien (" + c.Contact + ")"
}

func (c NoticeContext) provider() string {
	if c.Provider == "" {
		return "votre messagerie"
	}
	return c.Provider
}

// yourMail is "votre messagerie laposte.net", to start a sentence with.
func (c NoticeContext) yourMail() string {
	if c.Provider == "" {
		return "votre messagerie"
	}
	return "votre messagerie " + c.Provider
}

// lotName is "le lot de 12 factures du 24/11/2026 à 08:15 (CPAM n° 422,
// régime général)": one pair of brackets, so that it reads inside a
// sentence that has its own.
func lotName(l Lot) string {
	of := "de " + Plural(l.Invoices, "facture", "factures")
	if l.Invoices == 1 {
		of = "d'une facture"
	}
	fund, regime := l.Fund.frenchParts()
	if regime != "" {
		fund += ", " + regime
	}
	return fmt.Sprintf("le lot %s du %s (%s)", of, FrenchDate(l.At()), fund)
}

// LotNotice writes the notice a Due calls for.
func LotNotice(d Due, l Lot, st LotStatus, c NoticeContext) Text {
	lot := lotName(l)
	Lot := capital(lot)
	tech := c.technician()
	switch {
	case d.Kind == NoticeUndelivered:
		return Text{
			Subject: "Lot en attente d'envoi depuis " + c.delay(d.After),
			Body: fmt.Sprintf("%s, déposé le %s, n'a pas encore pu partir vers %s. Le relais réessaie tout seul.\n\n"+
				"Ne renvoyez pas ce lot depuis votre logiciel : il partira dès que %s l'acceptera, et un second envoi serait refusé comme doublon. Si cela dure, appelez %s. %s",
				Lot, FrenchDate(l.Submitted), c.provider(), c.provider(), tech, deadline),
			Detail: "mail " + fmt.Sprint(l.ID) + ", queue state " + string(l.Queue),
		}
	case d.Kind == NoticeHeld:
		return heldNotice(l, st, c)
	case d.Kind == NoticeDuplicate:
		return Text{
			Subject: "Lot envoyé deux fois : second envoi retenu",
			Body: fmt.Sprintf("Votre logiciel a envoyé une seconde fois %s, déjà transmis auparavant. Le relais a retenu ce second envoi : la caisse le refuserait comme doublon.\n\n"+
				"Vous n'avez rien à faire. Si vous pensez que le premier envoi n'est pas parvenu à la caisse, appelez %s avant de renvoyer quoi que ce soit.", lot, tech),
			Detail: st.Why,
		}
	case d.Kind == NoticeNoAck:
		body := fmt.Sprintf("%s est parti le %s, mais aucun accusé de réception (ARL) de la caisse n'est arrivé depuis %s.", Lot, FrenchDate(l.Delivered), c.delay(d.After))
		if st.State == LotProbablyAcked {
			body = fmt.Sprintf("%s est parti le %s. Un accusé de réception est arrivé depuis, mais rien ne dit qu'il concerne ce lot.", Lot, FrenchDate(l.Delivered))
		}
		return Text{
			Subject: "Pas d'accusé de réception depuis " + c.delay(d.After),
			Body: body + "\n\nVérifiez les retours dans votre logiciel de facturation. S'il n'y a rien, appelez votre caisse avant de renvoyer ce lot : un second envoi serait refusé comme doublon. " +
				"Votre responsabilité sur ce lot ne prend fin qu'avec un accusé de réception positif.",
			Detail: st.Why,
		}
	case d.Kind == NoticeRejected:
		motif := ""
		if d.Return != nil && d.Return.Facts.ARL != "" {
			motif = " Motif donné par la caisse : " + d.Return.Facts.ARL + "."
		}
		return Text{
			Subject: "Lot rejeté par la caisse : à réémettre",
			Body:    fmt.Sprintf("La caisse n'a pas pris en compte %s.%s\n\nRéémettez-le depuis votre logiciel de facturation. %s", lot, motif, deadline),
			Detail:  returnDetail(d.Return, st),
		}
	case d.Kind == NoticeToCheck:
		return toCheckNotice(d, l, st, c)
	case d.Kind == NoticeBounced:
		return Text{
			Subject: "Lot non transmis : refusé par votre messagerie",
			Body: fmt.Sprintf("%s refuse %s : il n'est pas parvenu à la caisse.\n\n"+
				"Une fois le problème réglé avec %s, renvoyez-le depuis votre logiciel de facturation. Si l'envoi reste impossible, prévenez votre caisse ; en dernier recours, utilisez des feuilles de soins papier. %s",
				capital(c.yourMail()), lot, tech, deadline),
			Detail: returnDetail(d.Return, st),
		}
	case strings.HasPrefix(string(d.Kind), string(NoticeInvoices)):
		return invoicesNotice(d, l, c)
	}
	return Text{Subject: "Lot à vérifier", Body: capital(lot) + " demande votre attention. Appelez " + tech + ".", Detail: string(d.Kind) + ": " + st.Why}
}

func heldNotice(l Lot, st LotStatus, c NoticeContext) Text {
	lot, tech := lotName(l), c.technician()
	switch {
	case strings.HasPrefix(l.HoldReason, ClearHoldPrefix):
		return Text{
			Subject: "Lot bloqué : feuilles de soins non chiffrées",
			Body: fmt.Sprintf("Le relais a bloqué %s : ses feuilles de soins ne sont pas chiffrées, elles partiraient lisibles par tous.\n\n"+
				"Il ne partira qu'après l'intervention de votre technicien : appelez %s aujourd'hui. Ne renvoyez pas ce lot. %s", lot, tech, deadline),
			Detail: l.HoldReason,
		}
	case strings.HasPrefix(l.HoldReason, UncertainHoldPrefix):
		return Text{
			Subject: "Lot retenu : envoi à vérifier",
			Body: fmt.Sprintf("L'envoi du %s a été interrompu, et le relais ne sait pas s'il est parvenu à votre messagerie. Il ne le renverra pas tout seul, pour ne pas créer de doublon.\n\n"+
				"Ne renvoyez pas ce lot : %s doit vérifier s'il est parti. %s", strings.TrimPrefix(lot, "le "), tech, deadline),
			Detail: l.HoldReason,
		}
	}
	return Text{
		Subject: "Lot retenu par le relais",
		Body:    fmt.Sprintf("Le relais retient %s : il ne partira qu'après l'intervention de votre technicien.\n\nNe renvoyez pas ce lot ; appelez %s. %s", lot, tech, deadline),
		Detail:  l.HoldReason,
	}
}

func toCheckNotice(d Due, l Lot, st LotStatus, c NoticeContext) Text {
	lot := lotName(l)
	what := fmt.Sprintf("Un accusé de réception (ARL) est arrivé pour %s, mais le relais ne peut pas dire s'il est positif ou négatif.", lot)
	switch {
	case len(st.LotRejects) > 0:
		what = fmt.Sprintf("Un retour NOEMIE signale un rejet pour %s, sans dire quelle facture est concernée. Motif donné par la caisse : %s.", lot, st.LotRejects[0].Label)
	case strings.Contains(st.Why, "positive and a negative"):
		what = fmt.Sprintf("La caisse a envoyé pour %s un accusé de réception positif et un négatif.", lot)
	case d.Return != nil && !d.Return.Certain:
		what = fmt.Sprintf("Un accusé de réception (ARL) est arrivé sans dire de quel lot il parle ; il concerne peut-être %s.", lot)
	}
	return Text{
		Subject: "Accusé de réception à vérifier",
		Body:    what + "\n\nOuvrez les retours dans votre logiciel de facturation pour vérifier. Tant que ce n'est pas fait, considérez que ce lot n'est pas acquitté, mais ne le renvoyez pas sans avoir vérifié : un second envoi serait refusé comme doublon.",
		Detail:  returnDetail(d.Return, st),
	}
}

func invoicesNotice(d Due, l Lot, c NoticeContext) Text {
	refused, dup, check := SortInvoices(d.Return.Facts.Invoices)
	lot := lotName(l)
	in := "dans " + lot
	if !d.Return.Certain {
		// The return was tied to the lot by its date: the invoice number
		// is certain, the lot only probable.
		in = "sans doute dans " + lot
	}
	var paras []string
	var subject string
	if len(refused) > 0 {
		subject = Plural(len(refused), "facture rejetée", "factures rejetées") + " : à refacturer"
		p := fmt.Sprintf("La caisse a rejeté %s %s, %s.", pluralWord(len(refused), "la facture", "les factures"), numbers(refused), in)
		if others := l.Invoices - len(refused); others > 0 {
			p += fmt.Sprintf(" %s ne %s pas %s : ne renvoyez pas le lot, corrigez et refacturez %s.",
				capital(pluralWord(others, "l'autre facture", fmt.Sprintf("les %d autres", others))), pluralWord(others, "est", "sont"), pluralWord(others, "concernée", "concernées"),
				pluralWord(len(refused), "cette facture", "ces factures"))
		} else {
			p += " Ne renvoyez pas le lot : corrigez et refacturez " + pluralWord(len(refused), "cette facture.", "ces factures.")
		}
		paras = append(paras, p)
	}
	if len(dup) > 0 {
		if subject == "" {
			subject = Plural(len(dup), "facture déjà reçue", "factures déjà reçues") + " par la caisse"
		}
		paras = append(paras, fmt.Sprintf("La caisse avait déjà reçu %s %s, %s : elle refuse ce second envoi comme doublon. Ne %s refacturez pas ; vérifiez dans votre logiciel que le premier envoi a bien été payé.",
			pluralWord(len(dup), "la facture", "les factures"), numbers(dup), in, pluralWord(len(dup), "la", "les")))
	}
	if len(check) > 0 {
		if subject == "" {
			subject = Plural(len(check), "facture signalée", "factures signalées") + " par la caisse"
		}
		paras = append(paras, fmt.Sprintf("%[3]s, la caisse signale quelque chose sur %[1]s %[2]s que le relais ne sait pas lire. Vérifiez-%[4]s dans votre logiciel avant de refacturer quoi que ce soit ; ne renvoyez pas le lot.",
			pluralWord(len(check), "la facture", "les factures"), numbers(check), capital(in), pluralWord(len(check), "la", "les")))
	}
	return Text{Subject: subject, Body: strings.Join(paras, "\n\n"), Detail: returnDetail(d.Return, LotStatus{})}
}

// numbers is "n° 417 (motif : ACTE NON REMBOURSABLE)" or a list of them.
func numbers(invs []InvoiceOutcome) string {
	var parts []string
	for _, inv := range invs {
		p := "n° " + strings.TrimLeft(inv.Number, "0")
		if inv.Label != "" {
			p += " (motif : " + inv.Label + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) > 1 {
		return strings.Join(parts[:len(parts)-1], ", ") + " et " + parts[len(parts)-1]
	}
	return strings.Join(parts, "")
}

func returnDetail(r *LotReturn, st LotStatus) string {
	var parts []string
	if r != nil {
		parts = append(parts, fmt.Sprintf("mail %d (%s, %s)", r.MailboxID, r.Class, r.How))
	}
	if st.Why != "" {
		parts = append(parts, st.Why)
	}
	return strings.Join(parts, "; ")
}

// OutageNotice tells that collection is blocked: what happened, that lots
// still leave, that the ARLs wait at the provider, and what to do.
func OutageNotice(col Collection, reason string, c NoticeContext) Text {
	since := FrenchDate(col.FailingSince)
	subject := "Relève des retours bloquée par " + c.provider()
	what := fmt.Sprintf("%s bloque la relève de vos messages depuis le %s.", capital(c.yourMail()), since)
	todo := "Changez votre mot de passe dans le webmail si on vous le demande, puis prévenez " + c.technician() + " : il donnera le nouveau mot de passe au relais."
	detail := reason + " — give the relay the new password (password_file, then `sesam-relay reload`); bring saved mail in with `sesam-relay import ACCOUNT FILE.eml`"
	if !col.Blocked {
		subject = "Relève des retours interrompue"
		what = fmt.Sprintf("Le relais n'arrive plus à relever vos messages chez %s depuis le %s.", c.provider(), since)
		todo = "Si votre webmail fonctionne, prévenez " + c.technician() + "."
		detail = reason + " — bring saved mail in with `sesam-relay import ACCOUNT FILE.eml`"
	}
	return Text{
		Subject: subject,
		Body: what + " Vos lots partent quand même, mais leurs accusés de réception (ARL) et retours NOEMIE restent dans votre webmail.\n\n" + todo +
			" Si vous enregistrez des accusés de réception depuis le webmail, votre technicien peut les importer dans le relais. Tant que la relève est bloquée, le relais ne vous signale pas les ARL manquants : ils sont dans le webmail.",
		Detail: detail,
	}
}

// RecoveredNotice tells that collection works again and what it brought.
func RecoveredNotice(since time.Time, arls, noemie, other int, c NoticeContext) Text {
	got := "Rien n'était en attente."
	if n := arls + noemie + other; n > 0 {
		var parts []string
		if arls > 0 {
			parts = append(parts, Plural(arls, "accusé de réception", "accusés de réception"))
		}
		if noemie > 0 {
			parts = append(parts, Plural(noemie, "retour NOEMIE", "retours NOEMIE"))
		}
		if other > 0 {
			parts = append(parts, Plural(other, "autre message", "autres messages"))
		}
		got = "Le relais a récupéré " + join(parts) + " arrivés depuis ; votre logiciel les recevra à sa prochaine relève."
	}
	return Text{
		Subject: "Relève des retours rétablie",
		Body:    fmt.Sprintf("Le relais relève de nouveau vos messages chez %s (coupure depuis le %s). %s\n\nVous n'avez rien à faire.", c.provider(), FrenchDate(since), got),
	}
}

// SummaryNotice is the day's summary.
func SummaryNotice(s Summary, c NoticeContext) Text {
	day := s.Day.In(paris()).Format("02/01")
	counts := fmt.Sprintf("%s, %s, %s, %s", Plural(s.Sent, "lot envoyé", "lots envoyés"), Plural(s.Acknowledged, "acquitté", "acquittés"),
		Plural(s.ToRebill, "facture à refacturer", "factures à refacturer"), Plural(s.Waiting+s.NotGone, "en attente", "en attente"))
	body := "Aujourd'hui : " + counts + "."
	if len(s.Attention) > 0 {
		var lines []string
		for _, a := range s.Attention {
			lines = append(lines, "- "+capital(lotName(a.Record))+" : "+StateFrench(a.Status.State))
		}
		body += "\n\nÀ regarder :\n" + strings.Join(lines, "\n")
	} else if s.Waiting+s.NotGone == 0 {
		body += "\n\nTout est en ordre : vous n'avez rien à faire."
	}
	return Text{Subject: fmt.Sprintf("Bilan du %s : %s, %s", day, Plural(s.Sent, "lot envoyé", "lots envoyés"), Plural(s.Acknowledged, "acquitté", "acquittés")), Body: body}
}

// StateFrench says a lot's state in the practitioner's words.
func StateFrench(s LotState) string {
	switch s {
	case LotQueued, LotSending:
		return "en cours d'envoi"
	case LotDeferred:
		return "en attente d'envoi"
	case LotHeld:
		return "retenu par le relais"
	case LotDuplicateHeld:
		return "second envoi retenu (doublon probable)"
	case LotDropped:
		return "annulé par le technicien"
	case LotBounced:
		return "refusé par votre messagerie"
	case LotDelivered:
		return "envoyé, en attente d'accusé de réception"
	case LotReturned:
		return "retours NOEMIE reçus, pas encore d'accusé de réception"
	case LotProbablyAcked:
		return "probablement acquitté (à confirmer)"
	case LotAcknowledged:
		return "acquitté"
	case LotToCheck:
		return "accusé de réception à vérifier"
	case LotRejected:
		return "rejeté par la caisse"
	}
	return string(s)
}

// Mail makes a notice into a mail for the practitioner's mailbox.
// notifyID, when set, is the Message-ID's local part: the relay
// recognises its own notice when it comes back from the provider.
func (t Text) Mail(c NoticeContext, to, notifyID string) []byte {
	body := t.Body + "\n"
	if t.Detail != "" {
		body += "\nDétail technique : " + t.Detail + "\n"
	}
	body += fmt.Sprintf("\n-- \nRelais SESAM du cabinet (%s)\n", c.Hostname)
	if notifyID == "" {
		id := make([]byte, 8)
		rand.Read(id)
		notifyID = hex.EncodeToString(id) + ".notice"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <MAILER-DAEMON@%s>\r\n", mime.QEncoding.Encode("utf-8", "Relais SESAM du cabinet"), c.Hostname)
	if to != "" {
		fmt.Fprintf(&b, "To: <%s>\r\n", to)
	}
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", t.Subject))
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%s@%s>\r\nAuto-Submitted: auto-generated\r\n", c.Now.Format(time.RFC1123Z), notifyID, c.Hostname)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qw := quotedprintable.NewWriter(&b)
	qw.Write(bytes.ReplaceAll([]byte(body), []byte("\n"), []byte("\r\n")))
	qw.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// delay writes a warning's delay: in working days when the relay counts
// them ("1 jour ouvré", "2 jours ouvrés"), else as FrenchDuration does.
func (c NoticeContext) delay(d time.Duration) string {
	if c.WorkingDays && d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return Plural(int(d/(24*time.Hour)), "jour ouvré", "jours ouvrés")
	}
	return FrenchDuration(d)
}

func pluralWord(n int, one, many string) string {
	if n <= 1 {
		return one
	}
	return many
}

func join(parts []string) string {
	if len(parts) > 1 {
		return strings.Join(parts[:len(parts)-1], ", ") + " et " + parts[len(parts)-1]
	}
	return strings.Join(parts, "")
}

func capital(s string) string {
	for i, r := range s {
		return strings.ToUpper(string(r)) + s[i+len(string(r)):]
	}
	return s
}
