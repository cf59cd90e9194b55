package smtpd_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// FuzzSubmission sends arbitrary bytes as a logged-in client. The server
// must survive, keep serving, and never store a mail with a bare LF or with
// a dot after a bare CR (what another server could read as a mail's end).
// Run longer with: go test ./relay/smtpd -run '^$' -fuzz FuzzSubmission -fuzztime 5m
func FuzzSubmission(f *testing.F) {
	f.Add([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"))
	f.Add([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\n.\nMAIL FROM:<e@f>\r\n.\r\n"))
	f.Add([]byte("MAIL FROM:<a@b> SIZE=99999999999999999999\r\nBDAT 5 LAST\r\nhello"))
	f.Add([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\rMAIL FROM:<e@f>\r\n.\r\n"))
	f.Add([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\r\ny\r\r\n.\r\n"))
	f.Add([]byte("AUTH LOGIN\r\n*\r\nSTARTTLS\r\nRSET\r\nVRFY x\r\n\x00\xff\r\n"))
	s := newServer(f, func(o *serverOpts) { o.maxSize = 8192 })
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatalf("the server stopped accepting: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write([]byte("EHLO fuzz\r\nAUTH PLAIN AGR1cG9udABwdw==\r\n"))
			c.Write(in)
			c.Write([]byte("\r\n.\r\nQUIT\r\n"))
		}()
		io.Copy(io.Discard, c)
		ms, _ := s.st.List(store.Filter{Limit: 5})
		for _, m := range ms {
			b, _ := s.st.Body(m.ID)
			if i := bytes.IndexByte(bytes.ReplaceAll(b, []byte("\r\n"), nil), '\n'); i >= 0 {
				t.Fatalf("stored a bare LF: %q", b)
			}
			if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\r.")) {
				t.Fatalf("stored a dot after a bare CR: %q", b)
			}
		}
	})
}

// FuzzPreAuth sends arbitrary bytes without logging in, to a server with a
// small pre-login budget. The server must survive, store nothing, and,
// when more than the budget was sent (and no STARTTLS, QUIT or login
// intervened), answer 421 before closing.
// go test ./relay/smtpd -run '^$' -fuzz FuzzPreAuth -fuzztime 5m -parallel=1
func FuzzPreAuth(f *testing.F) {
	f.Add([]byte("EHLO x\r\nNOOP\r\nHELP\r\n"))
	f.Add([]byte("NOOP " + strings.Repeat("x", 100) + "\r\n"))
	f.Add([]byte(strings.Repeat("RSET\r\n", 200)))
	f.Add([]byte("EHLO x\r\nAUTH LOGIN\r\n" + strings.Repeat("A", 300) + "\r\n"))
	f.Add([]byte("AUTH PLAIN\r\n\x00\xff\r\nMAIL FROM:<a@b>\r\nDATA\r\n"))
	budget := auth.Budget{Total: 512, Line: 64, Session: time.Minute}
	s := newServer(f, func(o *serverOpts) { o.maxSize = 8192; o.budget = budget; o.fails, o.delay = 1<<20, 0 })
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatalf("the server stopped accepting: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		out, _ := io.ReadAll(c)
		if ms, _ := s.st.List(store.Filter{Limit: 1}); len(ms) > 0 {
			t.Fatal("a mail was stored without a login")
		}
		up := bytes.ToUpper(in)
		skip := bytes.Contains(up, []byte("STARTTLS")) || bytes.Contains(up, []byte("QUIT")) ||
			bytes.Contains(out, []byte("\n235 ")) || bytes.Contains(out, []byte("Too many errors"))
		long := len(in) > budget.Total
		lines := bytes.Split(in, []byte("\n"))
		for i, l := range lines {
			n := len(l) + 1 // with its LF
			if i == len(lines)-1 {
				n = len(l)
			}
			long = long || n > budget.Line
		}
		if long && !skip && !bytes.Contains(out, []byte("421 4.7.0 Too much input before login")) {
			t.Fatalf("%d bytes before login, no 421; got %q", len(in), out)
		}
	})
}
