package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/control"
)

// reload edits the relay's config with edit, sends SIGHUP, and returns the
// verdict the relay logged: "config reloaded" or "config reload refused...".
func (r *relay) reload(edit func(cfg string) string) string {
	r.t.Helper()
	b, err := os.ReadFile(r.cfgPath)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.cfgPath, []byte(edit(string(b))), 0o600); err != nil {
		r.t.Fatal(err)
	}
	verdicts := func() int {
		l := r.Log()
		return strings.Count(l, "msg=\"config reloaded\"") + strings.Count(l, "msg=\"config reload refused")
	}
	before := verdicts()
	r.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(r.t, 30*time.Second, "the reload's verdict in the log", func() bool { return verdicts() > before })
	lines := strings.Split(strings.TrimSpace(r.Log()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "config reload") {
			return lines[i]
		}
	}
	return ""
}

// slowSubmit starts testdata/slowsubmit.py (smtplib), which stops in the
// middle of DATA; the returned function lets it finish and gives the reply.
func (r *relay) slowSubmit() func() result {
	r.t.Helper()
	host, port := r.hostPort(false)
	b, _ := json.Marshal(pyArgs{"host": host, "port": port, "user": login, "password": password, "from": sender, "to": other})
	cmd := exec.Command("python3", "testdata/slowsubmit.py", string(b))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "data-started" {
		r.t.Fatalf("slowsubmit.py did not reach DATA: %q %v", line, err)
	}
	return func() result {
		io.WriteString(stdin, "go\n")
		line, _ := out.ReadString('\n')
		cmd.Wait()
		var res result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			r.t.Fatalf("slowsubmit.py printed %q", line)
		}
		return res
	}
}

// A pop3 session held open across the reload, with Python's poplib: it
// deletes message 1 and quits once told to.
const popAcross = `
import json, poplib, sys
a = json.loads(sys.argv[1])
p = poplib.POP3(a["host"], int(a["port"]), timeout=30)
p.user(a["user"]); p.pass_(a["password"])
print(p.stat()[0], flush=True)
sys.stdin.readline()
p.dele(1)
print(p.quit().decode(), flush=True)
`

func TestReloadAppliesNewLoginsAndFinishesTheSessionsUnderWay(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{allow: `"127.0.0.0/8"`, listen: "allow_plaintext_auth = true"})
	msg := filepath.Join(r.dir, "return.eml")
	os.WriteFile(msg, []byte("From: <arl@cpam.test>\r\nSubject: ARL\r\n\r\nok\r\n"), 0o600)
	if out, code := r.cli("import", login, msg); code != 0 {
		t.Fatalf("import: %s", out)
	}
	listeners := r.status().Listeners

	// Both sessions begin under the old config.
	finishSMTP := r.slowSubmit()
	host, port, _ := strings.Cut(r.pop3, ":")
	b, _ := json.Marshal(pyArgs{"host": host, "port": port, "user": login, "password": password})
	pop := exec.Command("python3", "-c", popAcross, string(b))
	popIn, _ := pop.StdinPipe()
	popOut, _ := pop.StdoutPipe()
	pop.Stderr = os.Stderr
	if err := pop.Start(); err != nil {
		t.Fatal(err)
	}
	popLines := bufio.NewReader(popOut)
	if n, _ := popLines.ReadString('\n'); strings.TrimSpace(n) != "1" {
		t.Fatalf("POP3 STAT before the reload: %q", n)
	}

	verdict := r.reload(func(cfg string) string {
		return cfg + fmt.Sprintf("  [[account.login]]\n  name = \"secretariat\"\n  password_hash = %q\n", passwordHash)
	})
	if !strings.Contains(verdict, "config reloaded") {
		t.Fatalf("reload: %s\n%s", verdict, r.Log())
	}

	if res := finishSMTP(); res.Code != 250 {
		t.Fatalf("the mail submitted across the reload got %d %s", res.Code, res.Resp)
	}
	waitFor(t, 10*time.Second, "the mail submitted across the reload to reach the provider", func() bool {
		for _, m := range prov.Mails() {
			if strings.Contains(string(m.Data), "across a reload") && strings.Contains(string(m.Data), "second half") {
				return true
			}
		}
		return false
	})
	io.WriteString(popIn, "go\n")
	if q, _ := popLines.ReadString('\n'); !strings.HasPrefix(q, "+OK") {
		t.Fatalf("POP3 QUIT after the reload: %q", q)
	}
	pop.Wait()
	if st := r.poplib(pyArgs{"mode": "plain"}); st.Stat[0] != 0 {
		t.Fatalf("the DELE of the session across the reload was not applied: STAT %v", st.Stat)
	}

	if res := r.python(pyArgs{"user": "secretariat"}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("the login added by the reload: %+v", res)
	}
	if got := r.status().Listeners; !slices.Equal(got, listeners) {
		t.Fatalf("the listening sockets changed across the reload: %v, then %v", listeners, got)
	}
}

func TestReloadRefusesABrokenConfigAndKeepsTheRunningOne(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	listeners := r.status().Listeners

	verdict := r.reload(func(cfg string) string {
		return strings.Replace(cfg, "hostname = ", "max_mesage_size = \"1M\"\nhostname = ", 1)
	})
	if !strings.Contains(verdict, "refused") || !strings.Contains(verdict, "max_mesage_size") || !strings.Contains(verdict, "line") {
		t.Fatalf("a misspelt key: the verdict should refuse and name the key and its line: %s", verdict)
	}

	// A config that parses but cannot apply: a port someone else holds.
	busy, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	verdict = r.reload(func(cfg string) string {
		cfg = strings.Replace(cfg, "max_mesage_size = \"1M\"\n", "", 1)
		return strings.Replace(cfg, `pop3 = ["127.0.0.1:0"]`, fmt.Sprintf(`pop3 = ["127.0.0.1:0", %q]`, busy.Addr().String()), 1)
	})
	if !strings.Contains(verdict, "refused") || !strings.Contains(verdict, "listening for pop3") {
		t.Fatalf("a busy port: %s", verdict)
	}

	if res := r.python(nil); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission after refused reloads: %+v", res)
	}
	waitFor(t, 10*time.Second, "delivery after refused reloads", func() bool { return len(prov.Mails()) == 1 })
	if got := r.status().Listeners; !slices.Equal(got, listeners) {
		t.Fatalf("a refused reload changed the listeners: %v, then %v", listeners, got)
	}
}

func TestReloadSendsWaitingMailThroughTheNewProvider(t *testing.T) {
	prov := newProvider(t)
	dead, _ := netListen()
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there: connection refused
	r := newRelay(t, prov, opts{upstream: "smtp://" + deadAddr})
	if res := r.python(nil); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submit: %+v", res)
	}
	waitFor(t, 10*time.Second, "the mail deferred", func() bool { return r.states()["deferred"] == 1 })

	verdict := r.reload(func(cfg string) string { return strings.Replace(cfg, deadAddr, prov.Addr(), 1) })
	if !strings.Contains(verdict, "config reloaded") {
		t.Fatalf("reload: %s", verdict)
	}
	waitFor(t, 15*time.Second, "the waiting mail delivered through the new provider", func() bool { return len(prov.Mails()) == 1 })
	if got := r.status().Accounts[0].Upstream; !strings.Contains(got, prov.Addr()) {
		t.Fatalf("status still names the old provider: %s", got)
	}
}

// Systemd's side of Type=notify and WatchdogSec=, without systemd: the
// datagrams the daemon sends to NOTIFY_SOCKET, and the journal's prefixes.
func TestServeTellsSystemdReadyReloadingStoppingAndPingsTheWatchdog(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// On the first READY=1, before anything else, ask the control socket
	// for the listeners and dial each: READY=1 must come only once they are
	// all open, as systemd starts the billing software's dependents then.
	control := filepath.Join(dir, "control.sock")
	atReady := make(chan error, 1)
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		ready := false
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			m := string(buf[:n])
			if !ready && strings.Contains(m, "READY=1") {
				ready = true
				atReady <- allAnswer(control)
			}
			got <- m
		}
	}()
	expect := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-got:
				if strings.Contains(m, want) {
					return
				}
			case <-deadline:
				t.Fatalf("systemd was never told %s", want)
			}
		}
	}
	prov := newProvider(t)
	r := newRelay(t, prov, opts{control: control, env: []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=600000", "JOURNAL_STREAM=8:1234"}})
	expect("READY=1")
	if err := <-atReady; err != nil {
		t.Fatalf("at READY=1: %v", err)
	}
	expect("WATCHDOG=1")
	expect("WATCHDOG=1")
	r.reload(func(cfg string) string { return cfg })
	expect("RELOADING=1")
	expect("READY=1")
	r.stop()
	expect("STOPPING=1")

	// Under the journal: a priority first, and no time stamp of our own.
	for _, line := range strings.Split(strings.TrimSpace(r.Log()), "\n") {
		if !strings.HasPrefix(line, "<6>") && !strings.HasPrefix(line, "<4>") && !strings.HasPrefix(line, "<3>") {
			t.Fatalf("a log line without its syslog priority: %q", line)
		}
		if strings.Contains(line, "time=") {
			t.Fatalf("a log line with its own time stamp under the journal: %q", line)
		}
	}
}

// `sesam-relay reload` (what systemctl reload runs) waits for the verdict
// and fails when the config is refused, so the technician sees it at once.
func TestReloadCommandWaitsForTheVerdictAndFailsOnARefusal(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	cfg, _ := os.ReadFile(r.cfgPath)

	os.WriteFile(r.cfgPath, append(cfg, fmt.Sprintf("  [[account.login]]\n  name = \"secretariat\"\n  password_hash = %q\n", passwordHash)...), 0o600)
	if out, code := r.cli("reload"); code != 0 || !strings.Contains(out, "config reloaded") {
		t.Fatalf("reload of a good config: %d %s", code, out)
	}
	// Already applied when the command returns: no waiting.
	if res := r.python(pyArgs{"user": "secretariat"}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("the login added by the reload, right after it: %+v", res)
	}

	os.WriteFile(r.cfgPath, append([]byte("retension = \"90d\"\n"), cfg...), 0o600)
	if out, code := r.cli("reload"); code != 1 || !strings.Contains(out, "retension") || !strings.Contains(out, "line 1") || !strings.Contains(out, "running config is kept") {
		t.Fatalf("reload of a misspelt key: %d %s", code, out)
	}
	busy, _ := netListen()
	defer busy.Close()
	os.WriteFile(r.cfgPath, []byte(strings.Replace(string(cfg), `pop3 = ["127.0.0.1:0"]`, fmt.Sprintf(`pop3 = [%q]`, busy.Addr().String()), 1)), 0o600)
	if out, code := r.cli("reload"); code != 1 || !strings.Contains(out, "listening for pop3") || !strings.Contains(out, "running config is kept") {
		t.Fatalf("reload onto a busy port: %d %s", code, out)
	}
	if res := r.python(nil); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission after refused reloads: %+v", res)
	}
	if res := r.python(pyArgs{"user": "secretariat"}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("the refused reloads undid the good one: %+v", res)
	}
}

// allAnswer asks the daemon for its listeners and dials each: an error if
// the control socket or any of the four listeners does not answer.
func allAnswer(controlPath string) error {
	var st control.Status
	if err := control.Call(controlPath, control.Request{Cmd: "status"}, &st); err != nil {
		return fmt.Errorf("the control socket does not answer: %v", err)
	}
	if len(st.Listeners) != 4 {
		return fmt.Errorf("listeners %v, want 4", st.Listeners)
	}
	for _, l := range st.Listeners {
		_, addr, _ := strings.Cut(l, "://")
		if !dialOK(addr) {
			return fmt.Errorf("%s does not answer", l)
		}
	}
	return nil
}
