package pop3d_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/internal/testscript"
	"github.com/sesam-relay/sesam-relay/relay/pop3d"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

var messages = []string{
	"Subject: one\r\n\r\nbody one\r\n",
	"Subject: two\r\n\r\n.a line that starts with a dot\r\nbare LF line\n",
	"Subject: three\r\n\r\nno final newline",
}

var ctx0 = context.Background()

var hash = func() string { h, _ := auth.Hash("pw"); return h }()

type server struct {
	addr string
	st   *store.Store
}

func newServer(t testing.TB, plaintext bool, tlsConf *tls.Config) *server {
	return newServerAllowing(t, plaintext, tlsConf, "127.0.0.0/8")
}

func newServerAllowing(t testing.TB, plaintext bool, tlsConf *tls.Config, allow string) *server {
	t.Helper()
	return newServerWith(t, plaintext, tlsConf, allow, auth.Budget{}, auth.NewThrottle(3, time.Minute, 10*time.Millisecond))
}

// newServerWith sets the pre-login budget (zero: the default) and the throttle.
func newServerWith(t testing.TB, plaintext bool, tlsConf *tls.Config, allow string, budget auth.Budget, th *auth.Throttle) *server {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, m := range messages {
		if r := added(st.AddMail(ctx0, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1}, []byte(m), nil)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	srv := pop3d.New(pop3d.Options{
		Hostname: "relais.test", TLS: tlsConf, AllowPlaintextAuth: plaintextFrom(plaintext),
		Logins:    auth.NewChecker(map[string]string{"dupont": hash, "dupont-mobile": hash}),
		AccountOf: map[string]string{"dupont": "dupont", "dupont-mobile": "dupont"},
		Throttle:  th, Budget: budget,
		Allow: auth.Allowlist{netip.MustParsePrefix(allow)}, Store: st, Log: slog.New(slog.DiscardHandler),
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &server{addr: l.Addr().String(), st: st}
}

type client struct {
	c net.Conn
	r *bufio.Reader
}

// runDialogue plays a script. Lines start with a connection name (c, d…):
//
//	c -> TEXT     send TEXT and CRLF
//	c => EXPR     send raw bytes: Go-quoted strings joined by +, N*"s" repeats
//	c <~ PREFIX   the next line starts with PREFIX
//	c <* LINE     the next line is exactly LINE (inside multi-line answers)
//	c <- EOF      the server closed the connection
//	-- reconnect  open c again
func runDialogue(t *testing.T, addr, path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conns := map[string]*client{}
	get := func(name string, fresh bool) *client {
		if c := conns[name]; c != nil && !fresh {
			return c
		}
		if c := conns[name]; c != nil {
			c.c.Close()
		}
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[name] = &client{nc, bufio.NewReader(nc)}
		return conns[name]
	}
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()
	for n, line := range strings.Split(string(src), "\n") {
		where := fmt.Sprintf("%s:%d", filepath.Base(path), n+1)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == "-- reconnect" {
			get("c", true)
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		c := get(name, false)
		c.c.SetDeadline(time.Now().Add(10 * time.Second))
		op, arg, _ := strings.Cut(rest, " ")
		switch op {
		case "->":
			c.c.Write([]byte(arg + "\r\n"))
		case "=>":
			c.c.Write([]byte(testscript.MustExpr(t, where, arg)))
		case "<~", "<*":
			got, err := c.r.ReadString('\n')
			got = strings.TrimRight(got, "\r\n")
			if err != nil {
				t.Fatalf("%s: want %q, got error %v", where, arg, err)
			}
			if (op == "<~" && !strings.HasPrefix(got, arg)) || (op == "<*" && got != arg) {
				t.Fatalf("%s: want %q, got %q", where, arg, got)
			}
		case "<-":
			if l, err := c.r.ReadString('\n'); err == nil {
				t.Fatalf("%s: want the connection closed, got %q", where, l)
			}
		default:
			t.Fatalf("%s: cannot read %q", where, line)
		}
	}
}

func TestDialogues(t *testing.T) {
	files, _ := filepath.Glob("testdata/dialogues/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runDialogue(t, newServer(t, true, nil).addr, f)
		})
	}
}

func TestPlaintextLoginIsRefusedUnlessAllowed(t *testing.T) {
	s := newServer(t, false, &tls.Config{})
	c, _ := net.Dial("tcp", s.addr)
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	fmt.Fprintf(c, "CAPA\r\n")
	var capa []string
	for {
		l, _ := r.ReadString('\n')
		l = strings.TrimSpace(l)
		if l == "." || l == "" {
			break
		}
		capa = append(capa, l)
	}
	got := strings.Join(capa, ",")
	if !strings.Contains(got, "STLS") || strings.Contains(got, "USER") {
		t.Fatalf("CAPA without TLS: %s", got)
	}
	fmt.Fprintf(c, "USER dupont\r\n")
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "-ERR [AUTH]") {
		t.Fatalf("USER in clear: %q", l)
	}
}

func TestAddressOutsideAllowIsRefusedAtConnect(t *testing.T) {
	s := newServerAllowing(t, true, nil, "10.0.0.0/8")
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "-ERR 127.0.0.1 is not allowed") {
		t.Fatalf("got %q", l)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection stayed open")
	}
}

func plaintextFrom(yes bool) auth.Allowlist {
	if !yes {
		return nil
	}
	return auth.Allowlist{netip.MustParsePrefix("127.0.0.0/8")}
}

// addResult is AddMail's outcome and error together, for one-line checks.
type addResult struct {
	store.Added
	Err error
}

func added(a store.Added, err error) addResult { return addResult{a, err} }
