package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

func TestQueueCommandsHoldReleaseRetryDrop(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.TempFail)
	r := newRelay(t, prov, opts{delivery: "first_retry = \"30s\"\nmax_retry = \"1m\"\ntimeout = \"3s\""})
	submitOne(t, r)
	submitOne(t, r)
	waitFor(t, 10*time.Second, "two deferrals", func() bool { return r.states()[store.Deferred] == 2 })
	out, code := r.cli("queue")
	if code != 0 || !strings.Contains(out, "deferred") || !strings.Contains(out, "451") || !strings.Contains(out, "lot m-0") {
		t.Fatalf("queue (%d):\n%s", code, out)
	}
	var page struct {
		Total    int             `json:"total"`
		Messages []store.Message `json:"messages"`
	}
	out, _ = r.cli("queue", "--json")
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Messages) != 2 || page.Total != 2 {
		t.Fatalf("queue --json: %v\n%s", err, out)
	}
	if strings.Contains(out, "0001-01-01") || strings.Contains(out, `"NextAttempt"`) || !strings.Contains(out, `"next_attempt"`) {
		t.Errorf("queue --json: Go names or unset times:\n%s", out)
	}
	ms := page.Messages
	a, b := itoa(ms[0].ID), itoa(ms[1].ID)
	if out, code := r.cli("queue", "hold", a, "--reason", "checking with the fund"); code != 0 {
		t.Fatalf("hold: %s", out)
	}
	if out, code := r.cli("queue", "drop", b); code != 0 {
		t.Fatalf("drop: %s", out)
	}
	if out, code := r.cli("queue", "retry", b); code == 0 || !strings.Contains(out, "dropped") {
		t.Fatalf("retry of a dropped mail: %d %s", code, out)
	}
	prov.SetMode(demo.Normal)
	time.Sleep(1500 * time.Millisecond)
	if len(prov.Mails()) != 0 {
		t.Fatal("a held or dropped mail was sent")
	}
	out, _ = r.cli("queue", "show", a, "--json")
	var sh control.Show
	if err := json.Unmarshal([]byte(out), &sh); err != nil || sh.Message.HoldReason != "checking with the fund" || len(sh.Events) < 3 {
		t.Fatalf("show: %v %+v", err, sh)
	}
	r.cli("queue", "release", a)
	waitFor(t, 10*time.Second, "the released mail delivered", func() bool { return len(prov.Mails()) == 1 })
	if out, code := r.cli("queue", "show", "999"); code != 1 || !strings.Contains(out, "no such message") {
		t.Fatalf("show of a missing id: %d %s", code, out)
	}
	if _, code := r.cli("queue", "bogus", "1"); code != 2 {
		t.Fatal("unknown action accepted")
	}
}

func TestRetryMakesADeferredMailGoNow(t *testing.T) {
	prov := newProvider(t)
	prov.Off()
	r := newRelay(t, prov, opts{delivery: "first_retry = \"1h\"\nmax_retry = \"2h\"\ntimeout = \"3s\""})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a deferral", func() bool { return only(t, r).State == store.Deferred })
	prov.On()
	time.Sleep(500 * time.Millisecond)
	if len(prov.Mails()) != 0 {
		t.Fatal("sent before its time")
	}
	if out, code := r.cli("queue", "retry", itoa(only(t, r).ID)); code != 0 {
		t.Fatal(out)
	}
	waitFor(t, 10*time.Second, "delivery after retry", func() bool { return len(prov.Mails()) == 1 })
}

func TestStatusAndQueueWorkWithTheDaemonDown(t *testing.T) {
	prov := newProvider(t)
	prov.Off()
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a deferral", func() bool { return only(t, r).State == store.Deferred })
	r.stop()
	out, code := r.cli("status")
	if code != 3 || !strings.Contains(out, "NOT RUNNING") || !strings.Contains(out, "1 waiting") {
		t.Fatalf("status with the daemon down (%d):\n%s", code, out)
	}
	out, code = r.cli("queue")
	if code != 0 || !strings.Contains(out, "not running") || !strings.Contains(out, "lot m-0") {
		t.Fatalf("queue with the daemon down (%d):\n%s", code, out)
	}
	if out, code := r.cli("queue", "retry", "1"); code != 1 || !strings.Contains(out, "not running") {
		t.Fatalf("retry with the daemon down: %d %s", code, out)
	}
}

func TestCheckTriesEachUpstreamLogin(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	out, code := r.cli("check")
	if code != 0 || !strings.Contains(out, "dupont: OK — logged in to smtp://") {
		t.Fatalf("check (%d):\n%s", code, out)
	}
	prov.SetMode(demo.AuthFail)
	out, code = r.cli("check")
	if code != 1 || !strings.Contains(out, "dupont: FAILED") || !strings.Contains(out, "credentials rejected") {
		t.Fatalf("check with a refused login (%d):\n%s", code, out)
	}
	prov.Off()
	out, code = r.cli("check")
	if code != 1 || !strings.Contains(out, "unreachable") {
		t.Fatalf("check with the provider down (%d):\n%s", code, out)
	}
}

func TestConfigErrorNamesTheLineAndServeRefusesToStart(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("state_dir = \"/tmp/x\"\n[listen]\nsmtp = [\"127.0.0.1:0\"]\nalow = [\"127.0.0.0/8\"]\n"), 0o600)
	out, err := exec.Command(binary, "--config", cfg, "serve").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `line 4: unknown key "listen.alow"`) {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = exec.Command(binary, "--config", cfg+".missing", "check").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--config") {
		t.Fatalf("missing config: %v\n%s", err, out)
	}
}

func TestPasswdPrintsAHashThatVerifies(t *testing.T) {
	cmd := exec.Command(binary, "passwd")
	cmd.Stdin = strings.NewReader("s3cret mot de passe\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	h := strings.TrimSpace(string(out))
	if ok, err := auth.Verify(h, "s3cret mot de passe"); !ok || err != nil {
		t.Fatalf("hash %q does not verify: %v", h, err)
	}
	cmd = exec.Command(binary, "passwd")
	cmd.Stdin = strings.NewReader("\n")
	if err := cmd.Run(); err == nil {
		t.Fatal("an empty password was hashed")
	}
}

func TestDemoShowsALotWaitingThenDelivered(t *testing.T) {
	cmd := exec.Command(binary, "demo")
	in, _ := cmd.StdinPipe()
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, 15*time.Second, "the demo banner", func() bool { return strings.Contains(out.String(), "Keys (then Enter)") })
	in.Write([]byte("l\n"))
	waitFor(t, 15*time.Second, "the first lot at the provider", func() bool { return strings.Contains(out.String(), "[provider] received") })
	waitFor(t, 15*time.Second, "its acknowledgement collected", func() bool { return strings.Contains(out.String(), "[relay] collected it from IMAP") })
	in.Write([]byte("m\n"))
	waitFor(t, 5*time.Second, "the mailbox listing", func() bool { return strings.Contains(out.String(), "[mailbox] #1 fetched  ARL positif") })
	// The acknowledgement, as the billing software would collect it.
	pop3 := regexp.MustCompile(`curl (pop3://[0-9.:]+)/1`).FindStringSubmatch(out.String())
	if pop3 == nil {
		t.Fatalf("the banner gives no POP3 address:\n%s", out.String())
	}
	got, err := exec.Command("curl", "-sS", pop3[1]+"/1", "--user", "demo:demo").CombinedOutput()
	if err != nil || !strings.Contains(string(got), "Subject: ARL positif - IR/99999999999999/") {
		t.Fatalf("curl %s: %v\n%s", pop3[1], err, got)
	}
	// The practice's page, at the address the banner gives.
	web := regexp.MustCompile(`page \(in French\): (https://[0-9.:]+/)`).FindStringSubmatch(out.String())
	if web == nil {
		t.Fatalf("the banner gives no page address:\n%s", out.String())
	}
	if got, err := exec.Command("curl", "-sk", web[1]+"connexion").CombinedOutput(); err != nil || !strings.Contains(string(got), "Identifiant") {
		t.Fatalf("curl %s: %v\n%s", web[1], err, got)
	}
	in.Write([]byte("o\nl\nq\n"))
	waitFor(t, 15*time.Second, "a lot waiting", func() bool {
		return strings.Contains(out.String(), "deferred") || strings.Contains(out.String(), "#2 queued")
	})
	in.Write([]byte("o\n"))
	waitFor(t, 30*time.Second, "the second lot delivered", func() bool { return strings.Count(out.String(), "[provider] received") == 2 })
	// IMAP off: a lot's acknowledgement waits at the provider, status says
	// access is closed; IMAP on: the next poll (every 30 s) collects it, as
	// the demo says, with no longer hold.
	cfgArg := regexp.MustCompile(`--config (\S+) status`).FindStringSubmatch(out.String())
	if cfgArg == nil {
		t.Fatalf("the banner gives no status command:\n%s", out.String())
	}
	in.Write([]byte("i\nl\n"))
	waitFor(t, 15*time.Second, "the third acknowledgement placed", func() bool { return strings.Count(out.String(), "[fund] acknowledgement") == 3 })
	waitFor(t, 40*time.Second, "a scheduled poll failing on the closed IMAP", func() bool {
		got, _ := exec.Command(binary, "--config", cfgArg[1], "status").CombinedOutput()
		return strings.Contains(string(got), "closed IMAP access")
	})
	in.Write([]byte("i\n"))
	waitFor(t, 5*time.Second, "IMAP back on", func() bool { return strings.Contains(out.String(), "IMAP switched ON: the next poll (every 30 s)") })
	waitFor(t, 40*time.Second, "the third acknowledgement collected at the next poll", func() bool {
		mark := len(out.String())
		in.Write([]byte("m\n"))
		time.Sleep(time.Second)
		return strings.Count(out.String()[mark:], "fetched  ARL positif") == 3
	})
	in.Write([]byte("x\n"))
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exit: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not quit")
	}
}

func TestCheckTriesTheIMAPLoginToo(t *testing.T) {
	imapP := imapProvider(t)
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr()})
	out, code := r.cli("check")
	if code != 0 || !strings.Contains(out, "dupont: IMAP OK — logged in to imap://") {
		t.Fatalf("check (%d):\n%s", code, out)
	}
	imapP.RefuseLogins(true)
	out, code = r.cli("check")
	if code != 1 || !strings.Contains(out, "dupont: OK") || !strings.Contains(out, "IMAP FAILED") || !strings.Contains(out, "credentials rejected") {
		t.Fatalf("check with the IMAP login refused (%d):\n%s", code, out)
	}
}

// The review's case: with the provider unreachable, a missing password
// file still gave "config: OK". Check proves each thing on this box before
// any connection, and does not try the provider for an account that fails
// here.
func TestCheckProvesThePasswordFileBeforeTheProvider(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	pw := filepath.Join(r.dir, "upstream-pw")
	prov.Off()
	for name, prepare := range map[string]func(){
		"missing": func() { os.Remove(pw) },
		"empty":   func() { os.WriteFile(pw, nil, 0o600) },
	} {
		prepare()
		out, code := r.cli("check")
		if code != 1 || strings.Contains(out, "config: OK") || strings.Contains(out, "check: OK") ||
			!strings.Contains(out, "dupont: FAILED") || !strings.Contains(out, "the provider was not tried") || strings.Contains(out, "unreachable") {
			t.Errorf("check with the password file %s (%d):\n%s", name, code, out)
		}
	}
}

// The review's CLI cases: an unknown account is named as such by every
// command, and --json gives one JSON document on stdout, also for check
// and lots --rebuild.
func TestCLIUnknownAccountsAndWholeJSON(t *testing.T) {
	r := newRelay(t, newProvider(t), opts{})
	for _, args := range [][]string{{"fetch", "nosuch"}, {"queue", "--account", "nosuch"}, {"mail", "nosuch"}, {"lots", "nosuch"}} {
		if out, code := r.cli(args...); code != 1 || !strings.Contains(out, `no account "nosuch" in the config`) {
			t.Errorf("%v (%d): %s", args, code, out)
		}
	}
	for _, args := range [][]string{{"check", "--json"}, {"lots", "--rebuild", "--json"}} { // the two that printed text
		cmd := exec.Command(binary, append([]string{"--config", r.cfgPath}, args...)...)
		out, _ := cmd.Output()
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Errorf("%v: stdout is not one JSON document (%v):\n%s", args, err, out)
		}
		if args[0] == "check" && v["ok"] != true {
			t.Errorf("check --json: %s", out)
		}
	}
}
