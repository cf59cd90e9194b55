package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Throttle counts failed logins per source address. Each failure is
// answered later than the one before; past the limit, the address is
// blocked for the window, so that a guesser gets a handful of tries an hour.
type Throttle struct {
	Max    int
	Window time.Duration
	Delay  time.Duration // per failure already counted

	mu    sync.Mutex
	fails map[netip.Addr][]time.Time
}

// NewThrottle returns a throttle allowing max failures per window.
func NewThrottle(max int, window, delay time.Duration) *Throttle {
	return &Throttle{Max: max, Window: window, Delay: delay, fails: map[netip.Addr][]time.Time{}}
}

func (t *Throttle) recent(a netip.Addr, now time.Time) []time.Time {
	kept := t.fails[a][:0]
	for _, f := range t.fails[a] {
		if now.Sub(f) < t.Window {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		delete(t.fails, a)
		return nil
	}
	t.fails[a] = kept
	return kept
}

// Blocked reports whether addr has used up its failures.
func (t *Throttle) Blocked(addr net.Addr) bool {
	a := AddrOf(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.recent(a, time.Now())) >= t.Max
}

// Fail records a failure from addr and returns how long to wait before
// answering it, and whether the address is now blocked.
func (t *Throttle) Fail(addr net.Addr) (wait time.Duration, blocked bool) {
	a := AddrOf(addr)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.recent(a, now))
	t.fails[a] = append(t.fails[a], now)
	return time.Duration(n+1) * t.Delay, n+1 >= t.Max
}

// Succeed forgets an address's failures.
func (t *Throttle) Succeed(addr net.Addr) {
	t.mu.Lock()
	delete(t.fails, AddrOf(addr))
	t.mu.Unlock()
}

// AddrOf returns the IP of a connection's remote address (IPv4-mapped IPv6 unmapped).
func AddrOf(addr net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(addr.String())
	return a.Unmap()
}

// Allowlist holds the networks that may connect at all.
type Allowlist []netip.Prefix

// Allows reports whether a remote address is inside one of the networks.
func (l Allowlist) Allows(addr net.Addr) bool {
	a := AddrOf(addr)
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
