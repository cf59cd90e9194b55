package auth

import (
	"crypto/sha256"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Throttle counts failed logins, and is asked before every attempt, not
// only when a connection opens: connections opened in advance must not
// each get a guess. It keeps failures per address (all logins), per
// (address, login) pair and per login across addresses; attempts still
// being verified count as failures until they end, so an address never has
// more guesses running than it has failures left.
//
// A success clears only its own (address, login) pair. A pair that
// succeeded recently is not refused for its address's failures. A login's
// failures across addresses never refuse anyone: they only make each
// further failure wait longer. Otherwise a few LAN hosts guessing the
// billing login would lock the practice out of it, from a new workstation
// or after a restart that forgot the past successes. IPv6 addresses count
// per /64, the block a host controls.
type Throttle struct {
	Max    int           // failures per window, per address and per pair
	Window time.Duration // how long a failure counts
	Delay  time.Duration // per failure already counted, before answering

	mu      sync.Mutex
	addr    map[netip.Prefix]*tally
	pair    map[pairKey]*tally
	login   map[loginKey]*tally
	success map[pairKey]time.Time
	ended   *sync.Cond // an attempt ended
}

// maxWait bounds the wait before answering a failure, however many
// failures the login has across addresses.
const maxWait = 10 * time.Second

// rememberSuccess is how long a successful (address, login) pair stays
// exempt from its address's and login's blocks: longer than the gaps
// between the billing software's logins (it logs in to send).
const rememberSuccess = 30 * 24 * time.Hour

// maxSuccesses bounds the remembered pairs; the oldest go first.
const maxSuccesses = 4096

type loginKey [sha256.Size]byte // a hash: a client's login may be huge

type pairKey struct {
	a netip.Prefix
	l loginKey
}

type tally struct {
	fails    []time.Time
	inflight int
}

// NewThrottle returns a throttle allowing max failures per window.
func NewThrottle(max int, window, delay time.Duration) *Throttle {
	t := &Throttle{Max: max, Window: window, Delay: delay, addr: map[netip.Prefix]*tally{},
		pair: map[pairKey]*tally{}, login: map[loginKey]*tally{}, success: map[pairKey]time.Time{}}
	t.ended = sync.NewCond(&t.mu)
	return t
}

// Group returns the network a remote address counts in: the address itself
// for IPv4, its /64 for IPv6.
func Group(addr net.Addr) netip.Prefix {
	a := AddrOf(addr)
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// recent drops expired failures and returns how many are left.
func (t *tally) recent(window time.Duration, now time.Time) int {
	if t == nil {
		return 0
	}
	kept := t.fails[:0]
	for _, f := range t.fails {
		if now.Sub(f) < window {
			kept = append(kept, f)
		}
	}
	t.fails = kept
	return len(kept)
}

func get[K comparable](m map[K]*tally, k K) *tally {
	t := m[k]
	if t == nil {
		t = &tally{}
		m[k] = t
	}
	return t
}

// Attempt is one login attempt admitted by Begin; end it with exactly one
// of Fail, Succeed or Cancel.
type Attempt struct {
	t    *Throttle
	a    netip.Prefix
	l    loginKey
	done bool
}

// Begin asks whether login may be tried from addr now. If not, the caller
// must refuse the attempt without verifying the password.
func (t *Throttle) Begin(addr net.Addr, login string) (*Attempt, bool) {
	at := &Attempt{t: t, a: Group(addr), l: sha256.Sum256([]byte(login))}
	pk := pairKey{at.a, at.l}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	// Attempts in flight hold back the next one, which waits for their
	// verdict: an honest burst (ten connections of the billing software)
	// all get in once the first succeeds; guesses are refused once the
	// failures are used up, never verified beyond them.
	for t.refused(pk, now, true) {
		if t.refused(pk, now, false) {
			return nil, false
		}
		t.ended.Wait()
		now = time.Now()
	}
	get(t.addr, at.a).inflight++
	get(t.pair, pk).inflight++
	get(t.login, at.l).inflight++
	return at, true
}

// refused is the one rule: the pair's own failures, or (unless the pair
// succeeded recently) its address's; with inflight, the attempts being
// verified count as failures.
func (t *Throttle) refused(pk pairKey, now time.Time, inflight bool) bool {
	n := func(x *tally) int {
		c := x.recent(t.Window, now)
		if inflight && x != nil {
			c += x.inflight
		}
		return c
	}
	if n(t.pair[pk]) >= t.Max {
		return true
	}
	if now.Sub(t.success[pk]) < rememberSuccess {
		return false
	}
	return n(t.addr[pk.a]) >= t.Max
}

// end takes the attempt out of flight; fail records it as a failure.
func (at *Attempt) end(fail bool, now time.Time) {
	t := at.t
	if at.done {
		panic("auth: Attempt ended twice")
	}
	at.done = true
	pk := pairKey{at.a, at.l}
	defer t.ended.Broadcast()
	for _, x := range []*tally{get(t.addr, at.a), get(t.pair, pk), get(t.login, at.l)} {
		x.inflight--
		if fail {
			x.fails = append(x.fails, now)
		}
	}
}

// Fail records a wrong password and returns how long to wait before
// answering it, and whether the pair is now blocked (the caller closes).
func (at *Attempt) Fail() (wait time.Duration, blocked bool) {
	t, now := at.t, time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	at.end(true, now)
	pk := pairKey{at.a, at.l}
	n := max(t.pair[pk].recent(t.Window, now), t.addr[at.a].recent(t.Window, now), t.login[at.l].recent(t.Window, now))
	return min(time.Duration(n)*t.Delay, maxWait), t.refused(pk, now, false)
}

// Succeed clears the failures of this (address, login) pair only, and
// remembers the pair as trusted.
func (at *Attempt) Succeed() {
	t, now := at.t, time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	at.end(false, now)
	pk := pairKey{at.a, at.l}
	delete(t.pair, pk)
	if len(t.success) >= maxSuccesses {
		var oldest pairKey
		first := true
		for k, when := range t.success {
			if first || when.Before(t.success[oldest]) {
				oldest, first = k, false
			}
		}
		delete(t.success, oldest)
	}
	t.success[pk] = now
}

// Cancel ends an attempt that was neither right nor wrong (not verified).
func (at *Attempt) Cancel() {
	at.t.mu.Lock()
	defer at.t.mu.Unlock()
	at.end(false, time.Now())
}

// Blocked reports whether addr has used up its failures and has no login
// that succeeded recently: such a host is refused as soon as it connects.
func (t *Throttle) Blocked(addr net.Addr) bool {
	a := Group(addr)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addr[a].recent(t.Window, now) < t.Max {
		return false
	}
	for k, when := range t.success {
		if k.a == a && now.Sub(when) < rememberSuccess {
			return false
		}
	}
	return true
}

// prune forgets tallies with nothing left in them, so that a guesser
// cycling through logins does not grow the maps without end.
func (t *Throttle) prune(now time.Time) {
	if len(t.addr)+len(t.pair)+len(t.login) < 1024 {
		return
	}
	pruneMap(t.addr, t.Window, now)
	pruneMap(t.pair, t.Window, now)
	pruneMap(t.login, t.Window, now)
}

func pruneMap[K comparable](m map[K]*tally, window time.Duration, now time.Time) {
	for k, x := range m {
		if x.recent(window, now) == 0 && x.inflight == 0 {
			delete(m, k)
		}
	}
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
