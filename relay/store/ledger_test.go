package store_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

const emitter = "12345678901234"

func sendLot(t *testing.T, s *store.Store, at time.Time, seq int) (int64, sesam.SampleLot) {
	lot := sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: emitter, Invoices: seq, At: at, Seq: seq}
	body := lot.Mail()
	id, err := enqueue(s, store.Envelope{Account: "dupont", From: lot.From, To: []string{lot.Fund}, MessageID: sesam.ReadHeaders(body).MessageID}, body)
	if err != nil {
		t.Fatal(err)
	}
	s.MarkSending(ctx, id)
	s.MarkSentAsync(id, "250 ok").Wait(ctx)
	return id, lot
}

// positiveARL is an ARL whose Subject and payload say positive; stamp ""
// quotes no lot.
func positiveARL(stamp string) []byte {
	return sesam.ARLMail{Subject: "ARL positif " + stamp, Stamp: stamp, Outcome: sesam.ARLPositiveText(stamp)}.Mail()
}

func lotByID(t *testing.T, s *store.Store, id int64) (sesam.Lot, sesam.LotStatus) {
	t.Helper()
	lots, err := s.Lots("dupont", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lots {
		if l.ID == id {
			return l, l.Status()
		}
	}
	t.Fatalf("lot %d not in the ledger", id)
	return sesam.Lot{}, sesam.LotStatus{}
}

var uid uint32

func fetchOne(t *testing.T, s *store.Store, body []byte) {
	t.Helper()
	uid++
	if a := added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: uid}, body, nil)); a.Err != nil {
		t.Fatal(a.Err)
	}
}

func TestReturnsAreMatchedToTheirLots(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	day1 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.Local)
	day2 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.Local)
	a, lotA := sendLot(t, s, day1, 1)
	b, _ := sendLot(t, s, day2, 2)
	c, lotC := sendLot(t, s, day2.Add(time.Hour), 3)
	if l, st := lotByID(t, s, a); st.State != sesam.LotDelivered || l.Fund.String() != "01422" || l.Invoices != 1 || l.Emitter != emitter {
		t.Fatalf("lot A: %+v %+v", l, st)
	}
	// An ARL quoting lot C's stamp: certain, whatever the order.
	fetchOne(t, s, positiveARL(stampOf(lotC)))
	if l, st := lotByID(t, s, c); st.State != sesam.LotAcknowledged || len(l.Returns) != 1 || !l.Returns[0].Certain {
		t.Fatalf("lot C: %+v %+v", l, st)
	}
	// A positive ARL with nothing to go on: the oldest lot waiting, but only
	// probably: a guess never makes a lot safe.
	fetchOne(t, s, positiveARL(""))
	l, st := lotByID(t, s, a)
	if st.State != sesam.LotProbablyAcked || st.State.Safe() || l.Returns[0].Certain || !strings.Contains(l.Returns[0].How, "oldest") {
		t.Fatalf("lot A: %+v %+v", l, st)
	}
	// Lot A's own ARL, arriving after the guess: certain, and lot A's —
	// not a guess for lot B.
	fetchOne(t, s, positiveARL(stampOf(lotA)))
	if _, st := lotByID(t, s, a); st.State != sesam.LotAcknowledged {
		t.Fatalf("lot A after its own ARL: %+v", st)
	}
	if l, st := lotByID(t, s, b); st.State != sesam.LotDelivered || len(l.Returns) != 0 {
		t.Fatalf("lot B took an ARL that quotes lot A: %+v %+v", l, st)
	}
	// A NOEMIE refusing one invoice of a lot dated day 2: lot B, probable;
	// the lot is not rejected, the invoice is.
	fetchOne(t, s, sesam.NoemieMail{Payload: sesam.NoemieFile{Recipient: emitter, FileDate: "261125",
		Lots:     []sesam.NoemieLotRef{{Date: sesam.StampDate(day2), Number: "002"}},
		Invoices: []sesam.NoemieInvoice{{Number: "417", Rejects: []sesam.Reject{{Entity: "294", Code: "R042", Label: "ACTE NON REMBOURSABLE"}}, Claimed: -1, Paid: -1}},
	}.Bytes()}.Mail())
	l, st = lotByID(t, s, b)
	if st.State != sesam.LotReturned || len(l.Returns) != 1 || !strings.Contains(l.Returns[0].How, "same emitter and date") ||
		len(st.RejectedInvoices) != 1 || st.RejectedInvoices[0].Number != "417" || st.RejectedInvoices[0].Label != "ACTE NON REMBOURSABLE" {
		t.Fatalf("lot B: %+v %+v", l, st)
	}
}

func TestAnARLOfUnknownPolarityIsNeverSafe(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for i, subject := range []string{"ARL", "Accusé de réception logique négatif", "ARL KO", "Rejet ARL", "ARL non conforme"} {
		id, lot := sendLot(t, s, time.Now(), i+1)
		fetchOne(t, s, sesam.ARLMail{Subject: subject + " " + stampOf(lot), Stamp: stampOf(lot)}.Mail())
		if _, st := lotByID(t, s, id); st.State.Safe() || (st.State != sesam.LotToCheck && st.State != sesam.LotRejected) {
			t.Errorf("Subject %q: %+v", subject, st)
		}
	}
	// A payload that says rejected under a bare Subject.
	id, lot := sendLot(t, s, time.Now(), 9)
	fetchOne(t, s, sesam.ARLMail{Subject: "ARL", Stamp: stampOf(lot), Outcome: sesam.ARLNegativeText(stampOf(lot), "SIGNATURE INVERIFIABLE")}.Mail())
	if l, st := lotByID(t, s, id); st.State != sesam.LotRejected || !strings.Contains(l.Returns[0].Facts.ARL, "SIGNATURE INVERIFIABLE") {
		t.Fatalf("%+v %+v", l, st)
	}
}

func TestLotLessReturnsAreNotTiedToLots(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	day := time.Date(2026, 11, 24, 9, 0, 0, 0, time.Local)
	id, _ := sendLot(t, s, day, 1)
	for _, rtype := range []string{"02", "03"} {
		fetchOne(t, s, sesam.NoemieMail{Payload: sesam.NoemieFile{Recipient: emitter, ReturnType: rtype,
			Lots: []sesam.NoemieLotRef{{Date: sesam.StampDate(day), Number: "001"}}}.Bytes()}.Mail())
	}
	if l, st := lotByID(t, s, id); st.State != sesam.LotDelivered || len(l.Returns) != 0 {
		t.Fatalf("a paper or lump-sum return was tied to an electronic lot: %+v %+v", l, st)
	}
	un, err := s.UnmatchedReturns("dupont", time.Time{}, 10)
	if err != nil || len(un) != 2 || un[0].Class != sesam.NoemieNoLot {
		t.Fatalf("%+v %v", un, err)
	}
}

func TestBounceFromTheProviderIsMatchedByMessageID(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, _ := sendLot(t, s, time.Now(), 1)
	m, _, _ := s.Get(id)
	dsn := "From: MAILER-DAEMON@laposte.net\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nx\r\n" +
		"--q\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + m.MessageID + "\r\n--q--\r\n"
	fetchOne(t, s, []byte(dsn))
	l, st := lotByID(t, s, id)
	if st.State != sesam.LotBounced || !l.Returns[0].Certain || l.Returns[0].Class != sesam.Bounce {
		t.Fatalf("%+v %+v", l, st)
	}
}

func TestUndeliveredLotsAreNotMatched(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	lot := sesam.SampleLot{From: "a@b", Fund: "01422@422.01.rss.fr", Emitter: "1", Invoices: 1, At: time.Now(), Seq: 1}
	id, _ := enqueue(s, store.Envelope{Account: "dupont", To: []string{lot.Fund}}, lot.Mail())
	added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Imported}, positiveARL(""), nil))
	if l, st := lotByID(t, s, id); st.State != sesam.LotQueued || len(l.Returns) != 0 {
		t.Fatalf("an ARL was matched to a lot that never left: %+v %+v", l, st)
	}
}

func TestRebuildFindsTheSameMatches(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, lot := sendLot(t, s, time.Now(), 1)
	fetchOne(t, s, positiveARL(stampOf(lot)))
	_, before := lotByID(t, s, id)
	lots, matched, err := s.RebuildLedger(ctx)
	if err != nil || lots != 1 || matched != 1 {
		t.Fatalf("rebuild: %d lots, %d matched, %v", lots, matched, err)
	}
	l, after := lotByID(t, s, id)
	if after.State != before.State || after.State != sesam.LotAcknowledged || len(l.Returns) != 1 || !l.Returns[0].Certain {
		t.Fatalf("before %+v\nafter %+v", before, after)
	}
}

// After an upgrade, a lot that older rules called acknowledged on a
// negative ARL is rebuilt once under the new rules: rejected, not safe.
func TestAnUpgradeRebuildsTheLedgerUnderTheNewRules(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, lot := sendLot(t, s, time.Now(), 1)
	stamp := stampOf(lot)
	fetchOne(t, s, sesam.ARLMail{Subject: "ARL", Stamp: stamp, Outcome: "ARL : LOT " + stamp + " NON-CONFORME"}.Mail())
	if rebuilt, _, _, err := s.RebuildIfRulesChanged(ctx); err != nil || !rebuilt {
		t.Fatalf("a store with no rules recorded was not rebuilt: %v", err)
	}
	if err := store.AsIfOlderRules(s); err != nil {
		t.Fatal(err)
	}
	if _, st := lotByID(t, s, id); st.State != sesam.LotAcknowledged {
		t.Fatalf("the older ledger: %s", st.State)
	}
	rebuilt, _, _, err := s.RebuildIfRulesChanged(ctx)
	if err != nil || !rebuilt {
		t.Fatalf("not rebuilt: %v", err)
	}
	if _, st := lotByID(t, s, id); st.State != sesam.LotRejected || st.State.Safe() {
		t.Fatalf("after the upgrade: %s (%s)", st.State, st.Why)
	}
	if rebuilt, _, _, _ := s.RebuildIfRulesChanged(ctx); rebuilt {
		t.Fatal("rebuilt again with the same rules")
	}
	s.Configure(store.Settings{Rules: []sesam.Rule{{Field: "subject", Pattern: regexp.MustCompile("^ARL$"), Class: sesam.ARLNegative}}})
	if rebuilt, _, _, _ := s.RebuildIfRulesChanged(ctx); !rebuilt {
		t.Fatal("a new [[sesam.rule]] did not rebuild")
	}
}

// A rebuild goes in small writes, the live ledger stays whole between
// them, mail stored meanwhile is in the result, and a rebuild stopped
// half-way (killed) leaves the older rules' mark, so the next start does
// it again, whole.
func TestAnInterruptedRebuildLeavesTheLedgerWholeAndIsRedoneAtTheNextStart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	now := time.Now()
	var ids []int64
	var stamps []string
	for i := 1; i <= 4; i++ {
		id, lot := sendLot(t, s, now.Add(time.Duration(i)*time.Minute), i)
		ids, stamps = append(ids, id), append(stamps, stampOf(lot))
		fetchOne(t, s, sesam.ARLMail{Subject: "ARL", Stamp: stampOf(lot), Outcome: "ARL : LOT " + stampOf(lot) + " NON-CONFORME"}.Mail())
	}
	if _, _, _, err := s.RebuildIfRulesChanged(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.AsIfOlderRules(s); err != nil { // every ARL read as positive
		t.Fatal(err)
	}
	killed := errors.New("killed")
	commits := store.Commits(s)
	store.SetRebuild(s, 2, func(step int) error {
		if step == 1 {
			// Between two writes: the live ledger is the old one, whole.
			for _, id := range ids {
				if _, st := lotByID(t, s, id); st.State != sesam.LotAcknowledged {
					t.Errorf("lot %d during the rebuild: %s", id, st.State)
				}
			}
		}
		if step == 3 {
			return killed
		}
		return nil
	})
	if _, _, err := s.RebuildLedger(ctx); !errors.Is(err, killed) {
		t.Fatalf("the stopped rebuild: %v", err)
	}
	if c := store.Commits(s) - commits; c < 3 {
		t.Fatalf("the rebuild wrote in %d commits, not in batches", c)
	}
	for _, id := range ids {
		if _, st := lotByID(t, s, id); st.State != sesam.LotAcknowledged {
			t.Fatalf("lot %d after a stopped rebuild: %s, want the old ledger whole", id, st.State)
		}
	}
	s.Close()

	s = open(t, dir) // the restart
	defer s.Close()
	var late int64
	store.SetRebuild(s, 2, func(step int) error {
		if step == 4 { // after the last batch read: a lot and its ARL stored meanwhile
			var lot sesam.SampleLot
			late, lot = sendLot(t, s, now.Add(time.Hour), 9)
			fetchOne(t, s, positiveARL(stampOf(lot)))
		}
		return nil
	})
	rebuilt, lots, matched, err := s.RebuildIfRulesChanged(ctx)
	if err != nil || !rebuilt {
		t.Fatalf("the restart did not rebuild the ledger a stopped rebuild left: %v", err)
	}
	if lots != 5 || matched != 5 {
		t.Fatalf("rebuilt %d lots, %d matched; want 5 and 5", lots, matched)
	}
	for _, id := range ids {
		if _, st := lotByID(t, s, id); st.State != sesam.LotRejected {
			t.Fatalf("lot %d after the rebuild: %s", id, st.State)
		}
	}
	if _, st := lotByID(t, s, late); st.State != sesam.LotAcknowledged {
		t.Fatalf("the lot stored during the rebuild: %s", st.State)
	}
	if rebuilt, _, _, _ := s.RebuildIfRulesChanged(ctx); rebuilt {
		t.Fatal("rebuilt again with the same rules")
	}
}
