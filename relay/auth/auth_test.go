package auth_test

import (
	"net"
	"net/netip"
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
		if got := c.Check(tc.login, tc.pw); got != tc.want {
			t.Errorf("%s/%s: %v", tc.login, tc.pw, got)
		}
	}
}

func TestThrottleSlowsThenBlocks(t *testing.T) {
	th := auth.NewThrottle(3, time.Minute, 100*time.Millisecond)
	a := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 1000}
	other := &net.TCPAddr{IP: net.ParseIP("192.168.1.6"), Port: 1000}
	w1, b1 := th.Fail(a)
	w2, b2 := th.Fail(a)
	if w2 <= w1 || b1 || b2 {
		t.Fatalf("waits %v %v blocked %v %v", w1, w2, b1, b2)
	}
	if _, b3 := th.Fail(a); !b3 || !th.Blocked(a) {
		t.Fatal("third failure did not block")
	}
	if th.Blocked(other) {
		t.Fatal("another address is blocked too")
	}
	th.Succeed(a)
	if th.Blocked(a) {
		t.Fatal("success did not clear")
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
			if c.Check("dupont", "pw") {
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
	if c.Check("dupont", "other") || c.Hashed() != 2 {
		t.Fatalf("wrong password: hashed %d", c.Hashed())
	}
}
