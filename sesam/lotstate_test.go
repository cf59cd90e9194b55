package sesam_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC) // a Friday

func sentLot(id int64, stamp string, rets ...sesam.LotReturn) sesam.Lot {
	return sesam.Lot{ID: id, Account: "dupont", Fund: sesam.Fund{Regime: "01", Caisse: "422"}, Emitter: "12345678901234", Stamp: stamp, Invoices: 12,
		Submitted: t0, Delivered: t0.Add(time.Minute), Queue: sesam.QueueSent, Returns: rets}
}

func ret(class sesam.Class, certain bool) sesam.LotReturn {
	return sesam.LotReturn{MailboxID: 1, Class: class, Certain: certain, How: "test", Received: t0.Add(time.Hour)}
}

func TestLotStateFailsClosed(t *testing.T) {
	cases := []struct {
		name string
		rets []sesam.LotReturn
		want sesam.LotState
	}{
		{"nothing back", nil, sesam.LotDelivered},
		{"certain positive", []sesam.LotReturn{ret(sesam.ARLPositive, true)}, sesam.LotAcknowledged},
		{"probable positive alone", []sesam.LotReturn{ret(sesam.ARLPositive, false)}, sesam.LotProbablyAcked},
		{"unknown polarity", []sesam.LotReturn{ret(sesam.ARLUnknown, true)}, sesam.LotToCheck},
		{"probable unknown", []sesam.LotReturn{ret(sesam.ARLUnknown, false)}, sesam.LotToCheck},
		{"certain negative", []sesam.LotReturn{ret(sesam.ARLNegative, true)}, sesam.LotRejected},
		{"probable negative", []sesam.LotReturn{ret(sesam.ARLNegative, false)}, sesam.LotToCheck},
		{"positive and negative", []sesam.LotReturn{ret(sesam.ARLPositive, true), ret(sesam.ARLNegative, true)}, sesam.LotToCheck},
		{"positive and unknown", []sesam.LotReturn{ret(sesam.ARLPositive, true), ret(sesam.ARLUnknown, true)}, sesam.LotToCheck},
		{"certain positive, probable negative", []sesam.LotReturn{ret(sesam.ARLPositive, true), ret(sesam.ARLNegative, false)}, sesam.LotAcknowledged},
		{"NOEMIE only", []sesam.LotReturn{ret(sesam.NoemiePayment, false)}, sesam.LotReturned},
		{"bounce", []sesam.LotReturn{ret(sesam.Bounce, true)}, sesam.LotBounced},
		{"bounce and ARL", []sesam.LotReturn{ret(sesam.ARLPositive, true), ret(sesam.Bounce, true)}, sesam.LotToCheck},
	}
	for _, c := range cases {
		st := sentLot(1, "2026112010000000001", c.rets...).Status()
		if st.State != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, st.State, st.Why, c.want)
		}
		if st.State.Safe() != (c.want == sesam.LotAcknowledged) {
			t.Errorf("%s: Safe() %v", c.name, st.State.Safe())
		}
	}
}

// A NOEMIE 294 rejecting invoice 417 of a 12-invoice lot leaves the lot
// acknowledged, with one invoice to bill again; a 290 DOUBLON is a
// duplicate (not to bill again), not a warning.
func TestInvoiceRejectsStayAtInvoiceLevel(t *testing.T) {
	noemie := ret(sesam.NoemieReject, false)
	noemie.MailboxID = 2
	noemie.Facts.Invoices = []sesam.InvoiceOutcome{
		{Number: "000000417", Kind: sesam.RejectRefused, Code: "R001", Label: "ACTE NON REMBOURSABLE"},
		{Number: "000000418", Kind: sesam.RejectDuplicate, Code: "D01", Label: "FACTURE EN DOUBLON"},
	}
	l := sentLot(1, "2026112010000000001", ret(sesam.ARLPositive, true), noemie)
	st := l.Status()
	if st.State != sesam.LotAcknowledged || len(st.RejectedInvoices) != 1 || st.RejectedInvoices[0].Number != "000000417" || len(st.DuplicateInvoices) != 1 {
		t.Fatalf("%+v", st)
	}
	due := sesam.DueNotices(l, st, t0.Add(2*time.Hour), sesam.WarnSettings{AckDelay: 48 * time.Hour}, sesam.Collection{Configured: true, LastSuccess: t0.Add(2 * time.Hour)})
	if len(due) != 1 || due[0].Kind != "invoices:2" {
		t.Fatalf("due %+v", due)
	}
	txt := sesam.LotNotice(due[0], l, st, sesam.NoticeContext{Hostname: "relais", Contact: "Martin Informatique, 04 00 00 00 00", Now: t0})
	for _, want := range []string{"n° 417 (motif : ACTE NON REMBOURSABLE)", "Les 11 autres ne sont pas concernées", "ne renvoyez pas le lot", "n° 418", "Ne la refacturez pas"} {
		if !strings.Contains(txt.Body, want) {
			t.Errorf("notice lacks %q:\n%s", want, txt.Body)
		}
	}
	if txt.Subject != "1 facture rejetée : à refacturer" {
		t.Errorf("subject %q", txt.Subject)
	}
}

func TestALotRejectTiedToNoInvoiceAsksForALook(t *testing.T) {
	noemie := ret(sesam.NoemieReject, false)
	noemie.Facts.LotRejects = []sesam.Reject{{Entity: "294", Code: "R999", Label: "LOT NON CONFORME"}}
	if st := sentLot(1, "2026112010000000001", ret(sesam.ARLPositive, true), noemie).Status(); st.State != sesam.LotToCheck {
		t.Fatalf("%+v", st)
	}
}

func TestHeldLotsSayWhy(t *testing.T) {
	l := sentLot(1, "2026112010000000001")
	l.Queue, l.Delivered = sesam.QueueHeld, time.Time{}
	l.HoldReason = sesam.DuplicateHoldPrefix + "probable second sending"
	if st := l.Status(); st.State != sesam.LotDuplicateHeld {
		t.Fatalf("%+v", st)
	}
	l.HoldReason = "health data in clear: no S/MIME part"
	st := l.Status()
	if st.State != sesam.LotHeld {
		t.Fatalf("%+v", st)
	}
	due := sesam.DueNotices(l, st, t0, sesam.WarnSettings{}, sesam.Collection{})
	if len(due) != 1 || due[0].Kind != sesam.NoticeHeld {
		t.Fatalf("%+v", due)
	}
	txt := sesam.LotNotice(due[0], l, st, sesam.NoticeContext{})
	if !strings.Contains(txt.Body, "ne sont pas chiffrées") || !strings.Contains(txt.Body, "Ne renvoyez pas ce lot") || strings.Contains(txt.Body, "dès que possible") {
		t.Fatalf("%s", txt.Body)
	}
}

// weekdays counts Monday to Friday only: a stand-in for the French calendar.
type weekdays struct{}

func (weekdays) AddWorking(from time.Time, d time.Duration) time.Time {
	t := from
	for d > 0 {
		next := time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, t.Location())
		if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
			t = next
			continue
		}
		if step := next.Sub(t); step < d {
			d -= step
			t = next
			continue
		}
		return t.Add(d)
	}
	return t
}

// A Friday lot is not "missing its ARL" on Sunday; and while collection
// fails, no lot is: the ARLs wait at the provider.
func TestNoAckCountsWorkingTimeAndWaitsForAWorkingCollection(t *testing.T) {
	l := sentLot(1, "2026112010000000001")
	set := sesam.WarnSettings{AckDelay: 48 * time.Hour, UndeliveredDelay: 24 * time.Hour, Clock: weekdays{}}
	sunday, tuesday := t0.Add(50*time.Hour), t0.Add(4*24*time.Hour+time.Hour)
	ok := sesam.Collection{Configured: true}
	for _, c := range []struct {
		name string
		now  time.Time
		col  sesam.Collection
		want int
	}{
		{"Sunday", sunday, sesam.Collection{Configured: true, LastSuccess: sunday}, 0},
		{"Tuesday after a poll", tuesday, sesam.Collection{Configured: true, LastSuccess: tuesday}, 1},
		{"Tuesday, last poll before the delay ran out", tuesday, sesam.Collection{Configured: true, LastSuccess: t0.Add(3 * 24 * time.Hour)}, 0},
		{"Tuesday, collection failing", tuesday, sesam.Collection{Configured: true, LastSuccess: tuesday, FailingSince: t0}, 0},
		{"no collection at all", tuesday, ok, 0},
	} {
		if got := sesam.DueNotices(l, l.Status(), c.now, set, c.col); len(got) != c.want {
			t.Errorf("%s: %d notices due %+v, want %d", c.name, len(got), got, c.want)
		}
	}
}

func TestOutageIsToldOnceAndItsEndToo(t *testing.T) {
	set := sesam.WarnSettings{UndeliveredDelay: 24 * time.Hour}
	col := sesam.Collection{Configured: true, FailingSince: t0, Blocked: true}
	key, due := sesam.OutageDue(col, t0.Add(time.Minute), set)
	if !due || sesam.OutageStart(key).UnixMilli() != t0.UnixMilli() {
		t.Fatalf("blocked: %q %v", key, due)
	}
	// A closed access (not a refused password) is told once it lasts.
	closed := sesam.Collection{Configured: true, FailingSince: t0, Blocked: true, Closed: true}
	if _, due := sesam.OutageDue(closed, t0.Add(time.Minute), set); due {
		t.Fatal("a closure of one minute is told")
	}
	if _, due := sesam.OutageDue(closed, t0.Add(sesam.ClosedGrace), set); !due {
		t.Fatal("a closure of ten minutes is not told")
	}
	if _, due := sesam.OutageDue(sesam.Collection{Configured: true, FailingSince: t0}, t0.Add(time.Hour), set); due {
		t.Fatal("a temporary failure of one hour is told")
	}
	if _, due := sesam.OutageDue(sesam.Collection{Configured: true, FailingSince: t0}, t0.Add(25*time.Hour), set); !due {
		t.Fatal("a temporary failure of a day is not told")
	}
	if r := sesam.RecoveredKey(key); !strings.HasPrefix(string(r), "recovered:") || strings.TrimPrefix(string(r), "recovered") != strings.TrimPrefix(string(key), "outage") {
		t.Fatalf("recovered key %q for %q", r, key)
	}
	txt := sesam.OutageNotice(col, "imap.laposte.net: [UNAVAILABLE] access closed", sesam.NoticeContext{Provider: "laposte.net", Contact: "Martin Informatique, 04 00 00 00 00"})
	for _, want := range []string{"Votre messagerie laposte.net bloque la relève", "Vos lots partent quand même", "webmail", "mot de passe", "Martin Informatique"} {
		if !strings.Contains(txt.Body, want) {
			t.Errorf("outage notice lacks %q:\n%s", want, txt.Body)
		}
	}
}
