package auth_test

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
)

func TestHashVerifiesOnlyItsPassword(t *testing.T) {
	h, err := auth.Hash("correct horse")
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("%q %v", h, err)
	}
	if ok, err := auth.Verify(h, "correct horse"); !ok || err != nil {
		t.Fatal("right password refused")
	}
	if ok, _ := auth.Verify(h, "correct horse "); ok {
		t.Fatal("wrong password accepted")
	}
	for _, bad := range []string{"", "secret", "$argon2id$v=19$m=0,t=1,p=1$YQ$YQ", "$argon2i$v=19$m=8,t=1,p=1$YQ$YQ", "$argon2id$v=19$m=8,t=1,p=1$!!$YQ"} {
		if _, err := auth.Verify(bad, "x"); err == nil {
			t.Errorf("%q read as a hash", bad)
		}
	}
}

func TestCheckerKnowsEachAccount(t *testing.T) {
	h1, _ := auth.Hash("pw1")
	h2, _ := auth.Hash("pw2")
	c := auth.NewChecker(map[string]string{"dupont": h1, "martin": h2})
	for _, tc := range []struct {
		login, pw string
		want      bool
	}{{"dupont", "pw1", true}, {"dupont", "pw1", true}, {"dupont", "pw2", false}, {"martin", "pw2", true}, {"nobody", "pw1", false}} {
		if got, err := c.Check(tc.login, tc.pw); got != tc.want || err != nil {
			t.Errorf("%s/%s: %v", tc.login, tc.pw, got)
		}
	}
}

func TestThrottleSlowsThenBlocks(t *testing.T) {
	th := auth.NewThrottle(3, time.Minute, 100*time.Millisecond)
	a := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 1000}
	other := &net.TCPAddr{IP: net.ParseIP("192.168.1.6"), Port: 1000}
	fail := func(addr net.Addr, login string) (time.Duration, bool) {
		t.Helper()
		at, ok := th.Begin(addr, login)
		if !ok {
			t.Fatalf("%s/%s refused too early", addr, login)
		}
		return at.Fail()
	}
	w1, b1 := fail(a, "dupont")
	w2, b2 := fail(a, "dupont")
	if w2 <= w1 || b1 || b2 {
		t.Fatalf("waits %v %v blocked %v %v", w1, w2, b1, b2)
	}
	if _, b3 := fail(a, "dupont"); !b3 || !th.Blocked(a) {
		t.Fatal("third failure did not block")
	}
	if _, ok := th.Begin(a, "dupont"); ok {
		t.Fatal("a blocked pair may still try")
	}
	if th.Blocked(other) {
		t.Fatal("another address is blocked too")
	}
}

func TestThrottleCountsAttemptsInFlight(t *testing.T) {
	th := auth.NewThrottle(3, time.Minute, 0)
	a := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 1000}
	var held []*auth.Attempt
	for i := 0; i < 3; i++ {
		at, ok := th.Begin(a, "dupont")
		if !ok {
			t.Fatal("refused before any failure")
		}
		held = append(held, at)
	}
	// A fourth waits for the verdicts of the three in flight: they fail, so
	// it is refused unverified.
	fourth := make(chan bool)
	go func() { _, ok := th.Begin(a, "dupont"); fourth <- ok }()
	for _, at := range held {
		at.Fail()
	}
	if <-fourth {
		t.Fatal("a fourth guess got through while three were being verified")
	}
}

func TestHonestBurstWaitsForTheFirstVerdict(t *testing.T) {
	th := auth.NewThrottle(3, time.Minute, 0)
	a := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 1000}
	first, _ := th.Begin(a, "dupont")
	var wg sync.WaitGroup
	var in atomic.Int32
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if at, ok := th.Begin(a, "dupont"); ok {
				in.Add(1)
				at.Succeed()
			}
		}()
	}
	first.Succeed()
	wg.Wait()
	if in.Load() != 10 {
		t.Fatalf("%d of 10 simultaneous right logins got in", in.Load())
	}
}

func TestAnotherLoginsSuccessDoesNotClearFailures(t *testing.T) {
	th := auth.NewThrottle(3, time.Minute, 0)
	a := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 1000}
	for i := 0; i < 5; i++ {
		if at, ok := th.Begin(a, "dupont"); ok {
			at.Fail()
		}
		at, ok := th.Begin(a, "dupont-mobile")
		if !ok {
			t.Fatal("the phone, which knows its password, was refused")
		}
		at.Succeed()
	}
	if _, ok := th.Begin(a, "dupont"); ok {
		t.Fatal("the phone's successes cleared the guesses at the billing login")
	}
}

// Guesses at the billing login from many hosts slow each further failure
// down, but never lock the login: a new workstation, or the billing one
// after a restart that forgot past successes, still logs in.
func TestGuessesFromManyHostsNeverLockTheLoginOut(t *testing.T) {
	th := auth.NewThrottle(3, time.Minute, time.Second)
	var wait time.Duration
	for i := 0; i < 20; i++ { // a guesser hopping addresses
		g := &net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(i)), Port: 1}
		if at, ok := th.Begin(g, "dupont"); ok {
			wait, _ = at.Fail()
		}
	}
	if wait != 10*time.Second {
		t.Fatalf("the 20th failure on one login across addresses waits %v, want the 10s cap", wait)
	}
	at, ok := th.Begin(&net.TCPAddr{IP: net.ParseIP("192.168.1.77"), Port: 1}, "dupont")
	if !ok {
		t.Fatal("a new workstation with the right password is locked out by other hosts' guesses")
	}
	at.Succeed()
}

func TestIPv6CountsPerSlash64(t *testing.T) {
	th := auth.NewThrottle(2, time.Minute, 0)
	for _, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2"} {
		at, _ := th.Begin(&net.TCPAddr{IP: net.ParseIP(ip)}, "x"+ip)
		at.Fail()
	}
	if _, ok := th.Begin(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9")}, "y"); ok {
		t.Fatal("a new address in the same /64 gets fresh guesses")
	}
	if _, ok := th.Begin(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1")}, "y"); !ok {
		t.Fatal("another /64 is blocked too")
	}
}

func TestLogNameIsShortAndQuotedInTheLog(t *testing.T) {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("smtp login failed", "login", auth.LogName(strings.Repeat("a\n", 1<<20)))
	line := b.String()
	if len(line) > 250 || strings.Count(line, "\n") != 1 || !strings.Contains(line, `login="a\na\n`) {
		t.Fatalf("%d bytes: %.200q", len(line), line)
	}
	b.Reset()
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "login", auth.LogName("dupont"))
	if !strings.Contains(b.String(), " login=dupont") {
		t.Fatalf("a plain name is quoted twice: %s", b.String())
	}
}

func TestAllowlistMatchesNetworks(t *testing.T) {
	l := auth.Allowlist{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::1/128")}
	for addr, want := range map[string]bool{"192.168.3.4:1": true, "10.0.0.1:1": false, "[::1]:5": true, "[::ffff:192.168.0.9]:2": true} {
		ap := netip.MustParseAddrPort(addr)
		if got := l.Allows(net.TCPAddrFromAddrPort(ap)); got != want {
			t.Errorf("%s: %v", addr, got)
		}
	}
}

func TestSimultaneousLoginsShareOneHashComputation(t *testing.T) {
	h, _ := auth.Hash("pw")
	c := auth.NewChecker(map[string]string{"dupont": h})
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok2, _ := c.Check("dupont", "pw"); ok2 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 20 {
		t.Fatalf("%d of 20 logins succeeded", ok.Load())
	}
	if n := c.Hashed(); n != 1 {
		t.Fatalf("20 simultaneous identical logins ran argon2 %d times, want 1", n)
	}
	// Different passwords are each computed, and a wrong one still fails.
	if bad, _ := c.Check("dupont", "other"); bad || c.Hashed() != 2 {
		t.Fatalf("wrong password: hashed %d", c.Hashed())
	}
}

func TestFullCheckQueueRefusesUnchecked(t *testing.T) {
	h, _ := auth.Hash("pw")
	c := auth.NewChecker(map[string]string{"dupont": h})
	var wg sync.WaitGroup
	var busy atomic.Int64
	start := make(chan struct{})
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := c.Check("dupont", "guess"+strconv.Itoa(i)); errors.Is(err, auth.ErrBusy) {
				busy.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if busy.Load() == 0 || c.Hashed()+busy.Load() != 100 {
		t.Fatalf("100 simultaneous guesses: %d refused busy, %d hashed", busy.Load(), c.Hashed())
	}
}
