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
	l := sesam.Lot{ID: 3, Queue: sesam.QueueSent, Delivered: time.Now(), Returns: []sesam.LotReturn{{Class: in.Class, Certain: m.Certain, How: m.How}}}
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
		{Class: sesam.NoemieNoLot, Noemie: &sesam.Noemie{Lots: []sesam.NoemieLotRef{{Date: "261124", Number: "001"}}}},
		{Class: sesam.NoemiePayment, Noemie: &sesam.Noemie{}}, // no 080 that fits
		{Class: sesam.NoemiePayment, Noemie: &sesam.Noemie{Lots: []sesam.NoemieLotRef{{Date: "261201", Number: "001"}}}},
		{Class: sesam.Unknown},
		{Class: sesam.ProviderNotice},
	} {
		if m, ok := sesam.MatchReturn(in, candidates()); ok {
			t.Errorf("%s matched %+v", in.Class, m)
		}
	}
}

func TestANoemieLotDateIsAProbableMatchForTheSameEmitter(t *testing.T) {
	in := sesam.Inbound{Class: sesam.NoemiePayment, Noemie: &sesam.Noemie{Recipient: "12345678901234", Lots: []sesam.NoemieLotRef{{Date: "261125", Number: "004"}}}}
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

// A positive ARL for lot 4 that also quotes lot 3's stamp acknowledges
// neither: it is listed apart, and never falls back to a guess.
func TestAReturnQuotingTwoLotsIsMatchedToNone(t *testing.T) {
	in := sesam.Classify(arlMail("ARL positif - IR/12345678901234/2026112511000000004/00003",
		"ARL POSITIF : LOT 2026112511000000004 CONFORME (REMPLACE LE LOT 2026112410000000003)"), nil)
	if in.Class != sesam.ARLPositive {
		t.Fatalf("%s %s", in.Class, in.Why)
	}
	if m, ok := sesam.MatchReturn(in, candidates()); ok {
		t.Fatalf("matched %+v", m)
	}
}

// After a negative ARL the lot is sent again with the same stamp: the
// second ARL is the second sending's.
func TestTheResendGetsTheSecondARL(t *testing.T) {
	cs := candidates()[2:3]
	cs[0].Answered = []sesam.Class{sesam.ARLNegative}
	resend := cs[0]
	resend.ID, resend.Answered = 9, nil
	cs = append(cs, resend)
	in := sesam.Classify(arlMail("ARL positif - IR/12345678901234/2026112410000000003/00003", "ARL POSITIF : CONFORME"), nil)
	if m, ok := sesam.MatchReturn(in, cs); !ok || m.LotID != 9 || !m.Certain {
		t.Fatalf("%+v %v", m, ok)
	}
}

// A longer number that starts like a stamp quotes no stamp.
func TestALongerDigitRunIsNoStamp(t *testing.T) {
	in := sesam.Classify(arlMail("ARL positif", "ARL POSITIF : REFERENCE 2026112410000000003999 CONFORME"), nil)
	if in.Quotes("2026112410000000003") {
		t.Fatalf("stamps %v", in.Stamps)
	}
}

func dsn(action, status, returned string) []byte {
	return []byte("From: MAILER-DAEMON@laposte.test\r\nTo: jean.dupont@laposte.net\r\nSubject: Delayed Mail (still being retried)\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n" +
		"--r\r\nContent-Type: text/plain\r\n\r\nYour message is delayed.\r\n" +
		"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; laposte.test\r\n\r\nFinal-Recipient: rfc822; 01422@422.01.rss.fr\r\nAction: " + action + "\r\nStatus: " + status + "\r\n" +
		"--r\r\nContent-Type: text/rfc822-headers\r\n\r\n" + returned + "\r\n--r--\r\n")
}

// A delay report names the lot but says it is still being tried: not a
// bounce, so no "renvoyez-le".
func TestADelayReportIsNoBounce(t *testing.T) {
	lotHead := "Message-ID: <lot-2026112511000000004@billing.test>\r\nSubject: IR/12345678901234/2026112511000000004/00003\r\n"
	for _, a := range []string{"delayed", "delivered", "relayed", "expanded"} {
		in := sesam.Classify(dsn(a, "4.4.7", lotHead), nil)
		if in.Class == sesam.Bounce {
			t.Errorf("Action: %s made a bounce", a)
		}
		if m, ok := sesam.MatchReturn(in, candidates()); ok {
			t.Errorf("Action: %s matched %+v", a, m)
		}
	}
	in := sesam.Classify(dsn("failed", "5.1.1", lotHead), nil)
	if m, ok := sesam.MatchReturn(in, candidates()); in.Class != sesam.Bounce || !ok || m.LotID != 4 {
		t.Fatalf("a failure report: %s %+v %v", in.Class, m, ok)
	}
}

// A report returning the relay's own notice, which quotes the lot's stamp
// in its technical line, is not a report about the lot.
func TestABounceOfTheNoticeIsNotTheLots(t *testing.T) {
	notice := "Message-ID: <abc.notice@relais.test>\r\nSubject: =?utf-8?q?Lot_rejet=C3=A9?=\r\n\r\nDétail technique : mail 12 (arl-negative, the return quotes the lot's stamp 2026112511000000004)"
	in := sesam.Classify(dsn("failed", "5.2.2", notice), nil)
	if m, ok := sesam.MatchReturn(in, candidates()); ok {
		t.Fatalf("the notice's bounce matched %+v", m)
	}
}

// A failure report and the fund's certain ARL for one lot: a person looks;
// neither "bounced, send it again" nor "safe".
func TestABounceAndAnARLForOneLotAreForAPerson(t *testing.T) {
	for _, arl := range []sesam.Class{sesam.ARLPositive, sesam.ARLNegative} {
		l := sesam.Lot{ID: 4, Queue: sesam.QueueSent, Delivered: time.Now(), Returns: []sesam.LotReturn{
			{Class: sesam.Bounce, Certain: true, How: "the report names the lot's Message-ID"},
			{Class: arl, Certain: true, How: "the return quotes the lot's stamp"},
		}}
		if st := l.Status(); st.State != sesam.LotToCheck {
			t.Errorf("bounce and %s: %s", arl, st.State)
		}
	}
}
