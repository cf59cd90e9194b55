package sesam_test

import (
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

func candidates() []sesam.LotCandidate {
	c := func(id int64, stamp string, answered ...sesam.Class) sesam.LotCandidate {
		return sesam.LotCandidate{ID: id, MessageID: "<lot-" + stamp + "@billing.test>", Emitter: "12345678901234", Stamp: stamp,
			LotAt: sesam.StampTime(stamp, nil), Queue: sesam.QueueSent, Answered: answered}
	}
	return []sesam.LotCandidate{
		c(1, "2026112408150000001", sesam.ARLPositive),
		c(2, "2026112409000000002", sesam.ARLPositive),
		c(3, "2026112410000000003"),
		c(4, "2026112511000000004"),
	}
}

// The review's case: an ARL quoting lot 1's stamp, after lot 1 already
// had an ARL, went to lot 4 "by order". A certain match never loses to a
// guess.
func TestAStampMatchWinsEvenAfterAnotherARL(t *testing.T) {
	in := sesam.Classify(arlMail("ARL positif - IR/12345678901234/2026112408150000001/00003", "ARL POSITIF : CONFORME"), nil)
	m, ok := sesam.MatchReturn(in, candidates())
	if !ok || m.LotID != 1 || !m.Certain {
		t.Fatalf("%+v %v", m, ok)
	}
}

func TestAnARLWithoutStampIsOnlyAProbableMatchToTheOldestUnanswered(t *testing.T) {
	in := sesam.Classify(arlMail("ARL positif", "ARL POSITIF : CONFORME"), nil)
	m, ok := sesam.MatchReturn(in, candidates())
	if !ok || m.LotID != 3 || m.Certain {
		t.Fatalf("%+v %v", m, ok)
	}
	l := sesam.LotRecord{ID: 3, Queue: sesam.QueueSent, Delivered: time.Now(), Returns: []sesam.LotReturn{{Class: in.Class, Certain: m.Certain, How: m.How}}}
	if st := l.Status(); st.State != sesam.LotProbablyAcked {
		t.Fatalf("a guess made the lot %s", st.State)
	}
}

func TestABounceMatchesByMessageIDOnly(t *testing.T) {
	in := sesam.Inbound{Class: sesam.Bounce, OrigMessageID: "<lot-2026112511000000004@billing.test>"}
	if m, ok := sesam.MatchReturn(in, candidates()); !ok || m.LotID != 4 || !m.Certain {
		t.Fatalf("%+v %v", m, ok)
	}
	if _, ok := sesam.MatchReturn(sesam.Inbound{Class: sesam.Bounce, OrigMessageID: "<other@x>"}, candidates()); ok {
		t.Fatal("a report about another mail was matched")
	}
}

func TestReturnsWithNoLotAreNeverMatchedByOrder(t *testing.T) {
	for _, in := range []sesam.Inbound{
		{Class: sesam.NoemieNoLot, Noemie: &sesam.Noemie{Lots: []sesam.NoemieLot{{Date: "261124", Number: "001"}}}},
		{Class: sesam.NoemiePayment, Noemie: &sesam.Noemie{}}, // no 080 that fits
		{Class: sesam.NoemiePayment, Noemie: &sesam.Noemie{Lots: []sesam.NoemieLot{{Date: "261201", Number: "001"}}}},
		{Class: sesam.Unknown},
		{Class: sesam.ProviderNotice},
	} {
		if m, ok := sesam.MatchReturn(in, candidates()); ok {
			t.Errorf("%s matched %+v", in.Class, m)
		}
	}
}

func TestANoemieLotDateIsAProbableMatchForTheSameEmitter(t *testing.T) {
	in := sesam.Inbound{Class: sesam.NoemiePayment, Noemie: &sesam.Noemie{Recipient: "12345678901234", Lots: []sesam.NoemieLot{{Date: "261125", Number: "004"}}}}
	if m, ok := sesam.MatchReturn(in, candidates()); !ok || m.LotID != 4 || m.Certain {
		t.Fatalf("%+v %v", m, ok)
	}
	in.Noemie.Recipient = "99999999999999"
	if m, ok := sesam.MatchReturn(in, candidates()); ok {
		t.Fatalf("another emitter's return matched %+v", m)
	}
}

// A lot sent twice (the second held by the DOUBLON guard) is answered for
// the one that left.
func TestAStampSharedByASecondSendingGoesToTheLotThatLeft(t *testing.T) {
	cs := candidates()
	held := cs[2]
	held.ID, held.Queue = 9, sesam.QueueHeld
	cs = append([]sesam.LotCandidate{held}, cs...)
	in := sesam.Classify(arlMail("ARL positif - IR/12345678901234/2026112410000000003/00003", "ARL POSITIF"), nil)
	if m, ok := sesam.MatchReturn(in, cs); !ok || m.LotID != 3 {
		t.Fatalf("%+v %v", m, ok)
	}
}

func TestStampsAreReadInParisTime(t *testing.T) {
	got := sesam.StampTime("2026112410150000001", nil)
	if want := time.Date(2026, 11, 24, 9, 15, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("10:15 Paris read as %s, want %s", got.UTC(), want)
	}
}
