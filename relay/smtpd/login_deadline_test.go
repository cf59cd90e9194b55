package smtpd_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
)

// A connection that does not log in within the login deadline is closed,
// so that silent connections cannot hold the connection caps' slots for the
// idle timeout; one that logged in stays.
func TestConnectionWithoutLoginIsClosedAtTheLoginDeadline(t *testing.T) {
	s := newServer(t, func(o *serverOpts) {
		o.budget = auth.Budget{Total: 64 << 10, Line: 4 << 10, Login: 300 * time.Millisecond, Session: time.Hour}
	})
	silent, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	user, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	ur := bufio.NewReader(user)
	say := func(line string) string {
		user.Write([]byte(line + "\r\n"))
		var l string
		for {
			l, _ = ur.ReadString('\n')
			if len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	ur.ReadString('\n')
	say("EHLO billing")
	if got := say("AUTH PLAIN AGR1cG9udABwdw=="); !strings.HasPrefix(got, "235") {
		t.Fatalf("login: %q", got)
	}
	// The silent one is closed: its reads end (greeting, then EOF) well
	// before this generous deadline.
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	sr := bufio.NewReader(silent)
	sr.ReadString('\n') // greeting
	if _, err := sr.ReadString('\n'); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a connection that never logged in is still open: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // past the login deadline
	if got := say("NOOP"); !strings.HasPrefix(got, "250") {
		t.Fatalf("a logged-in connection was closed at the login deadline: %q", got)
	}
}
