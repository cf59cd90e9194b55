package store_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

func submission(account, mid string, body []byte) store.Envelope {
	e := env(account)
	e.MessageID, e.Hash = mid, store.Fingerprint(body)
	return e
}

func history(t *testing.T, s *store.Store, id int64) string {
	t.Helper()
	_, evs, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Text + "\n")
	}
	return b.String()
}

func TestResubmissionIsAcceptedOnceAndRecordedInTheFirstMailsHistory(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	body := []byte("Message-ID: <lot-1@billing>\r\n\r\nlot\r\n")
	first, err := s.Submit(ctx, submission("dupont", "<lot-1@billing>", body), append([]byte("Received: one\r\n"), body...))
	if err != nil || first.Resubmission {
		t.Fatalf("%+v %v", first, err)
	}
	// The resubmission carries another Received line: only the client's bytes count.
	again, err := s.Submit(ctx, submission("dupont", "<lot-1@billing>", body), append([]byte("Received: two\r\n"), body...))
	if err != nil || !again.Resubmission || again.ID != first.ID {
		t.Fatalf("resubmission: %+v %v (first %d)", again, err, first.ID)
	}
	if ms, _ := s.List(store.Filter{}); len(ms) != 1 {
		t.Fatalf("%d mails queued, want 1", len(ms))
	}
	if h := history(t, s, first.ID); !strings.Contains(h, "resubmitted by the client") {
		t.Fatalf("history does not show the resubmission:\n%s", h)
	}
}

func TestSameMessageIDWithOtherBytesIsQueuedAndFlagged(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	a := []byte("Message-ID: <lot-2@billing>\r\n\r\nlot A\r\n")
	b := []byte("Message-ID: <lot-2@billing>\r\n\r\nlot B\r\n")
	first, _ := s.Submit(ctx, submission("dupont", "<lot-2@billing>", a), a)
	second, err := s.Submit(ctx, submission("dupont", "<lot-2@billing>", b), b)
	if err != nil || second.Resubmission || second.ID == first.ID || second.SameMessageID != first.ID {
		t.Fatalf("%+v %v (first %d)", second, err, first.ID)
	}
	if h := history(t, s, second.ID); !strings.Contains(h, "flagged: Message-ID <lot-2@billing> was already accepted as mail") {
		t.Fatalf("the second mail is not flagged:\n%s", h)
	}
	if h := history(t, s, first.ID); !strings.Contains(h, "flagged") {
		t.Fatalf("the first mail is not flagged:\n%s", h)
	}
}

func TestNoResubmissionCheckWithoutMessageIDAcrossAccountsOrAfterTheLifetime(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	body := []byte("Subject: no id\r\n\r\nx\r\n")
	for i := 0; i < 2; i++ {
		if a, _ := s.Submit(ctx, submission("dupont", "", body), body); a.Resubmission {
			t.Fatal("a mail without Message-ID was taken for a resubmission")
		}
	}
	withID := []byte("Message-ID: <x@y>\r\n\r\nx\r\n")
	s.Submit(ctx, submission("dupont", "<x@y>", withID), withID)
	if a, _ := s.Submit(ctx, submission("martin", "<x@y>", withID), withID); a.Resubmission {
		t.Fatal("another account's mail was taken for a resubmission")
	}
	s.Configure(store.Settings{ResubmitWindow: time.Hour})
	store.SetNow(s, func() time.Time { return time.Now().Add(2 * time.Hour) })
	if a, _ := s.Submit(ctx, submission("dupont", "<x@y>", withID), withID); a.Resubmission {
		t.Fatal("a mail older than the lifetime was taken for a resubmission")
	}
	if ms, _ := s.List(store.Filter{}); len(ms) != 5 {
		t.Fatalf("%d mails queued, want 5", len(ms))
	}
}

// The lookup runs in the insert's transaction: identical submissions at the
// same moment (one group commit) queue one mail.
func TestIdenticalSubmissionsAtOnceQueueOneMail(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	body := []byte("Message-ID: <same@billing>\r\n\r\nlot\r\n")
	var wg sync.WaitGroup
	ids := make([]int64, 20)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.Submit(ctx, submission("dupont", "<same@billing>", body), body)
			if err != nil {
				t.Error(err)
			}
			ids[i] = a.ID
		}()
	}
	wg.Wait()
	if ms, _ := s.List(store.Filter{}); len(ms) != 1 {
		t.Fatalf("%d mails queued, want 1", len(ms))
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("answers name different mails: %v", ids)
		}
	}
}

func TestAStoreFromSchemaVersion1Opens(t *testing.T) {
	dir := t.TempDir()
	if err := store.CreateV1(dir, "<old@billing>"); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir)
	defer s.Close()
	body := []byte("Message-ID: <old@billing>\r\n\r\nx\r\n")
	// The old row has no fingerprint: it is never taken for this mail.
	if a, err := s.Submit(ctx, submission("dupont", "<old@billing>", body), body); err != nil || a.Resubmission {
		t.Fatalf("%+v %v", a, err)
	}
	if a, _ := s.Submit(ctx, submission("dupont", "<old@billing>", body), body); !a.Resubmission {
		t.Fatal("a resubmission into an upgraded store was queued again")
	}
	if _, err := s.Probe(ctx); err != nil {
		t.Fatalf("probe on an upgraded store: %v", err)
	}
}

// A client trying again a mail that bounced, or the same bytes to other
// recipients, is not a resubmission: answering 250 and queueing nothing
// would lose the mail.
func TestABouncedMailOrOtherRecipientsAreQueuedAgain(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	body := []byte("Message-ID: <lot-9@billing>\r\n\r\nlot\r\n")
	first, err := s.Submit(ctx, submission("dupont", "<lot-9@billing>", body), body)
	if err != nil {
		t.Fatal(err)
	}
	other := submission("dupont", "<lot-9@billing>", body)
	other.To = []string{"secretariat@cabinet-voisin.test"}
	if a, err := s.Submit(ctx, other, body); err != nil || a.Resubmission || a.ID == first.ID {
		t.Fatalf("the same bytes to another recipient were taken for a resubmission: %+v %v", a, err)
	}
	if err := s.MarkBounced(ctx, first.ID, "550 refused", []byte("Subject: DSN\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	again, err := s.Submit(ctx, submission("dupont", "<lot-9@billing>", body), body)
	if err != nil || again.Resubmission || again.ID == first.ID {
		t.Fatalf("a bounced mail sent again was not queued: %+v %v", again, err)
	}
}
