package fetch

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sesam-relay/sesam-relay/relay/config"
)

type failKind int

const (
	temporary   failKind = iota
	authRefused          // long pause
	closed               // the provider shut IMAP access: say so, retry slowly
)

// pollError is a failed poll in words a technician can act on.
type pollError struct {
	kind failKind
	text string
}

func (e *pollError) Error() string { return e.text }

func classify(stage, host string, err error, smtpWorks bool) *pollError {
	var ie *imap.Error
	if errors.As(err, &ie) {
		switch ie.Code {
		case imap.ResponseCodeAuthenticationFailed:
			return &pollError{authRefused, fmt.Sprintf("%s refused the IMAP login: %s — credentials rejected; the provider may require a password change", host, ie.Text)}
		case imap.ResponseCodeContactAdmin, imap.ResponseCodeUnavailable:
			return &pollError{closed, fmt.Sprintf("the provider has closed IMAP access (%s said [%s] %s)", host, ie.Code, ie.Text)}
		}
		if stage == "login" {
			return &pollError{authRefused, fmt.Sprintf("%s refused the IMAP login: %s — credentials rejected, or access closed by the provider", host, ie.Text)}
		}
		return &pollError{temporary, fmt.Sprintf("%s answered %s at %s", host, ie.Error(), stage)}
	}
	if config.CertificateError(err) {
		return &pollError{temporary, fmt.Sprintf("the IMAP certificate of %s could not be verified (%v) — set ca_file if the provider uses a private CA", host, err)}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		if smtpWorks {
			return &pollError{closed, fmt.Sprintf("the provider has closed IMAP access: %s refuses connections on the IMAP port while its SMTP works", host)}
		}
		return &pollError{temporary, fmt.Sprintf("%s refuses connections on the IMAP port", host)}
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, net.ErrClosed) {
		return &pollError{temporary, fmt.Sprintf("%s did not answer in time at %s", host, stage)}
	}
	return &pollError{temporary, fmt.Sprintf("%s unreachable at %s: %v", host, stage, err)}
}

// dial connects and logs in to an account's IMAP server.
func dial(p config.Provider, timeout time.Duration, smtpWorks bool, onUpdate *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	host := p.IMAP.Host
	tlsConf, err := p.TLSConfig(host)
	if err != nil {
		return nil, &pollError{temporary, err.Error()}
	}
	opts := &imapclient.Options{TLSConfig: tlsConf, Dialer: &net.Dialer{Timeout: timeout}, UnilateralDataHandler: onUpdate}
	conn, err := net.DialTimeout("tcp", p.IMAP.Addr, timeout)
	if err != nil {
		return nil, classify("connect", host, err, smtpWorks)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	var c *imapclient.Client
	switch {
	case p.IMAP.ImplicitTLS:
		tc := tls.Client(conn, tlsConf)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, classify("TLS handshake", host, err, smtpWorks)
		}
		c = imapclient.New(tc, opts)
	case p.Insecure:
		c = imapclient.New(conn, opts)
	default:
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			conn.Close()
			return nil, classify("STARTTLS", host, err, smtpWorks)
		}
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, classify("greeting", host, err, smtpWorks)
	}
	pass, err := p.Password()
	if err != nil {
		c.Close()
		return nil, &pollError{authRefused, err.Error()}
	}
	if err := c.Login(p.Username, pass).Wait(); err != nil {
		c.Close()
		return nil, classify("login", host, err, smtpWorks)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// Check tries an account's IMAP login once, for `sesam-relay check`.
func Check(p config.Provider, timeout time.Duration) error {
	c, err := dial(p, timeout, false, nil)
	if err != nil {
		return err
	}
	c.Logout().Wait()
	c.Close()
	return nil
}
