package sesam_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// noticeCases are every notice the practitioner can receive, each in the
// shape that reaches them, for testdata/notices.
func noticeCases() map[string]sesam.Text {
	paris, _ := time.LoadLocation("Europe/Paris")
	now := time.Date(2026, 11, 24, 18, 0, 0, 0, paris)
	c := sesam.NoticeContext{Hostname: "relais.cabinet.test", Contact: "Martin Informatique, 04 00 00 00 00", Provider: "laposte.net", Now: now, WorkingDays: true}
	lot := sentLot(7, "2026112408150000042")
	lot.Submitted, lot.Delivered = now.Add(-34*time.Hour), now.Add(-34*time.Hour)
	with := func(q sesam.QueueState, hold string, rets ...sesam.LotReturn) sesam.Lot {
		l := lot
		l.Queue, l.HoldReason, l.Returns = q, hold, rets
		return l
	}
	arl := func(class sesam.Class, certain bool, text string) sesam.LotReturn {
		r := sesam.LotReturn{MailboxID: 12, Class: class, Certain: certain, How: "the return quotes the lot's stamp 2026112408150000042", Received: now}
		if !certain {
			r.How = "an ARL that quotes no lot stamp, tied to the oldest delivered lot with no ARL yet"
		}
		r.Facts.ARL = text
		return r
	}
	notice := func(l sesam.Lot, kind sesam.NoticeKind, after time.Duration) sesam.Text {
		st := l.Status()
		for _, d := range sesam.DueNotices(l, st, now.Add(after), sesam.WarnSettings{AckDelay: 48 * time.Hour, UndeliveredDelay: 24 * time.Hour}, sesam.Collection{Configured: true, LastSuccess: now.Add(after)}) {
			if strings.HasPrefix(string(d.Kind), string(kind)) {
				return sesam.LotNotice(d, l, st, c)
			}
		}
		panic("no " + string(kind) + " notice due for " + string(st.State))
	}
	invoices := func(outs ...sesam.InvoiceOutcome) sesam.Lot {
		r := sesam.LotReturn{MailboxID: 13, Class: sesam.NoemieReject, How: "NOEMIE lot 042 of 261124, same emitter and date as this lot", Received: now}
		r.Facts.Invoices = outs
		return with(sesam.QueueSent, "", arl(sesam.ARLPositive, true, "ARL POSITIF"), r)
	}
	refused := sesam.InvoiceOutcome{Number: "000000417", Kind: sesam.RejectRefused, Code: "R042", Label: "ACTE NON REMBOURSABLE"}
	refused2 := sesam.InvoiceOutcome{Number: "000000421", Kind: sesam.RejectRefused, Code: "R017", Label: "ASSURE INCONNU"}
	dup := sesam.InvoiceOutcome{Number: "000000418", Kind: sesam.RejectDuplicate, Code: "D01", Label: "FACTURE EN DOUBLON"}
	signal := sesam.InvoiceOutcome{Number: "000000419", Kind: sesam.RejectSignal, Code: "S10", Label: "SIGNALEMENT ORDONNANCE A FOURNIR"}
	lotReject := sesam.LotReturn{MailboxID: 14, Class: sesam.NoemieReject, How: "NOEMIE lot 042", Received: now,
		Facts: sesam.ReturnFacts{LotRejects: []sesam.Reject{{Entity: "294", Code: "L001", Label: "LOT INCOMPLET", Kind: sesam.RejectRefused}}}}
	blocked := sesam.Collection{Configured: true, FailingSince: now.Add(-3 * time.Hour), Blocked: true}
	failing := sesam.Collection{Configured: true, FailingSince: now.Add(-30 * time.Hour)}

	acked := with(sesam.QueueSent, "", arl(sesam.ARLPositive, true, "ARL POSITIF"))
	acked.Invoices = 3
	return map[string]sesam.Text{
		"undelivered":            notice(with(sesam.QueueDeferred, ""), sesam.NoticeUndelivered, 0),
		"held-clear":             notice(with(sesam.QueueHeld, "health data in clear: an IRIS/B2 part is not encrypted"), sesam.NoticeHeld, 0),
		"held-uncertain":         notice(with(sesam.QueueHeld, "uncertain: the connection broke after DATA"), sesam.NoticeHeld, 0),
		"held-by-hand":           notice(with(sesam.QueueHeld, "checking (by tech)"), sesam.NoticeHeld, 0),
		"held-duplicate":         notice(with(sesam.QueueHeld, sesam.DuplicateHoldPrefix+"probable second sending of lot 2026112408150000042 (first: mail 6, sent)"), sesam.NoticeDuplicate, 0),
		"no-ack":                 notice(with(sesam.QueueSent, ""), sesam.NoticeNoAck, 48*time.Hour),
		"no-ack-probable":        notice(with(sesam.QueueSent, "", arl(sesam.ARLPositive, false, "ARL POSITIF")), sesam.NoticeNoAck, 48*time.Hour),
		"rejected":               notice(with(sesam.QueueSent, "", arl(sesam.ARLNegative, true, "ARL NEGATIF : LOT 2026112408150000042 REJETE : SIGNATURE INVERIFIABLE")), sesam.NoticeRejected, 0),
		"to-check-unknown":       notice(with(sesam.QueueSent, "", arl(sesam.ARLUnknown, true, "")), sesam.NoticeToCheck, 0),
		"to-check-probable":      notice(with(sesam.QueueSent, "", arl(sesam.ARLNegative, false, "ARL NEGATIF")), sesam.NoticeToCheck, 0),
		"to-check-contradiction": notice(with(sesam.QueueSent, "", arl(sesam.ARLPositive, true, "ARL POSITIF"), arl(sesam.ARLNegative, true, "ARL NEGATIF")), sesam.NoticeToCheck, 0),
		"to-check-lot-reject":    notice(with(sesam.QueueSent, "", lotReject), sesam.NoticeToCheck, 0),
		"bounced":                notice(with(sesam.QueueSent, "", sesam.LotReturn{MailboxID: 15, Class: sesam.Bounce, Certain: true, How: "the report names the lot's Message-ID", Received: now}), sesam.NoticeBounced, 0),
		"invoice-rejected":       notice(invoices(refused), sesam.NoticeInvoices, 0),
		"invoices-rejected-two":  notice(invoices(refused, refused2), sesam.NoticeInvoices, 0),
		"invoice-duplicate":      notice(invoices(dup), sesam.NoticeInvoices, 0),
		"invoice-two-reasons":    notice(invoices(refused, sesam.InvoiceOutcome{Number: "000000417", Kind: sesam.RejectRefused, Code: "R051", Label: "PRESCRIPTION ABSENTE"}), sesam.NoticeInvoices, 0),
		"invoice-already-paid":   notice(invoices(sesam.InvoiceOutcome{Number: "000000417", Kind: sesam.RejectKindOf("294", "FACTURE DEJA PAYEE"), Code: "R099", Label: "FACTURE DEJA PAYEE"}), sesam.NoticeInvoices, 0),
		"invoice-signal":         notice(invoices(signal), sesam.NoticeInvoices, 0),
		"invoices-mixed":         notice(invoices(refused, dup, signal), sesam.NoticeInvoices, 0),
		"outage-blocked":         sesam.OutageNotice(blocked, "NO [UNAVAILABLE] IMAP access is closed", c),
		"outage-failing":         sesam.OutageNotice(failing, "dial tcp: i/o timeout", c),
		"recovered":              sesam.RecoveredNotice(now.Add(-3*24*time.Hour), 4, 2, 1, c),
		"recovered-nothing":      sesam.RecoveredNotice(now.Add(-3*time.Hour), 0, 0, 0, c),
		"summary":                sesam.SummaryNotice(sesam.Summarize([]sesam.Lot{acked, invoices(refused), with(sesam.QueueSent, "", arl(sesam.ARLUnknown, true, ""))}, now), c),
		"summary-all-good":       sesam.SummaryNotice(sesam.Summarize([]sesam.Lot{acked}, now), c),
	}
}

// English words that must not reach the practitioner (the "Détail
// technique" line may keep the provider's own words).
var english = regexp.MustCompile(`(?i)\b(the|lot is|is|was|error|failed|retry|sent|queue|held|mail \d|delivered|provider|login|password)\b`)

// The notices' French is kept in testdata/notices so that a reviewer
// reads it without running anything; -update writes it again.
func TestNoticesInFrench(t *testing.T) {
	dir := "../testdata/notices"
	for name, n := range noticeCases() {
		got := "Objet : " + n.Subject + "\n\n" + n.Body + "\n"
		if n.Detail != "" {
			got += "\nDétail technique : " + n.Detail + "\n"
		}
		path := filepath.Join(dir, name+".txt")
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if want, err := os.ReadFile(path); err != nil || string(want) != got {
			t.Errorf("%s differs or is missing (go test ./sesam -run TestNoticesInFrench -update to accept):\n%s", path, got)
		}
		if m := english.FindString(n.Subject + "\n" + n.Body); m != "" {
			t.Errorf("%s: English %q in what the practitioner reads:\n%s", name, m, n.Body)
		}
		if strings.Contains(n.Body, "(s)") || strings.Contains(n.Body, "  ") {
			t.Errorf("%s: a lazy plural or a double space:\n%s", name, n.Body)
		}
		// Wherever sending the lot again would make a DOUBLON, say not to.
		resend := strings.HasPrefix(name, "undelivered") || strings.HasPrefix(name, "held") || strings.HasPrefix(name, "no-ack") ||
			strings.HasPrefix(name, "to-check") || strings.HasPrefix(name, "invoice")
		if resend && !regexp.MustCompile(`(?i)ne (le |les |la )?renvoyez pas|ne .*refacturez pas|avant de renvoyer`).MatchString(n.Body) {
			t.Errorf("%s: does not say not to send the lot again:\n%s", name, n.Body)
		}
		if (strings.HasPrefix(name, "undelivered") || strings.HasPrefix(name, "held-clear") || name == "rejected" || name == "bounced") && !strings.Contains(n.Body, "3 jours ouvrés") {
			t.Errorf("%s: the deadline is not said:\n%s", name, n.Body)
		}
	}
}
