package e2e_test

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// submitOne submits one mail with a Message-ID of its own (the same bytes
// twice would be a resubmission, queued once): <m-0@billing.test> first,
// then <m1-0@...>, <m2-0@...>.
func submitOne(t *testing.T, r *relay) {
	t.Helper()
	prefix := "m"
	if r.submitted > 0 {
		prefix += itoa(int64(r.submitted))
	}
	r.submitted++
	if res := r.python(pyArgs{"prefix": prefix}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission: %+v", res)
	}
}

func only(t *testing.T, r *relay) store.Message {
	t.Helper()
	q := r.queue()
	if len(q) != 1 {
		t.Fatalf("%d messages in the queue, want 1", len(q))
	}
	return q[0]
}

func TestTemporaryFailureIsRetriedThenDelivered(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.TempFail)
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a deferral", func() bool { return only(t, r).State == store.Deferred })
	m := only(t, r)
	if !strings.Contains(m.LastError, "451") || m.NextAttempt.Before(m.LastAttempt) {
		t.Fatalf("deferral not explained: %+v", m)
	}
	prov.SetMode(demo.Normal)
	waitFor(t, 10*time.Second, "delivery after retry", func() bool { return only(t, r).State == store.Sent })
	if n := len(prov.Mails()); n != 1 {
		t.Fatalf("provider got %d copies", n)
	}
	if only(t, r).Attempts < 2 {
		t.Fatal("delivered on the first attempt: the 451 was ignored")
	}
}

// dsnParts parses a DSN and returns its French text and its delivery-status part.
func dsnParts(t *testing.T, raw []byte) (subject, human, status string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("not an RFC 3464 report: %s", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch p.Header.Get("Content-Type") {
		case "text/plain; charset=utf-8":
			b, _ = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
			human = string(b)
		case "message/delivery-status":
			status = string(b)
		}
	}
	return
}

func TestPermanentRefusalBouncesInFrenchToTheSender(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.PermFail)
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a bounce", func() bool { return only(t, r).State == store.Bounced })
	mb, body := r.mailbox()
	if len(mb) != 1 || mb[0].Origin != "bounce" {
		t.Fatalf("mailbox: %+v", mb)
	}
	subject, human, status := dsnParts(t, body(mb[0].ID))
	if !strings.HasPrefix(subject, "Message non remis : lot m-0") {
		t.Fatalf("subject %q", subject)
	}
	for _, want := range []string{"n'a pas pu être remis : votre messagerie a refusé", "(refus définitif)", "renvoyez-le", "Détail technique : ", "550"} {
		if !strings.Contains(human, want) {
			t.Fatalf("French text lacks %q:\n%s", want, human)
		}
	}
	for _, want := range []string{"Action: failed", "Status: 5.1.1", "Final-Recipient: rfc822; " + other} {
		if !strings.Contains(status, want) {
			t.Fatalf("delivery-status lacks %q:\n%s", want, status)
		}
	}
}

func TestLifetimeOverBouncesAndDelayNoticeComesFirst(t *testing.T) {
	prov := newProvider(t)
	prov.Off()
	r := newRelay(t, prov, opts{delivery: "first_retry = \"500ms\"\nmax_retry = \"1s\"\ntimeout = \"3s\"\ndelay_notice = \"1s\"\nlifetime = \"4s\""})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a delay notice", func() bool { mb, _ := r.mailbox(); return len(mb) == 1 })
	if st := only(t, r).State; st != store.Deferred {
		t.Fatalf("after the notice the mail is %s, want deferred", st)
	}
	mb, body := r.mailbox()
	subject, human, status := dsnParts(t, body(mb[0].ID))
	if !strings.HasPrefix(subject, "Message en attente d'envoi") || !strings.Contains(human, "Ne renvoyez pas ce message") || !strings.Contains(status, "Action: delayed") {
		t.Fatalf("delay notice: %q\n%s\n%s", subject, human, status)
	}
	waitFor(t, 15*time.Second, "a bounce at the end of the lifetime", func() bool { return only(t, r).State == store.Bounced })
	mb, body = r.mailbox()
	if len(mb) != 2 {
		t.Fatalf("%d mailbox entries, want notice + bounce", len(mb))
	}
	_, _, status = dsnParts(t, body(mb[1].ID))
	if !strings.Contains(status, "Status: 4.4.7") || !strings.Contains(status, "Action: failed") {
		t.Fatalf("expiry DSN:\n%s", status)
	}
	if len(prov.Mails()) != 0 {
		t.Fatal("the provider was off, yet got mail")
	}
}

func TestConnectionLostAfterDotIsHeldAndNeverResent(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.AcceptAndDrop) // the provider keeps the mail but its 250 never arrives
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "an uncertain hold", func() bool { return only(t, r).State == store.Held })
	m := only(t, r)
	if !strings.HasPrefix(m.HoldReason, "uncertain") || !strings.Contains(m.HoldReason, "after the final dot") {
		t.Fatalf("hold reason %q", m.HoldReason)
	}
	prov.SetMode(demo.Normal)
	time.Sleep(4 * time.Second) // several retry periods
	if n := len(prov.Mails()); n != 1 {
		t.Fatalf("the provider has %d copies: an uncertain mail was resent", n)
	}
	out, code := r.cli("queue", "show", itoa(m.ID))
	if code != 0 || !strings.Contains(out, "may already have this mail") {
		t.Fatalf("queue show: %d\n%s", code, out)
	}
	// A release without --confirm is refused and says why: the fund may
	// get the lot twice.
	if out, code := r.cli("queue", "release", itoa(m.ID)); code == 0 || !strings.Contains(out, "--confirm") || !strings.Contains(out, "DOUBLON") {
		t.Fatalf("an uncertain mail was released without --confirm: %d\n%s", code, out)
	}
	time.Sleep(2 * time.Second)
	if n := len(prov.Mails()); n != 1 || only(t, r).State != store.Held {
		t.Fatalf("after a refused release: %d copies, state %s", n, only(t, r).State)
	}
	// The technician checked the sent folder and decides to send again.
	if out, code := r.cli("queue", "release", itoa(m.ID), "--confirm"); code != 0 {
		t.Fatalf("release: %s", out)
	}
	waitFor(t, 10*time.Second, "delivery after release", func() bool { return only(t, r).State == store.Sent })
	if n := len(prov.Mails()); n != 2 {
		t.Fatalf("provider has %d copies after a release, want 2", n)
	}
}

func TestProviderHangingAfterDotIsHeldNotResent(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.HangAfterDot)
	r := newRelay(t, prov, opts{delivery: "first_retry = \"1s\"\nmax_retry = \"2s\"\ntimeout = \"1s\""})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "an uncertain hold", func() bool { return only(t, r).State == store.Held })
	prov.SetMode(demo.Normal)
	time.Sleep(3 * time.Second)
	if st := only(t, r).State; st != store.Held {
		t.Fatalf("uncertain mail went on to %s", st)
	}
}

func TestProviderHangingAtGreetingDefers(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.HangAtGreet)
	r := newRelay(t, prov, opts{delivery: "first_retry = \"1s\"\nmax_retry = \"2s\"\ntimeout = \"1s\""})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a deferral", func() bool { return only(t, r).State == store.Deferred })
	if m := only(t, r); !strings.Contains(m.LastError, "did not answer in time") {
		t.Fatalf("last error %q", m.LastError)
	}
	prov.SetMode(demo.Normal)
	waitFor(t, 10*time.Second, "delivery", func() bool { return only(t, r).State == store.Sent })
}

func TestUnreachableProviderStatusSaysSinceWhen(t *testing.T) {
	prov := newProvider(t)
	prov.Off()
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	defer func() {
		if t.Failed() {
			t.Log(r.Log())
			t.Logf("%+v", r.queue())
		}
	}()
	waitFor(t, 10*time.Second, "a failure in status", func() bool { return !r.status().Accounts[0].Health.FailingSince.IsZero() })
	out, code := r.cli("status")
	if code != 0 || !strings.Contains(out, "FAILING since") || !strings.Contains(out, "unreachable") || !strings.Contains(out, "1 waiting") {
		t.Fatalf("status (%d):\n%s", code, out)
	}
	prov.On()
	waitFor(t, 10*time.Second, "delivery", func() bool { return only(t, r).State == store.Sent })
	out, _ = r.cli("status")
	if !strings.Contains(out, "provider: OK") {
		t.Fatalf("status after recovery:\n%s", out)
	}
}

func TestRefusedUpstreamLoginPausesInsteadOfHammering(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.AuthFail)
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a refused login in status", func() bool { return r.status().Accounts[0].Health.LastError != "" })
	submitOne(t, r)
	submitOne(t, r)
	time.Sleep(3 * time.Second) // first_retry is 1s: without the pause this would be several logins
	if _, auths := prov.Stats(); auths != 1 {
		t.Fatalf("%d upstream logins after a refusal, want 1", auths)
	}
	out, _ := r.cli("status")
	if !strings.Contains(out, "credentials rejected") || !strings.Contains(out, "paused until") {
		t.Fatalf("status does not explain the refusal:\n%s", out)
	}
	h := r.status().Accounts[0].Health
	if time.Until(h.PausedUntil) < 50*time.Minute {
		t.Fatalf("paused only until %v", h.PausedUntil)
	}
}

func TestOneUpstreamConnectionCarriesABurst(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	res := r.python(pyArgs{"count": 30, "threads": 5})
	for _, x := range res {
		if x.Code != 250 {
			t.Fatalf("%+v", x)
		}
	}
	waitFor(t, 20*time.Second, "30 deliveries", func() bool { return len(prov.Mails()) == 30 })
	conns, auths := prov.Stats()
	if conns > 3 || auths > 3 {
		t.Fatalf("30 mails took %d connections and %d logins", conns, auths)
	}
	if max := prov.MaxConcurrent(); max != 1 {
		t.Fatalf("%d connections at once to one account's provider", max)
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// While the provider fails, new mail must wait for the account's next try:
// a fresh connection per arriving lot is the burst providers punish.
func TestNewMailDuringAnOutageDoesNotHammerTheProvider(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.Unavailable)
	r := newRelay(t, prov, opts{delivery: "first_retry = \"30s\"\nmax_retry = \"1m\"\ntimeout = \"3s\""})
	for i := 0; i < 6; i++ {
		submitOne(t, r)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if conns, _ := prov.Stats(); conns != 1 {
		t.Fatalf("6 mails during an outage made %d connection attempts, want 1", conns)
	}
	st := r.status().Accounts[0].Health
	if st.NextTry.IsZero() || time.Until(st.NextTry) < 20*time.Second {
		t.Fatalf("next try %v, want about 30s away", st.NextTry)
	}
	out, _ := r.cli("status")
	if !strings.Contains(out, "next try:") || !strings.Contains(out, "421") {
		t.Fatalf("status:\n%s", out)
	}
}
