package deliver

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Classify words a failure at an SMTP stage: the provider's replies here,
// the rest (certificate, timeout, network) in upstream.Classify.
func Classify(stage string, host string, err error) *upstream.Error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return upstream.Classify(stage, host, err)
	}
	reply := fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	if se.EnhancedCode[0] <= 0 {
		reply = fmt.Sprintf("%d %s", se.Code, se.Message)
	}
	var e *upstream.Error
	switch {
	case stage == "login" && se.Code >= 500:
		e = upstream.New(upstream.CredentialsRefused, stage, fmt.Sprintf("%s refused the login: %s — credentials rejected; the password may have changed or the provider may require a password reset", host, reply), sesam.CauseReply, err)
	case se.Code >= 500 && stage != "connect":
		e = upstream.New(upstream.Permanent, stage, fmt.Sprintf("%s refused the mail at %s: %s", host, stage, reply), sesam.CauseReply, err)
	default:
		e = upstream.New(upstream.Temporary, stage, fmt.Sprintf("%s answered %s at %s", host, reply, stage), sesam.CauseReply, err)
	}
	e.Fail.Code = se.Code
	if se.EnhancedCode[0] > 0 {
		e.Fail.Enhanced = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return e
}

// dial opens an authenticated connection to an account's provider.
func dial(p config.Provider, hostname string, timeout time.Duration) (*smtp.Client, error) {
	host := p.SMTP.Host
	var pass string
	if p.Username != "" {
		var err error
		if pass, err = upstream.Password(p); err != nil {
			return nil, err // before knocking: the provider is not to blame
		}
	}
	conn, tlsConf, err := upstream.Dial(p, p.SMTP, timeout)
	if err != nil {
		return nil, err
	}
	var c *smtp.Client
	switch {
	case p.SMTP.ImplicitTLS, p.Insecure:
		c = smtp.NewClient(conn)
	default:
		// NewClientStartTLS reports a bad certificate only at the next
		// command (see LIBRARIES.md); the NOOP surfaces it.
		c, err = smtp.NewClientStartTLS(conn, tlsConf)
		if err != nil {
			conn.Close()
			return nil, Classify("STARTTLS", host, err)
		}
		if err := c.Noop(); err != nil {
			c.Close()
			return nil, Classify("STARTTLS", host, err)
		}
	}
	c.CommandTimeout = timeout
	c.SubmissionTimeout = timeout
	if p.SMTP.ImplicitTLS || p.Insecure {
		// After STARTTLS go-smtp has greeted as "localhost" already and
		// offers no way to name ourselves: only these paths can.
		if err := c.Hello(hostname); err != nil {
			c.Close()
			return nil, Classify("connect", host, err)
		}
	}
	if _, isTLS := c.TLSConnectionState(); !isTLS && !p.Insecure {
		c.Close()
		return nil, upstream.New(upstream.Temporary, "STARTTLS", fmt.Sprintf("%s: no TLS, refusing to send the password in clear", host), sesam.CauseUnsupported, nil)
	}
	if p.Username == "" {
		conn.SetDeadline(time.Time{})
		return c, nil // a smarthost that knows us by our address
	}
	var mech sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		mech = sasl.NewPlainClient("", p.Username, pass)
	case c.SupportsAuth(sasl.Login):
		mech = sasl.NewLoginClient(p.Username, pass)
	default:
		c.Close()
		return nil, upstream.New(upstream.Temporary, "login", fmt.Sprintf("%s offers neither AUTH PLAIN nor LOGIN", host), sesam.CauseUnsupported, nil)
	}
	if err := c.Auth(mech); err != nil {
		c.Close()
		e := Classify("login", host, err)
		if e.Kind == upstream.CredentialsRefused {
			e.Text = fmt.Sprintf("%s refused the login for %s: %s", host, p.Username, strings.TrimPrefix(e.Text, host+" refused the login: "))
		}
		return nil, e
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// TryLogin logs in to an account's SMTP once and leaves, for `sesam-relay
// check`. Its error is an *upstream.Error.
func TryLogin(p config.Provider, hostname string, timeout time.Duration) error {
	c, err := dial(p, hostname, timeout)
	if err != nil {
		return err
	}
	c.Quit()
	return nil
}
