// Package upstream is what delivery (SMTP) and collection (IMAP) share
// towards the practitioner's provider: dialling with the TLS modes, the one
// kind of failure with its English and French wording, the backoff, and the
// tracker that records a link's health in the store. deliver and fetch keep
// only their protocol.
package upstream

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// Kind says what a failure means for what the relay does next.
type Kind int

const (
	// Temporary: try again after the backoff.
	Temporary Kind = iota
	// Permanent: the provider refused this mail for good (SMTP): bounce it.
	Permanent
	// CredentialsRefused: the provider refused the login. Trying again soon
	// would only look like an attack: pause for auth_pause, until the
	// technician retries or restarts.
	CredentialsRefused
	// AccessClosed: the provider shut the service (IMAP closed while SMTP
	// works, or an [UNAVAILABLE] login): returns wait there until it opens.
	AccessClosed
	// Local: this box's own fault (an unreadable password file, a bad
	// ca_file). The provider was not contacted and is never paused for it.
	Local
)

func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case CredentialsRefused:
		return "credentials refused"
	case AccessClosed:
		return "access closed"
	case Local:
		return "local"
	}
	return "temporary"
}

// Error is a failure towards the provider, worded once: Text in English
// for the logs, status and a DSN's Diagnostic-Code; Fail in the terms
// sesam.ExplainSMTPFailure words in French for the practitioner.
type Error struct {
	Kind  Kind
	Stage string // "connect", "TLS handshake", "login", "RCPT TO <…>", "SELECT INBOX"…
	Text  string
	Fail  sesam.SMTPFailure
	Err   error // the underlying error, if any
}

func (e *Error) Error() string { return e.Text }
func (e *Error) Unwrap() error { return e.Err }

// Refused reports whether the provider's host refused the TCP connection.
func (e *Error) Refused() bool { return errors.Is(e.Err, syscall.ECONNREFUSED) }

// New is a failure whose words the protocol chose (a reply it understood).
func New(kind Kind, stage, text string, cause sesam.Cause, err error) *Error {
	return &Error{Kind: kind, Stage: stage, Text: text, Err: err, Fail: sesam.SMTPFailure{Stage: StageOf(stage), Cause: cause}}
}

// LocalError is this box's fault at stage: the provider is not to blame.
func LocalError(stage string, err error) *Error {
	return New(Local, stage, err.Error()+" — a fault of this box, not of the provider", sesam.CauseLocal, err)
}

// Classify words a failure that is not a protocol reply: a certificate
// that cannot be verified, no answer in time, a refused or lost connection.
// Each protocol classifies its own replies first, then calls this.
func Classify(stage, host string, err error) *Error {
	e := &Error{Kind: Temporary, Stage: stage, Err: err, Fail: sesam.SMTPFailure{Stage: StageOf(stage)}}
	var ne net.Error
	switch {
	case CertificateError(err):
		e.Fail.Cause = sesam.CauseCertificate
		e.Text = fmt.Sprintf("the certificate of %s could not be verified (%v) — set ca_file if the provider uses a private CA", host, err)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e.Fail.Cause = sesam.CauseTimeout
		e.Text = fmt.Sprintf("%s did not answer in time at %s", host, stage)
	default:
		e.Fail.Cause = sesam.CauseNetwork
		e.Text = fmt.Sprintf("%s unreachable at %s: %v", host, stage, err)
	}
	return e
}

// StageOf maps the stage names in the technician's text to the stages the
// practitioner's notice explains.
func StageOf(stage string) sesam.Stage {
	switch {
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
