// Package demo is the simulated mail provider behind `sesam-relay demo`,
// and the in-process upstream that tests drive: an SMTP server that can be
// switched off, answer 4xx or 5xx, refuse the login, drop the connection
// after the final dot, or hang there.
package demo

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/internal/smtpwire"
)

// Mode is how the provider answers.
type Mode string

const (
	Normal        Mode = "normal"
	TempFail      Mode = "tempfail"         // 451 to the final dot
	PermFail      Mode = "permfail"         // 550 to RCPT
	AuthFail      Mode = "authfail"         // 535 to AUTH
	DropAfterDot  Mode = "drop-after-dot"   // read the whole mail, then cut the connection
	HangAfterDot  Mode = "hang-after-dot"   // read the whole mail, then never answer
	HangAtGreet   Mode = "hang-at-greeting" // accept the connection, say nothing
	AcceptAndDrop Mode = "accept-and-drop"  // store the mail, then cut the connection unanswered
	Unavailable   Mode = "unavailable"      // 421 at the greeting, then close
)

// Received is one mail the provider got.
type Received struct {
	From string
	To   []string
	Data []byte
	At   time.Time
}

// Provider is a simulated SMTP provider on loopback.
type Provider struct {
	User, Pass string
	OnMail     func(Received) // called for each accepted mail (the demo prints it)

	tls      *tls.Config // nil: plain text
	implicit bool        // TLS from the first byte (smtps) rather than STARTTLS

	mu    sync.Mutex
	mode  Mode
	addr  string
	l     net.Listener
	srv   *smtp.Server
	mails []Received
	conns int
	auths int
	delay time.Duration // before answering the final dot
	live  int           // sessions open now
	peak  int           // most sessions open at once
}

// Start listens on addr ("127.0.0.1:0" for any port).
func Start(addr, user, pass string) (*Provider, error) {
	p := &Provider{User: user, Pass: pass, mode: Normal}
	if err := p.listen(addr); err != nil {
		return nil, err
	}
	return p, nil
}

// StartTLS is Start for a provider that speaks TLS with conf: from the
// first byte (implicit, like smtps://) or after STARTTLS.
func StartTLS(addr, user, pass string, conf *tls.Config, implicit bool) (*Provider, error) {
	p := &Provider{User: user, Pass: pass, mode: Normal, tls: conf, implicit: implicit}
	if err := p.listen(addr); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Provider) listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		p.mu.Lock()
		p.live++
		p.peak = max(p.peak, p.live)
		p.mu.Unlock()
		return &session{p: p, conn: c}, nil
	}))
	srv.Domain = "smtp.provider.test"
	srv.AllowInsecureAuth = true
	srv.MaxLineLength = 1 << 20
	srv.ErrorLog = quiet{}
	var served net.Listener = &hangListener{Listener: l, p: p}
	if p.tls != nil && p.implicit {
		served = tls.NewListener(served, p.tls)
	} else {
		srv.TLSConfig = p.tls // STARTTLS offered
	}
	p.mu.Lock()
	p.l, p.srv, p.addr = l, srv, l.Addr().String()
	p.mu.Unlock()
	go srv.Serve(served)
	return nil
}

// Addr is the provider's host:port.
func (p *Provider) Addr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.addr }

// SetMode changes how the provider answers from the next command on.
func (p *Provider) SetMode(m Mode) { p.mu.Lock(); p.mode = m; p.mu.Unlock() }

// SetPass changes the password the provider takes, as one that forces a
// change after an attack does.
func (p *Provider) SetPass(pass string) { p.mu.Lock(); p.Pass = pass; p.mu.Unlock() }

func (p *Provider) getMode() Mode { p.mu.Lock(); defer p.mu.Unlock(); return p.mode }

// Off closes the port: connections are refused, as when a provider is down.
func (p *Provider) Off() {
	p.mu.Lock()
	srv, l := p.srv, p.l
	p.srv, p.l = nil, nil
	p.mu.Unlock()
	if srv != nil {
		// Close the listener ourselves too: Serve may not have registered
		// it with the server yet.
		l.Close()
		srv.Close()
	}
}

// On opens the same port again.
func (p *Provider) On() error {
	p.mu.Lock()
	on := p.srv != nil
	p.mu.Unlock()
	if on {
		return nil
	}
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger a moment
		if err = p.listen(p.Addr()); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// IsOn reports whether the provider accepts connections.
func (p *Provider) IsOn() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.srv != nil }

// Close stops the provider for good.
func (p *Provider) Close() { p.Off() }

// Mails returns what the provider accepted, in order.
func (p *Provider) Mails() []Received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Received(nil), p.mails...)
}

// Stats returns how many connections and logins the provider saw.
func (p *Provider) Stats() (conns, auths int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.auths
}

// SetReplyDelay makes the provider wait before answering each final dot,
// like a busy provider: a crash test then often kills the relay in between.
func (p *Provider) SetReplyDelay(d time.Duration) { p.mu.Lock(); p.delay = d; p.mu.Unlock() }

func (p *Provider) replyDelay() time.Duration { p.mu.Lock(); defer p.mu.Unlock(); return p.delay }

// MaxConcurrent is the most SMTP sessions that were open at once.
func (p *Provider) MaxConcurrent() int { p.mu.Lock(); defer p.mu.Unlock(); return p.peak }

type hangListener struct {
	net.Listener
	p *Provider
}

func (h *hangListener) Accept() (net.Conn, error) {
	for {
		c, err := h.Listener.Accept()
		if err != nil {
			return nil, err
		}
		h.p.mu.Lock()
		h.p.conns++
		h.p.mu.Unlock()
		switch h.p.getMode() {
		case HangAtGreet:
			go func() { io.Copy(io.Discard, c); c.Close() }() // never greets
			continue
		case Unavailable:
			c.Write([]byte("421 4.3.2 Service not available, closing channel\r\n"))
			c.Close()
			continue
		}
		return c, nil
	}
}

type session struct {
	p    *Provider
	conn *smtp.Conn
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.p.mu.Lock()
		s.p.auths++
		s.p.mu.Unlock()
		s.p.mu.Lock()
		want := s.p.Pass
		s.p.mu.Unlock()
		if s.p.getMode() == AuthFail || user != s.p.User || pass != want {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.p.getMode() == PermFail {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: fmt.Sprintf("<%s>: Recipient address rejected: User unknown", to)}
	}
	s.to = append(s.to, to)
	return nil
}

var errDropped = errors.New("dropped on purpose")

func (s *session) Data(r io.Reader) error {
	// Read the bytes as they came, as a real provider keeps them (go-smtp's
	// own reader cannot end a mail whose last line ends in CR CR LF).
	src, ok := smtpwire.Raw(r)
	if !ok {
		return smtpwire.ErrLayout
	}
	data, err := smtpwire.ReadData(src.R, 0)
	src.Done()
	if err != nil {
		return err
	}
	switch s.p.getMode() {
	case TempFail:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, please try again"}
	case DropAfterDot:
		s.conn.Conn().Close()
		return errDropped
	case HangAfterDot:
		// A provider that never answers: the client times out. It hangs
		// until its mode changes, so that tests do not leak it.
		for s.p.getMode() == HangAfterDot {
			time.Sleep(50 * time.Millisecond)
		}
		s.conn.Conn().Close()
		return errDropped
	}
	if d := s.p.replyDelay(); d > 0 {
		time.Sleep(d)
	}
	m := Received{From: s.from, To: s.to, Data: data, At: time.Now()}
	s.p.mu.Lock()
	s.p.mails = append(s.p.mails, m)
	n := len(s.p.mails)
	onMail := s.p.OnMail
	s.p.mu.Unlock()
	if s.p.getMode() == AcceptAndDrop {
		s.conn.Conn().Close()
		return errDropped
	}
	if onMail != nil {
		onMail(m)
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("Ok: queued as P%05d", n)}
}

func (s *session) Reset() { s.from, s.to = "", nil }
func (s *session) Logout() error {
	s.p.mu.Lock()
	s.p.live--
	s.p.mu.Unlock()
	return nil
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Println(...any)        {}
