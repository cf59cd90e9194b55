package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// status tells the truth about the next poll: the real next attempt
// (schedule, backoff or pause, whichever is later) with its reason, proved
// by watching when the attempt really happens.

func (r *relay) fetchHealth() store.FetchHealth {
	r.t.Helper()
	st := r.status()
	if len(st.Accounts) == 0 || st.Accounts[0].Fetch == nil {
		r.t.Fatalf("no fetch health in status: %+v", st)
	}
	return *st.Accounts[0].Fetch
}

// every10s polls the provider's IMAP at addr every 10 seconds, the shortest
// schedule allowed.
func every10s(imap string) string {
	return fmt.Sprintf("insecure = true\n  imap = \"imap://%s\"\n  folders = [\"INBOX\"]\n  poll = \"@every 10s\"", imap)
}

// holds reports whether the practitioner's mailbox holds the message.
func (r *relay) holds(messageID string) bool {
	mb, _ := r.mailbox()
	for _, e := range mb {
		if e.MessageID == messageID {
			return true
		}
	}
	return false
}

func TestStatusNextPollDuringBackoffIsTheRealNextAttempt(t *testing.T) {
	// Nothing listens on the IMAP port and SMTP never worked: a temporary
	// failure, retried after first_retry (25 s ±20%), that is after two or
	// three scheduled times are skipped.
	r := newRelay(t, newProvider(t), opts{provExtra: every10s(freeTCP(t)),
		delivery: "first_retry = \"25s\"\nmax_retry = \"25s\"\ntimeout = \"3s\""})
	var f store.FetchHealth
	waitFor(t, 10*time.Second, "the first failed poll", func() bool { f = r.fetchHealth(); return !f.LastErrorAt.IsZero() })
	if f.Failure != "temporary" || !strings.Contains(f.NextReason, "1 failure(s) in a row") {
		t.Fatalf("status after one failure: %+v", f)
	}
	if f.NextTry.Before(f.LastErrorAt.Add(19 * time.Second)) {
		t.Fatalf("next poll %s announced inside the backoff that began %s", f.NextTry, f.LastErrorAt)
	}
	if out, _ := r.cli("status"); !strings.Contains(out, "next poll: ") || !strings.Contains(out, "failure(s) in a row") {
		t.Fatalf("status text:\n%s", out)
	}
	announced, first := f.NextTry, f.LastErrorAt
	waitFor(t, 60*time.Second, "the second attempt", func() bool { f = r.fetchHealth(); return f.LastErrorAt.After(first) })
	if f.LastErrorAt.Before(announced.Add(-time.Second)) || f.LastErrorAt.After(announced.Add(3*time.Second)) {
		t.Fatalf("status announced the next poll at %s; it happened at %s", announced.Format(time.StampMilli), f.LastErrorAt.Format(time.StampMilli))
	}
}

func TestStatusDuringAPauseNamesNoEarlierPoll(t *testing.T) {
	imapP := imapProvider(t)
	imapP.RefuseLogins(true) // [AUTHENTICATIONFAILED]
	r := newRelay(t, newProvider(t), opts{provExtra: every10s(imapP.Addr())})
	var f store.FetchHealth
	waitFor(t, 10*time.Second, "the refused login", func() bool { f = r.fetchHealth(); return !f.LastErrorAt.IsZero() })
	if f.Failure != "credentials refused" || f.PausedUntil.IsZero() || !f.Blocked {
		t.Fatalf("status after a refused login: %+v", f)
	}
	if f.NextTry.Before(f.PausedUntil) || !strings.Contains(f.NextReason, "paused") {
		t.Fatalf("next poll %s (%s) before the pause ends %s", f.NextTry, f.NextReason, f.PausedUntil)
	}
	out, _ := r.cli("status")
	if !strings.Contains(out, "polling paused until") {
		t.Fatalf("status text:\n%s", out)
	}
	// The schedule's next times pass: no login is tried.
	logins := imapP.Logins()
	time.Sleep(12 * time.Second)
	if n := imapP.Logins(); n != logins {
		t.Fatalf("%d logins during the pause", n-logins)
	}
	// The technician's fetch tries now, pause or not.
	imapP.RefuseLogins(false)
	if out, code := r.cli("fetch", "dupont"); code != 0 {
		t.Fatalf("fetch after the password was fixed (%d): %s", code, out)
	}
	if f = r.fetchHealth(); !f.FailingSince.IsZero() || !f.PausedUntil.IsZero() || f.Blocked {
		t.Fatalf("status after a good fetch: %+v", f)
	}
}

func TestClosedAccessIsCollectedAtTheFirstScheduledPollAfterItReopens(t *testing.T) {
	imapP := imapProvider(t)
	prov := newProvider(t)
	r := newRelay(t, prov, opts{provExtra: every10s(imapP.Addr())})
	defer func() {
		if t.Failed() {
			t.Log(r.Log())
		}
	}()
	submitOne(t, r) // SMTP works: a refused IMAP port is then access closed
	waitFor(t, 10*time.Second, "a delivery", func() bool { return len(prov.Mails()) == 1 })
	waitFor(t, 10*time.Second, "the first poll", func() bool { return !r.fetchHealth().LastSuccess.IsZero() })

	i := 10
	for _, close := range []struct {
		name         string
		shut, reopen func()
	}{
		{"IMAP port shut", imapP.Off, func() {
			if err := imapP.On(); err != nil {
				t.Fatal(err)
			}
		}},
		{"[UNAVAILABLE] at login", func() { imapP.DisableIMAP(true) }, func() { imapP.DisableIMAP(false) }},
	} {
		close.shut()
		var f store.FetchHealth
		waitFor(t, 15*time.Second, close.name+": the closed access seen", func() bool { f = r.fetchHealth(); return f.Failure == "access closed" })
		if !f.Blocked || !f.PausedUntil.IsZero() || f.NextTry.After(f.LastErrorAt.Add(11*time.Second)) || !strings.Contains(f.NextReason, "connection test") {
			t.Fatalf("%s: status %+v", close.name, f)
		}
		close.reopen()
		i++
		imapP.Deliver("INBOX", arl(i, 300))
		// The next scheduled time, within 10 s: not a 15-minute hold.
		waitFor(t, 15*time.Second, close.name+": the return collected after the provider reopened", func() bool { return r.holds(fmt.Sprintf("<arl-%d@cpam.fr>", i)) })
		if f = r.fetchHealth(); !f.FailingSince.IsZero() || f.Blocked {
			t.Fatalf("%s: status after reopening: %+v", close.name, f)
		}
	}
}

func TestALocalFaultNeverPausesTheProvider(t *testing.T) {
	imapP := imapProvider(t)
	prov := newProvider(t)
	r := newRelay(t, prov, opts{provExtra: every10s(imapP.Addr()), delivery: "first_retry = \"12s\"\nmax_retry = \"1h\"\ntimeout = \"3s\""})
	waitFor(t, 10*time.Second, "the first poll", func() bool { return !r.fetchHealth().LastSuccess.IsZero() })
	pw := filepath.Join(r.dir, "upstream-pw")
	os.Rename(pw, pw+".away")
	// The IMAP session kept for IDLE needs no password: the provider drops
	// it, as providers do, and the next poll must log in again.
	imapP.Off()
	if err := imapP.On(); err != nil {
		t.Fatal(err)
	}
	logins := imapP.Logins()
	conns, _ := prov.Stats()
	submitOne(t, r)
	r.cli("fetch", "dupont")
	f := r.fetchHealth()
	h := r.status().Accounts[0].Health
	waitFor(t, 10*time.Second, "the delivery's failure", func() bool { h = r.status().Accounts[0].Health; return h.Failure != "" })
	for what, got := range map[string]store.Health{"IMAP": f.Health, "SMTP": h} {
		if got.Failure != "local" || !got.PausedUntil.IsZero() || !strings.Contains(got.LastError, "not of the provider") {
			t.Fatalf("%s after the password file went away: %+v", what, got)
		}
	}
	if f.Blocked {
		t.Fatalf("a local fault marked the collection blocked (the practitioner would be told the provider closed): %+v", f)
	}
	if n := imapP.Logins(); n != logins {
		t.Fatalf("IMAP login tried without a password: %d", n-logins)
	}
	if n, _ := prov.Stats(); n != conns {
		t.Fatalf("SMTP provider contacted without a password: %d connections", n-conns)
	}
	// Local faults in a row do not grow into a long wait (a provider's
	// backoff would be 12 s × 2⁵ by now): the next poll is the first
	// scheduled time after first_retry.
	for i := 0; i < 5; i++ {
		r.cli("fetch", "dupont")
	}
	if f = r.fetchHealth(); f.NextTry.After(time.Now().Add(12*time.Second+10*time.Second+time.Second)) || !strings.Contains(f.NextReason, "this box's fault") {
		t.Fatalf("after six local faults in a row the next poll is %s (%s)", f.NextTry, f.NextReason)
	}
	os.Rename(pw+".away", pw)
	waitFor(t, 30*time.Second, "delivery once the file is back", func() bool { return len(prov.Mails()) == 1 })
	waitFor(t, 30*time.Second, "polling once the file is back", func() bool { return r.fetchHealth().FailingSince.IsZero() })
}
