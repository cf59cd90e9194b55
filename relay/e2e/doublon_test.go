package e2e_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Someone clicks "retransmettre" in the billing software: the same lot
// (same emitter and stamp) comes again under a new Message-ID. Both get a
// 250 (a refusal would make the billing software loop); the first goes
// upstream, the second is held as a probable DOUBLON until a technician
// confirms that the fund did not get the first.
func TestDuplicateLotUnderANewMessageIDIsAnswered250AndHeldUntilConfirmed(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	lot := sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 2, At: time.Now(), Seq: 7}
	stamp := strings.Split(lot.Subject(), "/")[2]
	var mails [][]byte
	submit := func() {
		t.Helper()
		body := lot.Mail() // a new Message-ID and new bytes each time
		mails = append(mails, body)
		p := filepath.Join(t.TempDir(), "lot.eml")
		os.WriteFile(p, body, 0o600)
		if res := r.python(pyArgs{"file": p, "to": fund}); len(res) != 1 || res[0].Code != 250 {
			t.Fatalf("sending %d: %+v", len(mails), res)
		}
	}
	submit()
	waitFor(t, 10*time.Second, "the first sending delivered", func() bool { return r.states()[store.Sent] == 1 })
	submit()
	waitFor(t, 5*time.Second, "the second sending held", func() bool { return r.states()[store.Held] == 1 })
	time.Sleep(1500 * time.Millisecond) // room for the second to go out, were it queued
	if got := prov.Mails(); len(got) != 1 || !bytes.Contains(got[0].Data, mails[0]) {
		t.Fatalf("the provider got %d mails, want the first sending only", len(got))
	}
	q := r.queue()
	if len(q) != 2 || q[0].State != store.Sent || q[1].State != store.Held {
		t.Fatalf("queue: %+v", q)
	}
	first, second := itoa(q[0].ID), itoa(q[1].ID)
	want := "duplicate: probable second sending of this lot (first: mail " + first + ", sent)"
	if !strings.Contains(r.Log(), "probable second sending of a lot") || !strings.Contains(r.Log(), "first="+first) {
		t.Fatalf("the daemon's log does not name the first sending:\n%s", r.Log())
	}

	out, code := r.cli("queue")
	if code != 0 || !strings.Contains(out, "duplicate: probable second sending") {
		t.Fatalf("queue (%d) does not show why the second is held:\n%s", code, out)
	}
	out, _ = r.cli("queue", "show", second)
	if !strings.Contains(out, want) || !strings.Contains(out, stamp) || !strings.Contains(out, "the fund would refuse it as DOUBLON") || !strings.Contains(out, "`queue release "+second+" --confirm`") {
		t.Fatalf("queue show %s does not say duplicate:\n%s", second, out)
	}
	if out, _ := r.cli("queue", "show", first); !strings.Contains(out, "sent again by the client as mail "+second) {
		t.Fatalf("queue show %s does not name the second sending:\n%s", first, out)
	}

	// Without --confirm the release is refused, and says why.
	out, code = r.cli("queue", "release", second)
	if code == 0 || !strings.Contains(out, "the fund may already have this lot") || !strings.Contains(out, "--confirm") {
		t.Fatalf("release without --confirm (%d):\n%s", code, out)
	}
	time.Sleep(500 * time.Millisecond)
	if len(prov.Mails()) != 1 {
		t.Fatal("a refused release sent the duplicate")
	}
	if out, code := r.cli("queue", "release", second, "--confirm"); code != 0 {
		t.Fatalf("release --confirm (%d): %s", code, out)
	}
	waitFor(t, 10*time.Second, "the released duplicate delivered", func() bool { return len(prov.Mails()) == 2 })
	if got := prov.Mails(); !bytes.Contains(got[1].Data, mails[1]) {
		t.Fatal("the provider did not get the second sending's bytes")
	}
}
