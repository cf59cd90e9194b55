// Package auth checks local logins: argon2id password hashes, a throttle on
// repeated failures from one address, and the source-address allowlist.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Parameters from OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): cheap
// enough for a Raspberry Pi, far too costly for an offline guesser.
const (
	argonMemory = 19 * 1024
	argonTime   = 2
	argonLanes  = 1
	argonKeyLen = 32
)

var b64 = base64.RawStdEncoding

// Hash returns a PHC-format argon2id hash of password, for the config's password_hash.
func Hash(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonLanes, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonLanes, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// ErrBadHash is returned for a password_hash this package cannot read.
var ErrBadHash = errors.New("password_hash is not an argon2id hash made by `sesam-relay passwd`")

// ExampleHash is the placeholder the packaged config shows in its
// examples: well formed, but nobody knows its password. It is refused.
const ExampleHash = "$argon2id$v=19$m=19456,t=2,p=1$c2VzYW1yZWxheXNhbHQ$ZXhhbXBsZWhhc2hvbmx5ZXhhbXBsZWhhc2g"

// ErrExampleHash is the example's placeholder pasted as a real hash.
var ErrExampleHash = errors.New("password_hash is the example's placeholder, not a hash: run `sesam-relay passwd` and paste what it prints")

// Verify reports whether password matches a PHC argon2id hash.
func Verify(hash, password string) (bool, error) {
	if hash == ExampleHash {
		return false, ErrExampleHash
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, ErrBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 4<<20 {
		return false, ErrBadHash
	}
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Checker verifies logins against a fixed table of hashes. It remembers
// recent successes (as an HMAC under a per-process key, never the password)
// so that billing software that logs in once per mail does not pay an
// argon2 computation each time.
//
// Each argon2 check holds 19 MiB for its duration, so checks are bounded:
// identical ones in flight share one computation (ten workstations logging
// in at once as the same account), and at most maxHashing run at a time, so
// that a burst of logins, honest or not, cannot exhaust a small appliance's
// memory.
type Checker struct {
	hashes   map[string]string
	key      []byte
	ttl      time.Duration
	sem      chan struct{}
	queue    chan struct{} // running plus waiting
	mu       sync.Mutex
	ok       map[string]time.Time // HMAC(login, password) -> until
	inflight map[string]*check
	hashed   atomic.Int64 // argon2 computations done, for tests
}

type check struct {
	done chan struct{}
	good bool
}

// maxHashing bounds concurrent argon2 computations (19 MiB each);
// maxWaiting bounds the checks queued behind them. Past that a check is
// refused with ErrBusy, unverified: 400 queued guesses would otherwise make
// a real login wait many seconds.
const (
	maxHashing = 2
	maxWaiting = 4
)

// ErrBusy is returned when too many checks are already queued; the client
// should try again (SMTP 454, POP3 [SYS/TEMP]).
var ErrBusy = errors.New("too many logins being checked at once")

// NewChecker returns a Checker for login -> hash.
func NewChecker(hashes map[string]string) *Checker {
	key := make([]byte, 32)
	rand.Read(key)
	return &Checker{hashes: hashes, key: key, ttl: 10 * time.Minute, sem: make(chan struct{}, maxHashing),
		queue: make(chan struct{}, maxHashing+maxWaiting),
		ok:    map[string]time.Time{}, inflight: map[string]*check{}}
}

// Check reports whether the login and password are right, or ErrBusy
// (and false) when the queue of checks is full.
func (c *Checker) Check(login, password string) (bool, error) {
	hash, found := c.hashes[login]
	if !found {
		// Spend the same time as for a known login, so timing does not reveal logins.
		hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	}
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(login + "\x00" + password))
	tag := string(mac.Sum(nil))
	c.mu.Lock()
	if until, cached := c.ok[tag]; cached && time.Now().Before(until) {
		c.mu.Unlock()
		return found, nil
	}
	if ch := c.inflight[tag]; ch != nil {
		c.mu.Unlock()
		<-ch.done
		return ch.good && found, nil
	}
	select {
	case c.queue <- struct{}{}:
	default:
		c.mu.Unlock()
		return false, ErrBusy
	}
	ch := &check{done: make(chan struct{})}
	c.inflight[tag] = ch
	c.mu.Unlock()

	c.sem <- struct{}{}
	ch.good, _ = Verify(hash, password)
	<-c.sem
	<-c.queue
	c.hashed.Add(1)
	c.mu.Lock()
	if ch.good && found {
		c.ok[tag] = time.Now().Add(c.ttl)
	}
	delete(c.inflight, tag)
	c.mu.Unlock()
	close(ch.done)
	return ch.good && found, nil
}
