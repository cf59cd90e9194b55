package deliver

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestClassifyTellsWhatToDo(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		stage string
		err   error
		kind  failKind
		says  string
	}{
		{"login", &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad"}, authRefused, "credentials rejected"},
		{"login", &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "later"}, temporary, "454"},
		{"RCPT TO <x>", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "unknown"}, permanent, "550 5.1.1"},
		{"the final dot", &smtp.SMTPError{Code: 451, Message: "later"}, temporary, "451"},
		{"connect", &smtp.SMTPError{Code: 554, Message: "no service"}, temporary, "554"},
		{"MAIL FROM", timeout, temporary, "did not answer in time"},
		{"connect", errors.New("connection refused"), temporary, "unreachable"},
	}
	for _, c := range cases {
		e := classify(c.stage, "smtp.laposte.net", c.err)
		if e.kind != c.kind || !strings.Contains(e.text, c.says) {
			t.Errorf("%s %v: got %v %q", c.stage, c.err, e.kind, e.text)
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
