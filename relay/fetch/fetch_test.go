package fetch_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/fetch"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

var ctx = context.Background()

func provider(t *testing.T) *demo.IMAPProvider {
	p, err := demo.StartIMAP("127.0.0.1:0", "jean.dupont", "provider-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func account(t *testing.T, addr string, mod func(*config.Provider)) config.Account {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("provider-pw\n"), 0o600)
	var u config.Upstream
	u.UnmarshalText([]byte("imap://" + addr))
	p := config.Provider{IMAP: u, Username: "jean.dupont", PasswordFile: pw, Insecure: true, Folders: []string{"INBOX", "SPAM"}, KeepUpstream: config.Keep{Forever: true}}
	if mod != nil {
		mod(&p)
	}
	return config.Account{Name: "dupont", Upstream: p}
}

func poller(t *testing.T, acct config.Account, smtpWorks bool) (*fetch.Poller, *store.Store) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opt := config.Defaults().Delivery
	opt.Timeout = config.Duration(time.Second)
	if smtpWorks { // as the delivery worker records it: fetch reads it from the store
		if err := st.SetHealthAsync(store.Health{Account: acct.Name, LastSuccess: time.Now()}).Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return fetch.NewPoller(acct, opt, st, slog.New(slog.DiscardHandler)), st
}

func mail(i int, size int) []byte {
	return []byte(fmt.Sprintf("From: <noemie@cpam.fr>\r\nSubject: ARL %d\r\nMessage-ID: <%d@cpam.fr>\r\n\r\n%s\r\n", i, i, strings.Repeat("x", size)))
}

func TestPollStoresEachMessageOnceAndLeavesItUnread(t *testing.T) {
	prov := provider(t)
	for i := 0; i < 3; i++ {
		prov.Deliver("INBOX", mail(i, 100))
	}
	prov.Deliver("SPAM", mail(9, 100)) // acknowledgements sometimes land in spam
	p, st := poller(t, account(t, prov.Addr(), nil), false)
	res, err := p.PollNow(ctx)
	if err != nil || res.Fetched != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	mb, _ := st.Mailbox("dupont")
	if len(mb) != 4 || mb[3].Folder != "SPAM" || mb[0].Subject != "ARL 0" {
		t.Fatalf("%+v", mb)
	}
	if b, _ := st.MailboxBody(mb[1].ID); !bytes.Equal(b, mail(1, 100)) {
		t.Fatal("stored bytes differ from upstream")
	}
	if res, _ := p.PollNow(ctx); res.Fetched != 0 || res.Duplicates != 0 {
		t.Fatalf("second poll: %+v", res)
	}
	prov.Deliver("INBOX", mail(3, 100))
	if res, _ := p.PollNow(ctx); res.Fetched != 1 {
		t.Fatalf("third poll: %+v", res)
	}
	// Nothing was marked \Seen upstream (BODY.PEEK[]).
	c, err := imapclient.DialInsecure(prov.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Login("jean.dupont", "provider-pw").Wait()
	c.Select("INBOX", nil).Wait()
	msgs, _ := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true}).Collect()
	for _, m := range msgs {
		for _, f := range m.Flags {
			if f == imap.FlagSeen {
				t.Fatal("a message was marked read upstream")
			}
		}
	}
	if h := p.Health(); h.FetchedTotal != 5 || h.LastSuccess.IsZero() {
		t.Fatalf("health %+v", h)
	}
}

func TestUIDValidityChangeRereadsTheFolderWithoutDuplicates(t *testing.T) {
	prov := provider(t)
	var raws [][]byte
	for i := 0; i < 3; i++ {
		raws = append(raws, mail(i, 50))
		prov.Deliver("INBOX", raws[i])
	}
	p, st := poller(t, account(t, prov.Addr(), nil), false)
	p.PollNow(ctx)
	if err := prov.Renumber("INBOX", append(raws, mail(7, 50))); err != nil {
		t.Fatal(err)
	}
	res, err := p.PollNow(ctx)
	if err != nil || res.Fetched != 1 || res.Duplicates != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	if mb, _ := st.Mailbox("dupont"); len(mb) != 4 {
		t.Fatalf("%d messages", len(mb))
	}
	if h := p.Health(); !strings.Contains(h.Note, "UIDVALIDITY of INBOX changed") {
		t.Fatalf("the change is not reported: %+v", h)
	}
}

func TestRefusedLoginPausesAndSaysWhy(t *testing.T) {
	prov := provider(t)
	prov.RefuseLogins(true)
	p, _ := poller(t, account(t, prov.Addr(), nil), true)
	_, err := p.PollNow(ctx)
	if err == nil || !strings.Contains(err.Error(), "credentials rejected") || !strings.Contains(err.Error(), "password change") {
		t.Fatalf("%v", err)
	}
	for i := 0; i < 3; i++ {
		p.Scheduled(ctx)
	}
	if n := prov.Logins(); n != 1 {
		t.Fatalf("%d logins after a refusal, want 1 (a long pause)", n)
	}
	if h := p.Health(); time.Until(h.PausedUntil) < 50*time.Minute {
		t.Fatalf("paused until %v", h.PausedUntil)
	}
	// The technician's `fetch` still tries at once.
	prov.RefuseLogins(false)
	if _, err := p.PollNow(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClosedIMAPAccessIsNamedAsSuch(t *testing.T) {
	prov := provider(t)
	prov.DisableIMAP(true)
	p, _ := poller(t, account(t, prov.Addr(), nil), true)
	if _, err := p.PollNow(ctx); err == nil || !strings.Contains(err.Error(), "closed IMAP access") {
		t.Fatalf("[UNAVAILABLE]: %v", err)
	}
	prov.DisableIMAP(false)
	prov.Off()
	if _, err := p.PollNow(ctx); err == nil || !strings.Contains(err.Error(), "closed IMAP access") || !strings.Contains(err.Error(), "SMTP works") {
		t.Fatalf("port closed while SMTP works: %v", err)
	}
	p2, _ := poller(t, account(t, prov.Addr(), nil), false)
	if _, err := p2.PollNow(ctx); err == nil || strings.Contains(err.Error(), "closed IMAP access") {
		t.Fatalf("port closed, SMTP down too: %v", err)
	}
}

func TestKeepUpstreamDeletesOnlyWhatIsSafeLocally(t *testing.T) {
	prov := provider(t)
	prov.Deliver("INBOX", mail(1, 10))
	prov.Deliver("INBOX", mail(2, 10))
	p, st := poller(t, account(t, prov.Addr(), func(u *config.Provider) { u.KeepUpstream = config.Keep{For: 300 * time.Millisecond} }), false)
	if res, _ := p.PollNow(ctx); res.Fetched != 2 || res.Deleted != 0 {
		t.Fatalf("first poll %+v", res)
	}
	time.Sleep(400 * time.Millisecond)
	prov.Deliver("INBOX", mail(3, 10))
	res, err := p.PollNow(ctx)
	if err != nil || res.Fetched != 1 || res.Deleted != 2 {
		t.Fatalf("second poll %+v %v", res, err)
	}
	if n := prov.Count("INBOX"); n != 1 {
		t.Fatalf("%d messages upstream, want the fresh one only", n)
	}
	if mb, _ := st.Mailbox("dupont"); len(mb) != 3 {
		t.Fatal("local copies lost")
	}
}

// proxy forwards to target; after `after` bytes from the server it either
// cuts the connection or stalls. Zero after: a clean proxy.
type proxy struct {
	l     net.Listener
	mu    sync.Mutex
	after int
	stall bool
}

func newProxy(t *testing.T, target string) *proxy {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	p := &proxy{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			after, stall := p.after, p.stall
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				defer c.Close()
				if after == 0 {
					io.Copy(c, s)
					return
				}
				io.CopyN(c, s, int64(after))
				if stall {
					time.Sleep(time.Minute)
				}
				s.Close()
			}()
		}
	}()
	return p
}

func (p *proxy) set(after int, stall bool) {
	p.mu.Lock()
	p.after, p.stall = after, stall
	p.mu.Unlock()
}

func TestConnectionCutInAFetchStoresNothingHalfReceived(t *testing.T) {
	prov := provider(t)
	for i := 0; i < 5; i++ {
		prov.Deliver("INBOX", mail(i, 100_000))
	}
	px := newProxy(t, prov.Addr())
	px.set(250_000, false) // two and a half messages, then the line drops
	p, st := poller(t, account(t, px.l.Addr().String(), nil), false)
	res, err := p.PollNow(ctx)
	if err == nil {
		t.Fatal("the cut went unnoticed")
	}
	mb, _ := st.Mailbox("dupont")
	for _, e := range mb {
		if e.Size != int64(len(mail(0, 100_000))) {
			t.Fatalf("a message was stored cut: %d bytes", e.Size)
		}
	}
	if len(mb) != res.Fetched || len(mb) > 2 {
		t.Fatalf("%d stored, %d reported", len(mb), res.Fetched)
	}
	px.set(0, false)
	if res, err := p.PollNow(ctx); err != nil || len(mb)+res.Fetched != 5 || res.Duplicates != 0 {
		t.Fatalf("after the cut: %+v %v", res, err)
	}
}

func TestHangingProviderIsBoundedAndReported(t *testing.T) {
	prov := provider(t)
	prov.Deliver("INBOX", mail(1, 100_000))
	px := newProxy(t, prov.Addr())
	px.set(2_000, true)
	p, _ := poller(t, account(t, px.l.Addr().String(), nil), false)
	start := time.Now()
	_, err := p.PollNow(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("a hanging provider held the poll %v", d)
	}
}

func TestMissingFolderIsReportedAndTheOthersAreStillFetched(t *testing.T) {
	prov := provider(t)
	prov.Deliver("INBOX", mail(1, 10))
	p, _ := poller(t, account(t, prov.Addr(), func(u *config.Provider) { u.Folders = []string{"Junk", "INBOX"} }), false)
	res, err := p.PollNow(ctx)
	if err != nil || res.Fetched != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if h := p.Health(); !strings.Contains(h.Note, "folder Junk not found") {
		t.Fatalf("note %q", h.Note)
	}
}

func tlsAccount(t *testing.T, ca *demo.CA, scheme, addr string, trust bool) config.Account {
	return account(t, addr, func(u *config.Provider) {
		u.IMAP.UnmarshalText([]byte(scheme + "://" + addr))
		u.Insecure = false
		u.Folders = []string{"INBOX"}
		if trust {
			f := filepath.Join(t.TempDir(), "ca.pem")
			os.WriteFile(f, ca.CertPEM, 0o644)
			u.CAFile = f
		}
	})
}

func TestIMAPOverTLSIsVerifiedAndUntrustedServersGetNoPassword(t *testing.T) {
	ca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, implicit := range []bool{true, false} {
		scheme := map[bool]string{true: "imaps", false: "imap"}[implicit]
		prov, err := demo.StartIMAPTLS("127.0.0.1:0", "jean.dupont", "provider-pw", ca.Server, implicit)
		if err != nil {
			t.Fatal(err)
		}
		defer prov.Close()
		prov.Deliver("INBOX", mail(1, 10))
		p, _ := poller(t, tlsAccount(t, ca, scheme, prov.Addr(), false), false)
		if _, err := p.PollNow(ctx); err == nil || !strings.Contains(err.Error(), "could not be verified") || prov.Logins() != 0 {
			t.Fatalf("%s untrusted: %v (logins %d)", scheme, err, prov.Logins())
		}
		p, _ = poller(t, tlsAccount(t, ca, scheme, prov.Addr(), true), false)
		if res, err := p.PollNow(ctx); err != nil || res.Fetched != 1 {
			t.Fatalf("%s with ca_file: %+v %v", scheme, res, err)
		}
	}
}

func TestIdleFetchesNewMailBeforeTheNextPollOnOneConnection(t *testing.T) {
	prov := provider(t)
	prov.Deliver("INBOX", mail(1, 10))
	acct := account(t, prov.Addr(), func(u *config.Provider) { u.Poll.UnmarshalText([]byte("@every 1h")) })
	p, st := poller(t, acct, false)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	count := func() int { n, _ := st.MailboxCount("dupont"); return n }
	deadline := time.Now().Add(10 * time.Second)
	for count() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for i := 2; i <= 4; i++ {
		time.Sleep(300 * time.Millisecond) // let IDLE start
		prov.Deliver("INBOX", mail(i, 10))
		deadline := time.Now().Add(70 * time.Second) // at worst one IDLE restart
		for count() < i && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if count() < i {
			t.Fatalf("message %d not fetched while idling (poll every hour)", i)
		}
	}
	if n := prov.Logins(); n != 1 {
		t.Fatalf("%d logins: IDLE and polls must share one connection", n)
	}
	// The technician's fetch goes through the loop's connection too.
	prov.Deliver("SPAM", mail(9, 10))
	if res, err := p.PollNow(ctx); err != nil || res.Fetched != 1 || prov.Logins() != 1 {
		t.Fatalf("fetch while idling: %+v %v (logins %d)", res, err, prov.Logins())
	}
}

// Two announcements in a row while idling once deadlocked the loop.
func TestIdleSurvivesAnnouncementsInQuickSuccession(t *testing.T) {
	prov := provider(t)
	acct := account(t, prov.Addr(), func(u *config.Provider) { u.Poll.UnmarshalText([]byte("@every 1h")) })
	p, st := poller(t, acct, false)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	time.Sleep(500 * time.Millisecond)
	for round := 0; round < 5; round++ {
		for i := 0; i < 3; i++ {
			prov.Deliver("INBOX", mail(round*10+i, 10))
		}
		ctx2, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := p.PollNow(ctx2)
		cancel()
		if err != nil {
			t.Fatalf("round %d: the loop no longer answers: %v", round, err)
		}
	}
	if n, _ := st.MailboxCount("dupont"); n != 15 {
		t.Fatalf("%d stored, want 15", n)
	}
}
