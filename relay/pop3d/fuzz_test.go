package pop3d_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
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
