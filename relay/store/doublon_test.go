package store_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

var lotDay = time.Date(2026, 11, 23, 9, 0, 0, 0, time.Local)

func aLot(emitter string) sesam.SampleLot {
	return sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: emitter, Invoices: 3, At: lotDay, Seq: 1}
}

// submitLot submits one sending of lot: each call is a new mail (new
// Message-ID, new bytes), as the billing software's "retransmettre" makes.
func submitLot(t *testing.T, s *store.Store, account string, lot sesam.SampleLot) (store.Accepted, []byte) {
	t.Helper()
	body := lot.Mail()
	e := submission(account, sesam.ReadHeaders(body).MessageID, body)
	e.From, e.To, e.Subject = lot.From, []string{lot.Fund}, lot.Subject()
	a, err := s.Submit(ctx, e, body)
	if err != nil {
		t.Fatal(err)
	}
	return a, body
}

func stampOf(lot sesam.SampleLot) string { return strings.Split(lot.Subject(), "/")[2] }

func deliver(t *testing.T, s *store.Store, id int64) {
	t.Helper()
	if err := s.MarkSending(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSentAsync(id, "250 ok").Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func mustBeHeldAsDuplicateOf(t *testing.T, s *store.Store, a store.Accepted, first int64, firstState string, lot sesam.SampleLot) {
	t.Helper()
	m, _, err := s.Get(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.DuplicateOf != first || a.Resubmission || m.State != store.Held || !m.Duplicate() {
		t.Fatalf("second sending: %+v, state %s, reason %q (first %d)", a, m.State, m.HoldReason, first)
	}
	want := "duplicate: probable second sending of this lot (first: mail " + itoa(first) + ", " + firstState + ") — the fund would refuse it as DOUBLON; release it only if the first did not reach the fund"
	if m.HoldReason != want {
		t.Fatalf("hold reason\n got %q\nwant %q", m.HoldReason, want)
	}
	if h := history(t, s, a.ID); !strings.Contains(h, "held at acceptance: "+want) {
		t.Fatalf("the second mail's history does not name the first:\n%s", h)
	}
	if h := history(t, s, first); !strings.Contains(h, "sent again by the client as mail "+itoa(a.ID)) {
		t.Fatalf("the first mail's history does not name the second:\n%s", h)
	}
}

func mustGoOut(t *testing.T, s *store.Store, a store.Accepted) {
	t.Helper()
	m, _, _ := s.Get(a.ID)
	if a.DuplicateOf != 0 || m.State != store.Queued || m.HoldReason != "" {
		t.Fatalf("a sending that is not a duplicate was held: %+v, state %s, reason %q", a, m.State, m.HoldReason)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestASecondSendingOfALotUnderANewMessageIDIsHeldNamingTheFirst(t *testing.T) {
	for _, c := range []struct {
		state string
		make  func(t *testing.T, s *store.Store, id int64, lot sesam.SampleLot)
	}{
		{"queued", func(*testing.T, *store.Store, int64, sesam.SampleLot) {}},
		{"deferred", func(t *testing.T, s *store.Store, id int64, _ sesam.SampleLot) {
			s.MarkDeferred(ctx, id, "451 try later", time.Now().Add(time.Hour))
		}},
		{"held", func(t *testing.T, s *store.Store, id int64, _ sesam.SampleLot) { s.Hold(ctx, id, "checking", "tech") }},
		{"sent", func(t *testing.T, s *store.Store, id int64, _ sesam.SampleLot) { deliver(t, s, id) }},
		{"acknowledged", func(t *testing.T, s *store.Store, id int64, lot sesam.SampleLot) {
			deliver(t, s, id)
			added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, positiveARL(stampOf(lot)), nil))
		}},
	} {
		t.Run(c.state, func(t *testing.T) {
			s := open(t, t.TempDir())
			defer s.Close()
			lot := aLot("12345678901234")
			first, _ := submitLot(t, s, "dupont", lot)
			c.make(t, s, first.ID, lot)
			second, _ := submitLot(t, s, "dupont", lot)
			mustBeHeldAsDuplicateOf(t, s, second, first.ID, c.state, lot)
			// A third sending names the first, not the second (held by this rule).
			third, _ := submitLot(t, s, "dupont", lot)
			mustBeHeldAsDuplicateOf(t, s, third, first.ID, c.state, lot)
		})
	}
}

func TestTheSameStampFromAnotherEmitterOrAccountIsNotADuplicate(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	first, _ := submitLot(t, s, "dupont", aLot("12345678901234"))
	deliver(t, s, first.ID)
	a, _ := submitLot(t, s, "dupont", aLot("99999999999999"))
	mustGoOut(t, s, a)
	b, _ := submitLot(t, s, "martin", aLot("12345678901234"))
	mustGoOut(t, s, b)
	other := aLot("12345678901234")
	other.Seq = 2 // another stamp
	c, _ := submitLot(t, s, "dupont", other)
	mustGoOut(t, s, c)
}

func TestASecondSendingGoesOutAfterTheFirstWasRejectedBouncedOrDropped(t *testing.T) {
	for name, undo := range map[string]func(t *testing.T, s *store.Store, id int64, lot sesam.SampleLot){
		"negative ARL": func(t *testing.T, s *store.Store, id int64, lot sesam.SampleLot) {
			deliver(t, s, id)
			added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, []byte("Subject: ARL negatif "+stampOf(lot)+"\r\n\r\nrejet\r\n"), nil))
			if _, st := lotByID(t, s, id); st.State != sesam.LotRejected {
				t.Fatalf("the negative ARL was not matched: %+v", st)
			}
		},
		"bounced in the queue": func(t *testing.T, s *store.Store, id int64, _ sesam.SampleLot) {
			if err := s.MarkBounced(ctx, id, "550 refused", []byte("Subject: DSN\r\n\r\nx\r\n")); err != nil {
				t.Fatal(err)
			}
		},
		"bounce report from the provider": func(t *testing.T, s *store.Store, id int64, _ sesam.SampleLot) {
			deliver(t, s, id)
			m, _, _ := s.Get(id)
			dsn := "From: MAILER-DAEMON@laposte.net\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nx\r\n" +
				"--q\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + m.MessageID + "\r\n--q--\r\n"
			added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 9}, []byte(dsn), nil))
			if l, _ := lotByID(t, s, id); len(l.Returns) != 1 || l.Returns[0].Class != "bounce" {
				t.Fatalf("the bounce was not matched: %+v", l)
			}
		},
		"dropped": func(t *testing.T, s *store.Store, id int64, _ sesam.SampleLot) {
			if err := s.Drop(ctx, id, "tech"); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t, t.TempDir())
			defer s.Close()
			lot := aLot("12345678901234")
			first, _ := submitLot(t, s, "dupont", lot)
			undo(t, s, first.ID, lot)
			second, _ := submitLot(t, s, "dupont", lot)
			mustGoOut(t, s, second)
		})
	}
}

// A technician's release of a held duplicate asks for confirmation only
// while the first sending still counts.
func TestAHeldDuplicateIsNoLongerOneOnceTheFirstIsDropped(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	lot := aLot("12345678901234")
	first, _ := submitLot(t, s, "dupont", lot)
	second, _ := submitLot(t, s, "dupont", lot)
	if other, still, err := s.StillDuplicate(second.ID); err != nil || !still || other != first.ID {
		t.Fatalf("while the first is queued: %d %v %v", other, still, err)
	}
	s.Drop(ctx, first.ID, "tech")
	if _, still, err := s.StillDuplicate(second.ID); err != nil || still {
		t.Fatalf("after the first was dropped: %v %v", still, err)
	}
	// Released, it is the sending that counts: a later one is held behind it.
	if err := s.Release(ctx, second.ID, "tech"); err != nil {
		t.Fatal(err)
	}
	third, _ := submitLot(t, s, "dupont", lot)
	mustBeHeldAsDuplicateOf(t, s, third, second.ID, "queued", lot)
}

// The resubmission check is unchanged: the same Message-ID and bytes of a
// lot are answered 250 and not queued again, and not taken for a duplicate.
func TestAResubmittedLotIsStillNotQueuedAgain(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	lot := aLot("12345678901234")
	first, body := submitLot(t, s, "dupont", lot)
	e := submission("dupont", sesam.ReadHeaders(body).MessageID, body)
	e.From, e.To = lot.From, []string{lot.Fund}
	again, err := s.Submit(ctx, e, body)
	if err != nil || !again.Resubmission || again.ID != first.ID || again.DuplicateOf != 0 {
		t.Fatalf("%+v %v (first %d)", again, err, first.ID)
	}
	if ms, _ := s.List(store.Filter{}); len(ms) != 1 || ms[0].State != store.Queued {
		t.Fatalf("queue after a resubmission: %+v", ms)
	}
}

// Held for health data in clear and a duplicate: one hold, the duplicate's
// reason first (it is the one that asks for --confirm), the other kept.
func TestADuplicateHeldForAnotherReasonKeepsBothReasons(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	lot := aLot("12345678901234")
	first, _ := submitLot(t, s, "dupont", lot)
	body := lot.Mail()
	e := submission("dupont", sesam.ReadHeaders(body).MessageID, body)
	e.To, e.HoldReason = []string{lot.Fund}, "health data in clear: test"
	a, err := s.Submit(ctx, e, body)
	if err != nil {
		t.Fatal(err)
	}
	m, _, _ := s.Get(a.ID)
	if a.DuplicateOf != first.ID || !m.Duplicate() || !strings.HasSuffix(m.HoldReason, "health data in clear: test") {
		t.Fatalf("%+v %q", a, m.HoldReason)
	}
}

func TestAStoreFromSchemaVersion3GuardsItsLots(t *testing.T) {
	dir := t.TempDir()
	lot := aLot("12345678901234")
	old, err := store.CreateV3(dir, "dupont", lot.Emitter, stampOf(lot))
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	defer s.Close()
	plan, err := store.DoublonPlan(s)
	if err != nil || !strings.Contains(plan, "lots_doublon") {
		t.Fatalf("the lookup does not use its index: %v\n%s", err, plan)
	}
	a, _ := submitLot(t, s, "dupont", lot)
	mustBeHeldAsDuplicateOf(t, s, a, old, "sent", lot)
}

// A sending held by this rule never left: once the first is dropped, the
// next sending goes out rather than waiting behind one nobody released.
func TestASendingHeldAsDuplicateDoesNotHoldTheNextOne(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	lot := aLot("12345678901234")
	first, _ := submitLot(t, s, "dupont", lot)
	second, _ := submitLot(t, s, "dupont", lot)
	mustBeHeldAsDuplicateOf(t, s, second, first.ID, "queued", lot)
	if err := s.Drop(ctx, first.ID, "tech"); err != nil {
		t.Fatal(err)
	}
	third, _ := submitLot(t, s, "dupont", lot)
	mustGoOut(t, s, third)
}
