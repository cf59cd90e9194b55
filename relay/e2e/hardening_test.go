package e2e_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// handshake tries TLS version v ("-tls1_1", "-tls1_2") with openssl s_client
// against addr; starttls is "" for implicit TLS, or "smtp" / "pop3". The
// client is told to allow old protocols itself (SECLEVEL=0), so that a
// refusal can only come from the relay.
func handshake(t *testing.T, addr, v, starttls string) (bool, string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is not installed: .ci/run installs it")
	}
	args := []string{"s_client", "-connect", addr, v, "-cipher", "DEFAULT@SECLEVEL=0"}
	if starttls != "" {
		args = append(args, "-starttls", starttls)
	}
	cmd := exec.Command("openssl", args...)
	out, err := cmd.CombinedOutput()
	proto := ""
	for _, l := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "Protocol  :"); ok {
			proto = strings.TrimSpace(p)
		}
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "Protocol:"); ok {
			proto = strings.TrimSpace(p)
		}
	}
	return err == nil && strings.Contains(string(out), "Cipher is ") && !strings.Contains(string(out), "Cipher is (NONE)"), proto
}

func TestTLSOlderThan12IsRefusedUnlessOptedIn(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	for _, c := range []struct{ addr, starttls string }{{r.smtps, ""}, {r.pop3s, ""}, {r.smtp, "smtp"}, {r.pop3, "pop3"}} {
		if ok, proto := handshake(t, c.addr, "-tls1_1", c.starttls); ok {
			t.Errorf("%s (starttls %q): TLS 1.1 accepted by default (%s)", c.addr, c.starttls, proto)
		}
		if ok, _ := handshake(t, c.addr, "-tls1_2", c.starttls); !ok {
			t.Errorf("%s (starttls %q): TLS 1.2 refused", c.addr, c.starttls)
		}
	}
	// The explicit opt-in for an old billing program: 1.1 then works, which
	// also proves the client above could speak it.
	old := newRelay(t, prov, opts{top: "[tls]\nmin_version = \"1.0\""})
	if ok, proto := handshake(t, old.smtps, "-tls1_1", ""); !ok {
		t.Fatalf("min_version = \"1.0\": TLS 1.1 still refused (%s)", proto)
	}
	out, _ := old.cli("status")
	if !strings.Contains(out, "local TLS:  1.0 and later") || !strings.Contains(out, "min_version = \"1.0\"") {
		t.Fatalf("status does not show the old TLS opt-in:\n%s", out)
	}
	if !strings.Contains(old.Log(), "weakened protection") {
		t.Fatalf("no warning at start for min_version = 1.0:\n%s", old.Log())
	}
}

func TestPlaintextLoginOnlyFromTheListedNetworks(t *testing.T) {
	prov := newProvider(t)
	elsewhere := newRelay(t, prov, opts{listen: `allow_plaintext_auth = ["10.9.9.9"]`})
	if res := elsewhere.python(pyArgs{"mode": "plain", "mech": "LOGIN"}); len(res) != 1 || res[0].Code == 250 {
		t.Fatalf("AUTH without TLS from a network not listed was accepted: %+v", res)
	}
	host, port, _ := strings.Cut(elsewhere.pop3, ":")
	b, _ := json.Marshal(pyArgs{"host": host, "port": port, "user": login, "password": password, "mode": "plain"})
	out, err := exec.Command("python3", "testdata/pop3client.py", string(b)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "plaintext login is disabled") {
		t.Fatalf("POP3 USER/PASS without TLS from a network not listed was accepted: %v\n%s", err, out)
	}
	here := newRelay(t, prov, opts{listen: `allow_plaintext_auth = ["127.0.0.1"]`})
	if res := here.python(pyArgs{"mode": "plain", "mech": "LOGIN"}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("AUTH without TLS from the listed workstation was refused: %+v", res)
	}
	if res := here.poplib(pyArgs{"mode": "plain"}); res.Stat == nil {
		t.Fatalf("POP3 without TLS from the listed workstation: %+v", res)
	}
	st, _ := here.cli("status")
	if !strings.Contains(st, "logins without TLS are accepted from 127.0.0.1/32") {
		t.Fatalf("status does not say who may log in without TLS:\n%s", st)
	}
}

func TestInsecureUpstreamIsWarnedAtStartAndInStatus(t *testing.T) {
	r := newRelay(t, newProvider(t), opts{}) // the harness's provider is plain: insecure = true
	waitFor(t, 5*time.Second, "the warning", func() bool {
		return strings.Contains(r.Log(), "upstream insecure = true")
	})
	out, _ := r.cli("status")
	if !strings.Contains(out, "account dupont: upstream insecure = true") {
		t.Fatalf("status does not show the insecure upstream:\n%s", out)
	}
}
