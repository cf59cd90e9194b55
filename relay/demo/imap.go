package demo

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// IMAPProvider is a simulated provider mailbox reachable over IMAP (go-imap's
// in-memory server): the demo drops acknowledgements in it, and tests make
// it refuse logins, renumber a folder, or go away.
type IMAPProvider struct {
	User, Pass string

	mu       sync.Mutex
	addr     string
	l        net.Listener
	srv      *imapserver.Server
	mem      *imapmemserver.Server
	user     *imapmemserver.User
	refuse   bool // answer logins with [AUTHENTICATIONFAILED]
	disabled bool // answer logins with [UNAVAILABLE]
	logins   int
	tls      *tls.Config
	implicit bool
}

// folders makes INBOX and SPAM, as a provider has them (go-imap's memory
// server marks no special use: Dovecot's tests cover \Junk).
func (p *IMAPProvider) folders() error {
	if err := p.user.Create("INBOX", nil); err != nil {
		return err
	}
	if err := p.user.Create("SPAM", nil); err != nil {
		return err
	}
	p.mem.AddUser(p.user)
	return nil
}

// StartIMAP listens on addr with INBOX and SPAM folders.
func StartIMAP(addr, user, pass string) (*IMAPProvider, error) {
	p := &IMAPProvider{User: user, Pass: pass, mem: imapmemserver.New(), user: imapmemserver.NewUser(user, pass)}
	if err := p.folders(); err != nil {
		return nil, err
	}
	return p, p.listen(addr)
}

// StartIMAPTLS is StartIMAP for a provider speaking TLS: from the first
// byte (imaps) or after STARTTLS.
func StartIMAPTLS(addr, user, pass string, conf *tls.Config, implicit bool) (*IMAPProvider, error) {
	p := &IMAPProvider{User: user, Pass: pass, mem: imapmemserver.New(), user: imapmemserver.NewUser(user, pass), tls: conf, implicit: implicit}
	if err := p.folders(); err != nil {
		return nil, err
	}
	return p, p.listen(addr)
}

func (p *IMAPProvider) listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapSession{Session: p.mem.NewSession(), p: p}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapIdle: {}},
		InsecureAuth: p.tls == nil,
		Logger:       quietLogger{},
	})
	var served net.Listener = l
	if p.tls != nil && p.implicit {
		served = tls.NewListener(l, p.tls)
	} else if p.tls != nil {
		srv = imapserver.New(&imapserver.Options{
			NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
				return &imapSession{Session: p.mem.NewSession(), p: p}, nil, nil
			},
			Caps:      imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapStartTLS: {}, imap.CapIdle: {}},
			TLSConfig: p.tls,
			Logger:    quietLogger{},
		})
	}
	p.mu.Lock()
	p.l, p.srv, p.addr = l, srv, l.Addr().String()
	p.mu.Unlock()
	go srv.Serve(served)
	return nil
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

type imapSession struct {
	imapserver.Session
	p *IMAPProvider
}

func (s *imapSession) Login(user, pass string) error {
	s.p.mu.Lock()
	s.p.logins++
	refuse, disabled := s.p.refuse, s.p.disabled
	s.p.mu.Unlock()
	switch {
	case disabled:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "IMAP access is suspended for this account"}
	case refuse:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Authentication failed"}
	}
	return s.Session.Login(user, pass)
}

// Addr is host:port.
func (p *IMAPProvider) Addr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.addr }

// Logins counts login attempts.
func (p *IMAPProvider) Logins() int { p.mu.Lock(); defer p.mu.Unlock(); return p.logins }

// RefuseLogins makes logins fail with [AUTHENTICATIONFAILED].
func (p *IMAPProvider) RefuseLogins(on bool) { p.mu.Lock(); p.refuse = on; p.mu.Unlock() }

// DisableIMAP makes logins fail with [UNAVAILABLE], as a provider that cut
// IMAP: the sessions already open are dropped too.
func (p *IMAPProvider) DisableIMAP(on bool) {
	p.mu.Lock()
	p.disabled = on
	p.mu.Unlock()
	if on && p.IsOn() {
		p.Off()
		p.On()
	}
}

type literal struct {
	*bytes.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// Deliver puts a message in a folder, as the fund's mail arriving.
func (p *IMAPProvider) Deliver(folder string, raw []byte) error {
	_, err := p.user.Append(folder, literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Time: time.Now()})
	return err
}

// Renumber deletes and re-creates a folder with the same messages: its
// UIDVALIDITY changes, as when a provider rebuilds a mailbox.
func (p *IMAPProvider) Renumber(folder string, raws [][]byte) error {
	if err := p.user.Delete(folder); err != nil {
		return err
	}
	time.Sleep(1100 * time.Millisecond) // the memory server's UIDVALIDITY is the time in seconds
	if err := p.user.Create(folder, nil); err != nil {
		return err
	}
	for _, r := range raws {
		if err := p.Deliver(folder, r); err != nil {
			return err
		}
	}
	return nil
}

// Count returns how many messages a folder holds now.
func (p *IMAPProvider) Count(folder string) int {
	st, err := p.user.Status(folder, &imap.StatusOptions{NumMessages: true})
	if err != nil || st.NumMessages == nil {
		return -1
	}
	return int(*st.NumMessages)
}

// Off closes the IMAP port (connections refused); On opens it again.
func (p *IMAPProvider) Off() {
	p.mu.Lock()
	l, srv := p.l, p.srv
	p.l, p.srv = nil, nil
	p.mu.Unlock()
	if l != nil {
		l.Close()
		srv.Close()
	}
}

// On reopens the port after Off.
func (p *IMAPProvider) On() error {
	p.mu.Lock()
	on := p.l != nil
	p.mu.Unlock()
	if on {
		return nil
	}
	var err error
	for i := 0; i < 50; i++ {
		if err = p.listen(p.Addr()); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("reopening the simulated IMAP: %w", err)
}

// IsOn reports whether the IMAP port is open.
func (p *IMAPProvider) IsOn() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.l != nil }

// Close stops it for good.
func (p *IMAPProvider) Close() { p.Off() }
