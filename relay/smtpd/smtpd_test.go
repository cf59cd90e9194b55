package smtpd_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/smtpd"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

var hashes = func() map[string]string {
	h, _ := auth.Hash("pw")
	return map[string]string{"dupont": h}
}()

type serverOpts struct {
	maxSize int64
	minFree uint64
	allow   string
	queue   smtpd.Queue
	budget  auth.Budget   // zero: the default
	fails   int           // failures allowed per address
	delay   time.Duration // per failure counted
}

type server struct {
	addr string
	st   *store.Store
}

func newServer(t testing.TB, mod ...func(*serverOpts)) *server {
	t.Helper()
	o := serverOpts{maxSize: 1 << 20, allow: "127.0.0.0/8", fails: 3, delay: 10 * time.Millisecond}
	for _, m := range mod {
		m(&o)
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if o.queue == nil {
		o.queue = st
	}
	srv := smtpd.New(smtpd.Options{
		Hostname: "relais.test", MaxMessageSize: o.maxSize, MinFreeSpace: o.minFree,
		Logins: auth.NewChecker(hashes), Throttle: auth.NewThrottle(o.fails, time.Minute, o.delay), Budget: o.budget,
		Allow: auth.Allowlist{netip.MustParsePrefix(o.allow)}, Queue: o.queue,
		AllowPlaintextAuth: auth.Allowlist{netip.MustParsePrefix("127.0.0.0/8")}, Log: slog.New(slog.DiscardHandler),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &server{addr: l.Addr().String(), st: st}
}

func send(addr string, body []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "dupont", "pw")); err != nil {
		return err
	}
	return c.SendMail("jean.dupont@laposte.net", []string{"01422@422.01.rss.fr"}, bytes.NewReader(body))
}

func TestAcceptedMailIsStoredWithOneReceivedLine(t *testing.T) {
	s := newServer(t)
	body := []byte("Subject: =?utf-8?q?Lot_n=C2=B01?=\r\nMessage-ID: <a@b>\r\n\r\n" + strings.Repeat("y", 10000) + "\r\n")
	if err := send(s.addr, body); err != nil {
		t.Fatal(err)
	}
	ms, _ := s.st.List(store.Filter{})
	if len(ms) != 1 {
		t.Fatalf("%d messages stored", len(ms))
	}
	m := ms[0]
	if m.Account != "dupont" || m.Subject != "Lot n°1" || m.MessageID != "<a@b>" || m.To[0] != "01422@422.01.rss.fr" {
		t.Fatalf("%+v", m)
	}
	got, _ := s.st.Body(m.ID)
	if !strings.HasPrefix(string(got), "Received: from ") || !strings.Contains(string(got), "(authenticated as dupont)") {
		t.Fatalf("no Received line: %q", got[:200])
	}
	if !bytes.HasSuffix(got, body) || bytes.Count(got, []byte("Received:")) != 1 {
		t.Fatal("the mail's own bytes changed")
	}
}

func TestLongLinesAreAccepted(t *testing.T) {
	s := newServer(t)
	body := []byte("Subject: long\r\n\r\n" + strings.Repeat("A", 100_000) + "\r\n")
	if err := send(s.addr, body); err != nil {
		t.Fatalf("a 100,000-character line was refused: %v", err)
	}
}

type failingQueue struct{}

func (failingQueue) Submit(context.Context, store.Envelope, []byte) (store.Accepted, error) {
	return store.Accepted{}, errors.New("disk I/O error")
}
func (failingQueue) FreeSpace() (uint64, error) { return 1 << 40, nil }

func TestStorageFailureAnswers451Not554(t *testing.T) {
	s := newServer(t, func(o *serverOpts) { o.queue = failingQueue{} })
	err := send(s.addr, []byte("Subject: x\r\n\r\nx\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("want 451, got %v", err)
	}
}

func TestLowDiskAnswers452(t *testing.T) {
	s := newServer(t, func(o *serverOpts) { o.minFree = 1 << 62 })
	err := send(s.addr, []byte("Subject: x\r\n\r\nx\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 {
		t.Fatalf("want 452, got %v", err)
	}
}

func TestAddressOutsideAllowIsRefusedAtConnect(t *testing.T) {
	s := newServer(t, func(o *serverOpts) { o.allow = "10.0.0.0/8" })
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "554 5.7.1 127.0.0.1 is not allowed") {
		t.Fatalf("got %q", buf[:n])
	}
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection stayed open")
	}
}
