package fetch

import (
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// classify words a failure at an IMAP stage: the server's answers here,
// the rest (certificate, timeout, network) in upstream.Classify. A refused
// IMAP port while the same provider's SMTP works is access closed.
func classify(stage, host string, err error, smtpWorks bool) *upstream.Error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		switch {
		case ie.Code == imap.ResponseCodeAuthenticationFailed:
			return upstream.New(upstream.CredentialsRefused, stage, fmt.Sprintf("%s refused the IMAP login: %s — credentials rejected; the provider may require a password change", host, ie.Text), sesam.CauseReply, err)
		case ie.Code == imap.ResponseCodeContactAdmin, ie.Code == imap.ResponseCodeUnavailable:
			return upstream.New(upstream.AccessClosed, stage, fmt.Sprintf("the provider has closed IMAP access (%s said [%s] %s)", host, ie.Code, ie.Text), sesam.CauseReply, err)
		case stage == "login":
			return upstream.New(upstream.CredentialsRefused, stage, fmt.Sprintf("%s refused the IMAP login: %s — credentials rejected, or access closed by the provider", host, ie.Text), sesam.CauseReply, err)
		}
		return upstream.New(upstream.Temporary, stage, fmt.Sprintf("%s answered %s at %s", host, ie.Error(), stage), sesam.CauseReply, err)
	}
	e := upstream.Classify(stage, host, err)
	switch {
	case e.Refused() && smtpWorks:
		e.Kind = upstream.AccessClosed
		e.Text = fmt.Sprintf("the provider has closed IMAP access: %s refuses connections on the IMAP port while its SMTP works", host)
	case e.Refused():
		e.Text = fmt.Sprintf("%s refuses connections on the IMAP port", host)
	}
	return e
}

// dial connects and logs in to an account's IMAP server.
func dial(p config.Provider, timeout time.Duration, smtpWorks bool, onUpdate *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	host := p.IMAP.Host
	pass, err := upstream.Password(p)
	if err != nil {
		return nil, err // before knocking: the provider is not to blame
	}
	conn, tlsConf, err := upstream.Dial(p, p.IMAP, timeout)
	if err != nil {
		if ue, ok := err.(*upstream.Error); ok && ue.Kind != upstream.Local {
			err = classify(ue.Stage, host, ue.Err, smtpWorks)
		}
		return nil, err
	}
	opts := &imapclient.Options{TLSConfig: tlsConf, UnilateralDataHandler: onUpdate}
	var c *imapclient.Client
	switch {
	case p.IMAP.ImplicitTLS, p.Insecure:
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
	if err := c.Login(p.Username, pass).Wait(); err != nil {
		c.Close()
		return nil, classify("login", host, err, smtpWorks)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// TryLogin logs in to an account's IMAP once and leaves, for `sesam-relay
// check`. Its error is an *upstream.Error.
func TryLogin(p config.Provider, timeout time.Duration) error {
	c, err := dial(p, timeout, false, nil)
	if err != nil {
		return err
	}
	c.Logout().Wait()
	c.Close()
	return nil
}
