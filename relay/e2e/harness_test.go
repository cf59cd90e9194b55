package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sesam-relay-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sesam-relay")
	out, err := exec.Command("go", "build", "-o", binary, "../../cmd/sesam-relay").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the binary: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	login    = "dupont"
	password = "billing-pw"
	sender   = "jean.dupont@laposte.net"
	fund     = "01422@422.01.rss.fr"
	// other is the default recipient of test mail: mail to a fund must be an
	// S/MIME lot, or the guard holds it.
	other = "secretariat@cabinet-voisin.test"
)

var passwordHash = func() string { h, _ := auth.Hash(password); return h }()

// opts shape a test relay's config; zero values give the defaults below.
type opts struct {
	allow     string // TOML array body
	top       string // extra top-level keys
	listen    string // extra [listen] keys
	delivery  string // [delivery] body
	localAuth string // [local_auth] body
	stateDir  string
	upstream  string   // [account.upstream] smtp; default smtp://provider
	provExtra string   // more [account.upstream] keys; default insecure = true
	accounts  string   // more [[account]] tables
	imap      string   // host:port of the provider's IMAP (plain, insecure)
	folders   string   // TOML array body of the folders polled; default "INBOX", "SPAM"
	env       []string // more environment for the daemon (NOTIFY_SOCKET...)
	control   string   // the control socket's path; default in the relay's folder
}

type relay struct {
	t         *testing.T
	dir       string
	cfgPath   string
	control   string
	stateDir  string
	prov      *demo.Provider
	metrics   string // host:port of /metrics, when [metrics] listen is set
	web       string // host:port of the practice's page, when [listen] web is set
	cmd       *exec.Cmd
	logMu     sync.Mutex
	log       bytes.Buffer
	smtp      string // host:port
	smtps     string
	pop3      string
	pop3s     string
	env       []string
	submitted int // mails sent by submitOne, for distinct Message-IDs
}

func newProvider(t *testing.T) *demo.Provider {
	p, err := demo.Start("127.0.0.1:0", "jean.dupont", "provider-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// newRelay writes a config for prov and starts the binary.
func newRelay(t *testing.T, prov *demo.Provider, o opts) *relay {
	t.Helper()
	dir := t.TempDir()
	r := &relay{t: t, dir: dir, prov: prov, cfgPath: filepath.Join(dir, "config.toml"), control: o.control, env: o.env}
	if r.control == "" {
		r.control = filepath.Join(dir, "control.sock")
	}
	if o.allow == "" {
		o.allow = `"127.0.0.0/8", "::1/128"`
	}
	if o.delivery == "" {
		o.delivery = `first_retry = "1s"` + "\n" + `max_retry = "2s"` + "\n" + `timeout = "3s"`
	}
	if o.localAuth == "" {
		o.localAuth = `failure_delay = "10ms"`
	}
	if o.upstream == "" {
		o.upstream = "smtp://" + prov.Addr()
	}
	if o.provExtra == "" {
		o.provExtra = "insecure = true"
	}
	if o.imap != "" {
		if o.folders == "" {
			o.folders = `"INBOX", "SPAM"`
		}
		o.provExtra += fmt.Sprintf("\n  imap = \"imap://%s\"\n  folders = [%s]\n  poll = \"@every 1h\"", o.imap, o.folders)
	}
	r.stateDir = o.stateDir
	if r.stateDir == "" {
		r.stateDir = filepath.Join(dir, "state")
	}
	os.WriteFile(filepath.Join(dir, "upstream-pw"), []byte("provider-pw\n"), 0o600)
	cfg := fmt.Sprintf(`hostname = "relais.test"
state_dir = %q
%s
[listen]
smtp = ["127.0.0.1:0"]
smtps = ["127.0.0.1:0"]
pop3 = ["127.0.0.1:0"]
pop3s = ["127.0.0.1:0"]
control = %q
allow = [%s]
%s
[delivery]
%s
[local_auth]
%s
[[account]]
name = %q
password_hash = %q
address = %q
  [account.upstream]
  smtp = %q
  username = "jean.dupont"
  password_file = %q
  %s
  [[account.login]]
  name = "dupont-mobile"
  password_hash = %q
  human = true
%s
`, r.stateDir, o.top, r.control, o.allow, o.listen, o.delivery, o.localAuth, login, passwordHash, sender, o.upstream, filepath.Join(dir, "upstream-pw"), o.provExtra, passwordHash, o.accounts)
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *relay) start() {
	r.t.Helper()
	r.cmd = exec.Command(binary, "--config", r.cfgPath, "serve")
	r.cmd.Env = append(os.Environ(), r.env...)
	r.cmd.Stdout = &lockedWriter{r}
	r.cmd.Stderr = &lockedWriter{r}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var st control.Status
		if err := control.Call(r.control, control.Request{Cmd: "status"}, &st); err == nil && st.Running {
			for _, l := range st.Listeners {
				if a, ok := strings.CutPrefix(l, "smtp://"); ok {
					r.smtp = a
				}
				if a, ok := strings.CutPrefix(l, "smtps://"); ok {
					r.smtps = a
				}
				if a, ok := strings.CutPrefix(l, "pop3://"); ok {
					r.pop3 = a
				}
				if a, ok := strings.CutPrefix(l, "pop3s://"); ok {
					r.pop3s = a
				}
				if a, ok := strings.CutPrefix(l, "metrics://"); ok {
					r.metrics = a
				}
				if a, ok := strings.CutPrefix(l, "web://"); ok {
					r.web = a
				}
			}
			return
		}
		if r.cmd.ProcessState != nil {
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	r.t.Fatalf("the relay did not start; its log:\n%s", r.Log())
}

type lockedWriter struct{ r *relay }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.r.logMu.Lock()
	defer w.r.logMu.Unlock()
	return w.r.log.Write(b)
}

// Log is what the daemon wrote so far.
func (r *relay) Log() string { r.logMu.Lock(); defer r.logMu.Unlock(); return r.log.String() }

func (r *relay) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// kill is a crash: SIGKILL, no chance to clean up.
func (r *relay) kill() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	r.cmd.Wait()
	r.cmd = nil
}

func (r *relay) hostPort(tls bool) (string, string) {
	a := r.smtp
	if tls {
		a = r.smtps
	}
	h, p, _ := strings.Cut(a, ":")
	return h, p
}

// cli runs a subcommand of the real binary against this relay.
func (r *relay) cli(args ...string) (string, int) {
	cmd := exec.Command(binary, append([]string{"--config", r.cfgPath}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return out.String(), code
}

// queue is the whole queue, oldest first, every page of it.
func (r *relay) queue() []store.Message {
	r.t.Helper()
	var ms []store.Message
	for page := 1; ; page++ {
		var p control.QueuePage
		if err := control.Call(r.control, control.Request{Cmd: "queue", All: true, Page: page}, &p); err != nil {
			r.t.Fatal(err)
		}
		ms = append(p.Messages, ms...) // older pages go first
		if page >= p.Pages {
			return ms
		}
	}
}

func (r *relay) status() control.Status {
	r.t.Helper()
	var st control.Status
	if err := control.Call(r.control, control.Request{Cmd: "status"}, &st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *relay) states() map[store.State]int {
	out := map[store.State]int{}
	for _, m := range r.queue() {
		out[m.State]++
	}
	return out
}

// mailbox opens the store read-only (as the CLI does with the daemon down)
// to read the account's local mailbox.
func (r *relay) mailbox() ([]store.MailboxEntry, func(int64) []byte) {
	r.t.Helper()
	k, err := keys.Load(filepath.Join(r.dir, "keys", "store-key")) // the bodies are sealed to it
	if err != nil {
		r.t.Fatal(err)
	}
	st, err := store.OpenReadOnlySealed(r.stateDir, k)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { st.Close() })
	mb, err := st.Mailbox(login)
	if err != nil {
		r.t.Fatal(err)
	}
	return mb, func(id int64) []byte { b, _ := st.MailboxBody(id); return b }
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// result is one line of smtpclient.py's output.
type result struct {
	I     int    `json:"i"`
	Code  int    `json:"code"`
	Resp  string `json:"resp"`
	Stage string `json:"stage"`
}

type pyArgs map[string]any

// python runs testdata/smtpclient.py (Python's smtplib) against the relay.
func (r *relay) python(a pyArgs) []result {
	r.t.Helper()
	host, port := r.hostPort(a["mode"] == "ssl")
	base := pyArgs{"host": host, "port": port, "user": login, "password": password, "from": sender, "to": other, "mode": "starttls"}
	for k, v := range a {
		base[k] = v
	}
	if base["mode"] == "ssl" {
		base["host"], base["port"] = host, port
	}
	b, _ := json.Marshal(base)
	cmd := exec.Command("python3", "testdata/smtpclient.py", string(b))
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("smtpclient.py: %v\n%s", err, out)
	}
	return parseResults(out)
}

func parseResults(out []byte) []result {
	var res []result
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var x result
		if json.Unmarshal(sc.Bytes(), &x) == nil {
			res = append(res, x)
		}
	}
	return res
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: .ci/run installs it (apt-get install -y swaks postfix)", tool)
		}
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *safeBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// popResult is what pop3client.py prints.
type popResult struct {
	Welcome  string   `json:"welcome"`
	Stat     []int64  `json:"stat"`
	UIDL     []string `json:"uidl"`
	Quit     string   `json:"quit"`
	Messages []struct {
		Octets int64  `json:"octets"`
		Raw    []byte `json:"raw"`
	} `json:"messages"`
}

// poplib collects with Python's poplib (testdata/pop3client.py).
func (r *relay) poplib(a pyArgs) popResult {
	r.t.Helper()
	addr := r.pop3
	if a["mode"] == "ssl" {
		addr = r.pop3s
	}
	host, port, _ := strings.Cut(addr, ":")
	base := pyArgs{"host": host, "port": port, "user": login, "password": password, "mode": "stls"}
	for k, v := range a {
		base[k] = v
	}
	b, _ := json.Marshal(base)
	out, err := exec.Command("python3", "testdata/pop3client.py", string(b)).CombinedOutput()
	if err != nil {
		r.t.Fatalf("pop3client.py: %v\n%s", err, out)
	}
	var res popResult
	if err := json.Unmarshal(out, &res); err != nil {
		r.t.Fatalf("pop3client.py output: %v\n%s", err, out)
	}
	return res
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// rawSubmit logs in on a raw socket (plain SMTP, AUTH PLAIN) and sends each
// data as it is after DATA — bytes no real client would write — returning
// the reply to each.
func (r *relay) rawSubmit(t *testing.T, datas ...string) []string {
	t.Helper()
	c, err := net.Dial("tcp", r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	reply := func() string {
		var last string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a reply: %v (after %q)", err, last)
			}
			last = strings.TrimRight(l, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				return last
			}
		}
	}
	say := func(line string) string {
		c.Write([]byte(line + "\r\n"))
		return reply()
	}
	reply()
	say("EHLO raw")
	// Over STARTTLS: the relay reads DATA beneath go-smtp's TLS layer too.
	if got := say("STARTTLS"); !strings.HasPrefix(got, "220") {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	c, br = tc, bufio.NewReader(tc)
	say("EHLO raw")
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + login + "\x00" + password))
	if got := say("AUTH PLAIN " + plain); !strings.HasPrefix(got, "235") {
		t.Fatalf("AUTH: %q", got)
	}
	var out []string
	for _, d := range datas {
		say("MAIL FROM:<" + sender + ">")
		say("RCPT TO:<" + other + ">")
		if got := say("DATA"); !strings.HasPrefix(got, "354") {
			t.Fatalf("DATA: %q", got)
		}
		c.Write([]byte(d))
		out = append(out, reply())
	}
	say("QUIT")
	return out
}
