package smtpd_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

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
