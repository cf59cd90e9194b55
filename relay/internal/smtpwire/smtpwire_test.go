package smtpwire_test

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/internal/smtpwire"
)

type backend struct {
	mu  sync.Mutex
	got [][]byte
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b}, nil }

type session struct{ b *backend }

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }
func (s *session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *session) Reset()                               {}
func (s *session) Logout() error                        { return nil }
func (s *session) Data(r io.Reader) error {
	src, ok := smtpwire.Raw(r)
	if !ok {
		return smtpwire.ErrLayout
	}
	data, err := smtpwire.ReadData(src.R, 0)
	src.Done()
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.got = append(s.b.got, append([]byte(nil), data...))
	s.b.mu.Unlock()
	return nil
}

// TestGoSMTPRoundTripKeepsEveryByte proves, on go-smtp as it is in go.mod,
// that smtpwire still finds the reader and writer it relies on: after a
// go-smtp upgrade that moves them, this fails before any practice's mail does.
func TestGoSMTPRoundTripKeepsEveryByte(t *testing.T) {
	b := &backend{}
	srv := smtp.NewServer(b)
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	bodies := []string{
		"Subject: lot\r\r\n\r\r\nTUlNRS1W\r\r\nZXJzaW9u\r\r\n", // CR CR LF lines, even the last
		".leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\n",  // dot-stuffing both ways
		"a bare\rCR inside\r\n",
		"no line end at the end",
	}
	c, err := smtp.Dial(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, body := range bodies {
		if err := c.Mail("a@b.test", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("c@d.test", nil); err != nil {
			t.Fatal(err)
		}
		wc, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		if err := smtpwire.WriteBody(c, wc, []byte(body)); err != nil {
			t.Fatal(err)
		}
		if err := wc.Close(); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.got) != len(bodies) {
		t.Fatalf("the server got %d mails, want %d", len(b.got), len(bodies))
	}
	for i, body := range bodies {
		want := body
		if i == len(bodies)-1 {
			want += "\r\n" // a mail always ends with a line end on the wire
		}
		if string(b.got[i]) != want {
			t.Errorf("sent %q, the server got %q", want, b.got[i])
		}
	}
}
