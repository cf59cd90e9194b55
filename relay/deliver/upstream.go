package deliver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// failKind says what a failure means for what we do next.
type failKind int

const (
	temporary   failKind = iota // try again later with backoff
	permanent                   // bounce
	authRefused                 // the provider refused our login: long pause
)

// upstreamError is a failure talking to the provider, in words a technician
// can act on (text, in English, for the logs and the DSN's Diagnostic-Code),
// and in the terms sesam.ExplainSMTPFailure words for the practitioner.
type upstreamError struct {
	kind failKind
	text string
	fail sesam.SMTPFailure
}

// stageOf maps the stage names used in the technician's text to the stages
// the practitioner's notice explains.
func stageOf(stage string) sesam.Stage {
	switch {
	case stage == "connect":
		return sesam.StageConnect
	case stage == "TLS handshake" || stage == "STARTTLS":
		return sesam.StageTLS
	case stage == "login":
		return sesam.StageLogin
	case stage == "MAIL FROM":
		return sesam.StageMailFrom
	case strings.HasPrefix(stage, "RCPT TO"):
		return sesam.StageRcpt
	case stage == "DATA":
		return sesam.StageData
	case stage == "sending the body":
		return sesam.StageBody
	case stage == "the final dot":
		return sesam.StageDot
	}
	return sesam.StageConnect
}

func (e *upstreamError) Error() string { return e.text }

func classify(stage string, host string, err error) *upstreamError {
	ue := classifyText(stage, host, err)
	ue.fail.Stage = stageOf(stage)
	var se *smtp.SMTPError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		ue.fail.Cause, ue.fail.Code = sesam.CauseReply, se.Code
		if se.EnhancedCode[0] > 0 {
			ue.fail.Enhanced = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
	case config.CertificateError(err):
		ue.fail.Cause = sesam.CauseCertificate
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		ue.fail.Cause = sesam.CauseTimeout
	default:
		ue.fail.Cause = sesam.CauseNetwork
	}
	return ue
}

func classifyText(stage string, host string, err error) *upstreamError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		reply := fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
		if se.EnhancedCode[0] <= 0 {
			reply = fmt.Sprintf("%d %s", se.Code, se.Message)
		}
		switch {
		case stage == "login" && se.Code >= 500:
			return &upstreamError{kind: authRefused, text: fmt.Sprintf("%s refused the login: %s — credentials rejected; the password may have changed or the provider may require a password reset", host, reply)}
		case se.Code >= 500 && stage != "connect":
			return &upstreamError{kind: permanent, text: fmt.Sprintf("%s refused the mail at %s: %s", host, stage, reply)}
		default:
			return &upstreamError{kind: temporary, text: fmt.Sprintf("%s answered %s at %s", host, reply, stage)}
		}
	}
	if config.CertificateError(err) {
		return &upstreamError{kind: temporary, text: fmt.Sprintf("the certificate of %s could not be verified (%v) — set ca_file if the provider uses a private CA", host, err)}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &upstreamError{kind: temporary, text: fmt.Sprintf("%s did not answer in time at %s", host, stage)}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &upstreamError{kind: temporary, text: fmt.Sprintf("%s did not answer in time at %s", host, stage)}
	}
	return &upstreamError{kind: temporary, text: fmt.Sprintf("%s unreachable at %s: %v", host, stage, err)}
}

// dial opens an authenticated connection to an account's provider.
func dial(p config.Provider, hostname string, timeout time.Duration) (*smtp.Client, error) {
	host := p.SMTP.Host
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", p.SMTP.Addr)
	if err != nil {
		return nil, classify("connect", host, err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	tlsConf, err := p.TLSConfig(host)
	if err != nil {
		conn.Close()
		return nil, &upstreamError{kind: temporary, text: err.Error(), fail: sesam.SMTPFailure{Stage: sesam.StageTLS, Cause: sesam.CauseLocal}}
	}
	var c *smtp.Client
	switch {
	case p.SMTP.ImplicitTLS:
		tc := tls.Client(conn, tlsConf)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, classify("TLS handshake", host, err)
		}
		c = smtp.NewClient(tc)
	case p.Insecure:
		c = smtp.NewClient(conn)
	default:
		// NewClientStartTLS reports a bad certificate only at the next
		// command (see LIBRARIES.md); Hello below surfaces it.
		c, err = smtp.NewClientStartTLS(conn, tlsConf)
		if err != nil {
			conn.Close()
			return nil, classify("STARTTLS", host, err)
		}
		if err := c.Noop(); err != nil {
			c.Close()
			return nil, classify("STARTTLS", host, err)
		}
	}
	c.CommandTimeout = timeout
	c.SubmissionTimeout = timeout
	if p.SMTP.ImplicitTLS || p.Insecure {
		// After STARTTLS go-smtp has greeted as "localhost" already and
		// offers no way to name ourselves: only these paths can.
		if err := c.Hello(hostname); err != nil {
			c.Close()
			return nil, classify("connect", host, err)
		}
	}
	if _, isTLS := c.TLSConnectionState(); !isTLS && !p.Insecure {
		c.Close()
		return nil, &upstreamError{kind: temporary, text: fmt.Sprintf("%s: no TLS, refusing to send the password in clear", host),
			fail: sesam.SMTPFailure{Stage: sesam.StageTLS, Cause: sesam.CauseUnsupported}}
	}
	if p.Username == "" {
		conn.SetDeadline(time.Time{})
		return c, nil // a smarthost that knows us by our address
	}
	pass, err := p.Password()
	if err != nil {
		c.Close()
		return nil, &upstreamError{kind: authRefused, text: err.Error(), fail: sesam.SMTPFailure{Stage: sesam.StageLogin, Cause: sesam.CauseLocal}}
	}
	var mech sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		mech = sasl.NewPlainClient("", p.Username, pass)
	case c.SupportsAuth(sasl.Login):
		mech = sasl.NewLoginClient(p.Username, pass)
	default:
		c.Close()
		return nil, &upstreamError{kind: temporary, text: fmt.Sprintf("%s offers neither AUTH PLAIN nor LOGIN", host),
			fail: sesam.SMTPFailure{Stage: sesam.StageLogin, Cause: sesam.CauseUnsupported}}
	}
	if err := c.Auth(mech); err != nil {
		c.Close()
		e := classify("login", host, err)
		if e.kind == authRefused {
			e.text = fmt.Sprintf("%s refused the login for %s: %s", host, p.Username, strings.TrimPrefix(e.text, host+" refused the login: "))
		}
		return nil, e
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// Check tries an account's upstream login once, for `sesam-relay check`.
func Check(p config.Provider, hostname string, timeout time.Duration) error {
	c, err := dial(p, hostname, timeout)
	if err != nil {
		return err
	}
	c.Quit()
	return nil
}
