package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Every control command that changes state or shows a mail's content
// leaves one notice-level line naming the caller's uid, read by the kernel
// (SO_PEERCRED) — here a CLI run as uid 65534 — and status and the queue
// history name it too. Read-only listings leave no such line.
func TestTechnicianActionsAreLoggedWithTheCallersUID(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is not installed")
	}
	prov := newProvider(t)
	prov.SetMode(demo.TempFail) // what is released stays in the queue
	r := newRelay(t, prov, opts{})
	if res := r.python(pyArgs{"file": clearLotFile(t), "to": fund}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission: %+v", res)
	}
	waitFor(t, 5*time.Second, "the clear lot held", func() bool { return r.states()[store.Held] == 1 })
	id := r.queue()[0].ID

	// Let uid 65534 reach the socket and read a copy of the config.
	os.Chmod(r.control, 0o666)
	for d := filepath.Dir(r.control); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cfg := filepath.Join(t.TempDir(), "config.toml")
	b, _ := os.ReadFile(r.cfgPath)
	os.WriteFile(cfg, b, 0o644)
	os.Chmod(filepath.Dir(cfg), 0o755)
	as := func(args ...string) string {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", binary, "--config", cfg}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v as uid 65534: %v\n%s", args, err, out)
		}
		return string(out)
	}
	as("queue")
	as("status")
	as("queue", "release", itoa(id))
	// The released lot is tried at once and deferred (TempFail): hold it
	// once that try is over, not while it is sending.
	waitFor(t, 10*time.Second, "the released lot deferred", func() bool { return r.states()[store.Deferred] == 1 })
	as("queue", "hold", itoa(id), "--reason", "checking")
	as("queue", "drop", itoa(id))
	r.cli("mail", "dupont") // a listing: no line
	path, _ := lotFile(t)
	out, code := r.cli("import", "dupont", path, "--json")
	var imp control.Imported
	if err := json.Unmarshal([]byte(out), &imp); code != 0 || err != nil || len(imp.Added) != 1 {
		t.Fatalf("import: %d %v\n%s", code, err, out)
	}
	if out, code := r.cli("mail", "show", itoa(imp.Added[0]), "--raw"); code != 0 {
		t.Fatalf("mail show --raw: %s", out)
	}

	var notices []string
	for _, l := range strings.Split(r.Log(), "\n") {
		if strings.Contains(l, "level=NOTICE") {
			notices = append(notices, l)
		}
	}
	want := []string{
		fmt.Sprintf("cmd=release caller_uid=65534 caller=nobody ids=[%d]", id),
		fmt.Sprintf("cmd=hold caller_uid=65534 caller=nobody ids=[%d]", id),
		fmt.Sprintf("cmd=drop caller_uid=65534 caller=nobody ids=[%d]", id),
		fmt.Sprintf("cmd=import caller_uid=%d caller=root ids=[%d]", os.Getuid(), imp.Added[0]),
		fmt.Sprintf("cmd=mail-show caller_uid=%d", os.Getuid()),
	}
	if len(notices) != len(want) {
		t.Fatalf("want %d notice lines, got %d:\n%s", len(want), len(notices), strings.Join(notices, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(notices[i], `msg="technician action" `+w) {
			t.Errorf("notice %d: want %q in\n%s", i, w, notices[i])
		}
	}
	out, _ = r.cli("queue", "show", itoa(id))
	if !strings.Contains(out, "held by uid 65534 (nobody): checking") || !strings.Contains(out, "dropped by uid 65534 (nobody)") {
		t.Fatalf("the queue history does not name the uid:\n%s", out)
	}
	out, _ = r.cli("status")
	if !strings.Contains(out, "drop by uid 65534 (nobody) on ["+itoa(id)+"]") {
		t.Fatalf("status does not name the uid:\n%s", out)
	}
}
