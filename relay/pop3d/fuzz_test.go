package pop3d_test

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
)

// FuzzSession sends arbitrary bytes after a login. The server must survive,
// keep serving, and delete nothing unless the client said QUIT.
// go test ./relay/pop3d -run '^$' -fuzz FuzzSession -fuzztime 5m
func FuzzSession(f *testing.F) {
	f.Add([]byte("STAT\r\nLIST\r\nUIDL 1\r\nRETR 2\r\nTOP 1 0\r\nDELE 1\r\nRSET\r\n"))
	f.Add([]byte("DELE 1\r\nDELE 2\r\n"))
	f.Add([]byte("DELE 3\r\nQUIT\r\n"))
	f.Add([]byte("AUTH PLAIN\r\n*\r\nSTLS\r\nCAPA\r\n\x00\r\n"))
	s := newServer(f, true, nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		before, _ := s.st.View("dupont-mobile", "dupont")
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatalf("the server stopped accepting: %v", err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write([]byte("USER dupont-mobile\r\nPASS pw\r\n"))
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(io.Discard, c)
		c.Close()
		after, _ := s.st.View("dupont-mobile", "dupont")
		if len(after) < len(before) && !bytes.Contains(bytes.ToUpper(in), []byte("QUIT")) {
			t.Fatalf("messages deleted without QUIT: %d -> %d", len(before), len(after))
		}
		if len(after) == 0 { // keep something to delete for the next inputs
			for _, id := range []int64{1, 2, 3} {
				s.st.Restore(ctx0, "dupont-mobile", id)
			}
		}
	})
}

// FuzzPreAuth sends arbitrary bytes without logging in, to a server with a
// small pre-login budget. The server must survive and, when more than the
// budget was sent (and no STLS, QUIT or login intervened), answer
// -ERR [SYS/TEMP] before closing.
// go test ./relay/pop3d -run '^$' -fuzz FuzzPreAuth -fuzztime 5m -parallel=1
func FuzzPreAuth(f *testing.F) {
	f.Add([]byte("CAPA\r\nUSER x\r\nPASS y\r\n"))
	f.Add([]byte(strings.Repeat("USER abcdefgh\r\n", 50)))
	f.Add([]byte("AUTH PLAIN\r\n" + strings.Repeat("A", 100) + "\r\n"))
	f.Add([]byte("USER " + strings.Repeat("x", 2000) + "\r\n"))
	budget := auth.Budget{Total: 512, Line: 64, Session: time.Minute}
	s := newServerWith(f, true, nil, "127.0.0.0/8", budget, auth.NewThrottle(1<<20, time.Minute, 0))
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
		up := bytes.ToUpper(in)
		skip := bytes.Contains(up, []byte("STLS")) || bytes.Contains(up, []byte("QUIT")) ||
			bytes.Contains(out, []byte(" has ")) || bytes.Contains(out, []byte("too many errors"))
		long := len(in) > budget.Total
		lines := bytes.Split(in, []byte("\n"))
		for i, l := range lines {
			n := len(l) + 1
			if i == len(lines)-1 {
				n = len(l)
			}
			long = long || n > budget.Line
		}
		if long && !skip && !bytes.Contains(out, []byte("-ERR [SYS/TEMP] too much input before login")) {
			t.Fatalf("%d bytes before login, no -ERR [SYS/TEMP]; got %q", len(in), out)
		}
	})
}
