package deliver

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/upstream"
)

func TestClassifyTellsWhatToDo(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		stage string
		err   error
		kind  upstream.Kind
		says  string
	}{
		{"login", &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad"}, upstream.CredentialsRefused, "credentials rejected"},
		{"login", &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "later"}, upstream.Temporary, "454"},
		{"RCPT TO <x>", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "unknown"}, upstream.Permanent, "550 5.1.1"},
		{"the final dot", &smtp.SMTPError{Code: 451, Message: "later"}, upstream.Temporary, "451"},
		{"connect", &smtp.SMTPError{Code: 554, Message: "no service"}, upstream.Temporary, "554"},
		{"MAIL FROM", timeout, upstream.Temporary, "did not answer in time"},
		{"connect", errors.New("connection refused"), upstream.Temporary, "unreachable"},
	}
	for _, c := range cases {
		e := Classify(c.stage, "smtp.laposte.net", c.err)
		if e.Kind != c.kind || !strings.Contains(e.Text, c.says) {
			t.Errorf("%s %v: got %v %q", c.stage, c.err, e.Kind, e.Text)
		}
	}
}

func TestStatusComesFromTheProvidersReply(t *testing.T) {
	for in, want := range map[string]string{
		"smtp.x refused the mail at RCPT: 550 5.1.1 unknown": "5.1.1",
		"no delivery after 72h0m0s; last error: refused":     "4.4.7",
		"552 5.3.4 too big": "5.3.4",
	} {
		if got := statusOf(in, "4.4.7"); got != want {
			t.Errorf("%q: %s", in, got)
		}
	}
}
