package fetch_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

func TestMessageOverMaxFetchSizeIsLeftUpstreamReportedAndPassed(t *testing.T) {
	prov := provider(t)
	prov.Deliver("INBOX", mail(1, 100))
	prov.Deliver("INBOX", mail(2, 200<<10)) // over the 100K ceiling
	prov.Deliver("INBOX", mail(3, 100))
	prov.Deliver("INBOX", mail(4, 300<<10)) // over, and last
	p, st := poller(t, account(t, prov.Addr(), func(u *config.Provider) { u.MaxFetchSize = 100 << 10 }), false)
	res, err := p.PollNow(ctx)
	if err != nil || res.Fetched != 2 {
		t.Fatalf("%+v %v: want the 2 small messages", res, err)
	}
	note := p.Health().Note
	for _, want := range []string{"message UID 2 in INBOX (0.2 MB) is over max_fetch_size (0.1 MB): left at the provider", "message UID 4 in INBOX", "raise max_fetch_size"} {
		if !strings.Contains(note, want) {
			t.Fatalf("note %q lacks %q", note, want)
		}
	}
	// The sync position passed both: the next polls do not ask again.
	if _, last, _ := st.SyncState("dupont", "INBOX"); last != 4 {
		t.Fatalf("sync position %d, want 4 (past the message left upstream)", last)
	}
	prov.Deliver("INBOX", mail(5, 100))
	if res, err := p.PollNow(ctx); err != nil || res.Fetched != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if mb, _ := st.Mailbox("dupont"); len(mb) != 3 || mb[2].Subject != "ARL 5" {
		t.Fatalf("%d messages held, want ARL 1, 3, 5", len(mb))
	}
}

func TestMessageMarkedAloneWhenTheRelayStoppedIsStoredUnread(t *testing.T) {
	prov := provider(t)
	p, st := poller(t, account(t, prov.Addr(), nil), false)
	p.PollNow(ctx) // nothing yet: records the folder's UIDVALIDITY
	uv, _, _ := st.SyncState("dupont", "INBOX")
	for i := 1; i <= 4; i++ {
		prov.Deliver("INBOX", mail(i, 100))
	}
	// What a stop leaves: the first batch's mark, then, after one restart,
	// UID 3 marked alone.
	if err := st.MarkClassifying(ctx, "dupont", "INBOX", store.Classifying{UIDValidity: uv, Lo: 3, Hi: 3, Single: true}); err != nil {
		t.Fatal(err)
	}
	res, err := p.PollNow(ctx)
	if err != nil || res.Fetched != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	mb, _ := st.Mailbox("dupont")
	for _, m := range mb {
		unread := m.ClassWhy == "the relay stopped while reading this message; stored without reading it"
		if unread != (m.Subject == "ARL 3") || (m.Subject == "ARL 3" && m.Class != "unknown") {
			t.Fatalf("%s: class %s (%s)", m.Subject, m.Class, m.ClassWhy)
		}
	}
	if !strings.Contains(p.Health().Note, "message UID 3 in INBOX stopped the relay") {
		t.Fatalf("note %q", p.Health().Note)
	}
	// The mark is cleared without waiting: let the committer catch up.
	for i := 0; ; i++ {
		if _, found, _ := st.MarkFound("dupont", "INBOX"); !found {
			break
		} else if i == 100 {
			t.Fatal("the mark is still there after the batch was stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
