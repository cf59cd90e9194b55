// Package pop3d is the local POP3 server (RFC 1939, CAPA from RFC 2449,
// STLS from RFC 2595) through which the billing software collects the
// fund's returns. Each local login sees its own view of its account's
// mailbox: a DELE hides a message from that login only, and only once the
// session ends with QUIT. No library does this in Go, hence this package.
package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Maildrops is what the server needs of the store.
type Maildrops interface {
	View(login, account string) ([]store.ViewEntry, error)
	MailboxBody(id int64) ([]byte, error)
	MarkRetrieved(ctx context.Context, login string, ids []int64) error
	DeleteFromView(ctx context.Context, login string, ids []int64) error
}

// Options configure a Server.
type Options struct {
	Hostname           string
	TLS                *tls.Config    // nil: no STLS, no implicit TLS
	AllowPlaintextAuth auth.Allowlist // networks that may USER/PASS and AUTH without TLS
	Logins             *auth.Checker
	AccountOf          map[string]string // local login -> account
	Throttle           *auth.Throttle
	Allow              auth.Allowlist
	Conns              *auth.ConnLimit // shared with the other servers; nil: no cap
	Budget             auth.Budget     // before login; zero: auth.DefaultBudget
	Store              Maildrops
	Log                *slog.Logger
	// Locks are the logins with an open session. Servers that share them
	// (the old and the new one during a config reload) never open two
	// sessions on one login. Nil: the server has its own.
	Locks *Locks
}

// Locks holds the logins that have a POP3 session open.
type Locks struct {
	mu     sync.Mutex
	locked map[string]bool
}

// NewLocks returns an empty set of session locks.
func NewLocks() *Locks { return &Locks{locked: map[string]bool{}} }

// Server serves POP3 on any number of listeners.
type Server struct {
	opt Options

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]bool
	closed    bool
	idle      chan struct{} // signalled when the last session ends
}

// New returns a server; call Serve or ServeTLS for each listener.
func New(opt Options) *Server {
	if opt.Locks == nil {
		opt.Locks = NewLocks()
	}
	if opt.Budget == (auth.Budget{}) {
		opt.Budget = auth.DefaultBudget
	}
	return &Server{opt: opt, conns: map[net.Conn]bool{}, idle: make(chan struct{}, 1)}
}

// Refusals are the POP3 lines for connections the guard turns away.
var Refusals = &auth.Refusals{
	NotAllowed: func(ip string) string { return "-ERR " + ip + " is not allowed to use this server" },
	Blocked:    func(ip string) string { return "-ERR [AUTH] too many failed logins from " + ip + "; try again later" },
	Busy:       func(why string) string { return "-ERR [SYS/TEMP] " + why + "; try again later" },
	OverBudget: overBudget,
}

const overBudget = "-ERR [SYS/TEMP] too much input before login; closing"

func (s *Server) policy() auth.Policy {
	return auth.Policy{Allow: s.opt.Allow, Throttle: s.opt.Throttle, Conns: s.opt.Conns, Budget: s.opt.Budget}
}

// Serve serves plain POP3 (STLS offered when TLS is configured) on l.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(auth.Guard(l, s.policy(), Refusals, s.opt.Log), false)
}

// ServeTLS serves POP3 over implicit TLS (port 995) on l.
func (s *Server) ServeTLS(l net.Listener) error {
	return s.serve(tls.NewListener(auth.Guard(l, s.policy(), nil, s.opt.Log), s.opt.TLS), true)
}

func (s *Server) serve(l net.Listener, isTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if !s.track(c, true) {
			c.Close()
			continue
		}
		go func() {
			defer s.track(c, false)
			newSession(s, c, isTLS).run()
		}()
	}
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.conns[c] = true
	} else {
		delete(s.conns, c)
		if len(s.conns) == 0 {
			select {
			case s.idle <- struct{}{}:
			default:
			}
		}
	}
	return true
}

// Shutdown stops the listeners and lets the open sessions end by
// themselves (a client's QUIT applies its deletions) until ctx ends; then
// it drops the rest, which deletes nothing. A config reload uses it.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-s.idle:
		case <-ctx.Done():
			s.Close()
			return
		}
	}
}

// Close stops the listeners and drops every session. A session dropped
// this way deletes nothing: POP3 deletes only at QUIT.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	return nil
}

// lock takes a login's maildrop for one session. It waits a moment for a
// previous session to end: a client that reconnects right after its
// connection dropped must not be told [IN-USE] because the server has not
// read the EOF yet.
func (s *Server) lock(login string) bool {
	l := s.opt.Locks
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		if !l.locked[login] {
			l.locked[login] = true
			l.mu.Unlock()
			return true
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			return false
		}
	}
}

func (s *Server) unlock(login string) {
	l := s.opt.Locks
	l.mu.Lock()
	delete(l.locked, login)
	l.mu.Unlock()
}
