package e2e_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
)

// secretSet runs `sesam-relay secret set ACCOUNT` with stdin and extra
// environment, as a technician would (a pipe: no terminal).
func secretSet(r *relay, account, stdin string, env ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--config", r.cfgPath, "secret", "set", account)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return string(out), 0
}

func weaknesses(r *relay) string { return strings.Join(r.status().Weaknesses, "\n") }

// The provider forces a password change (laposte.net did, before reopening
// in May 2022). On a box without systemd-creds, `secret set` writes the new
// one to password_file (0600) and the running relay uses it at its next
// try. With systemd-creds, it seals it as a credential beside
// password_file, removes the plain file, writes the drop-in; the relay,
// given the credential as systemd gives it, logs in with it, and status
// stops warning. Bad input changes nothing.
func TestSecretSetGivesTheRelayTheProvidersNewPassword(t *testing.T) {
	need(t, "systemd-creds")
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a delivery with the first password", func() bool { return len(prov.Mails()) == 1 })
	if w := weaknesses(r); !strings.Contains(w, "provider password is a plain file") {
		t.Fatalf("status does not warn of the plain password file:\n%s", w)
	}
	pwFile := filepath.Join(r.dir, "upstream-pw")

	// Bad input: nothing changes.
	before, _ := os.ReadFile(pwFile)
	for _, c := range []struct{ account, stdin, want string }{
		{"nosuch", "x\n", "no account"},
		{"dupont", "\n", "empty password"},
		{"dupont", "one\ntwo\n", "one line"},
		{"dupont", strings.Repeat("B", 5000) + "\n", "no password"}, // the wrong file: refused, not cut
	} {
		if out, code := secretSet(r, c.account, c.stdin); code != 1 || !strings.Contains(out, c.want) {
			t.Fatalf("secret set %s <<%q: %d\n%s", c.account, c.stdin, code, out)
		}
	}
	if after, _ := os.ReadFile(pwFile); !bytes.Equal(after, before) {
		t.Fatal("a refused secret set changed the password file")
	}

	// The provider changes it; the relay is refused.
	prov.SetPass("nouveau-2026")
	prov.Off() // the open session logged in before the change
	if err := prov.On(); err != nil {
		t.Fatal(err)
	}
	submitOne(t, r)
	waitFor(t, 10*time.Second, "the refused login", func() bool { return r.status().Accounts[0].Health.Failure == "credentials refused" })

	// No systemd-creds here (PATH without it): the plain file, and the running relay.
	out, code := secretSet(r, "dupont", "nouveau-2026\n", "PATH=/nonexistent")
	if code != 0 || !strings.Contains(out, "in clear") {
		t.Fatalf("secret set without systemd-creds: %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(pwFile); string(b) != "nouveau-2026" {
		t.Fatalf("the password file holds %q", b)
	}
	if fi, _ := os.Stat(pwFile); fi.Mode().Perm() != 0o640 { // the folder's group: the service's
		t.Fatalf("the password file's mode is %v", fi.Mode())
	}
	id := r.queue()[1].ID
	r.cli("queue", "retry", itoa(id))
	waitFor(t, 10*time.Second, "a delivery with the new password", func() bool { return len(prov.Mails()) == 2 })

	// The next change, sealed.
	prov.SetPass("encore-2027")
	prov.Off()
	if err := prov.On(); err != nil {
		t.Fatal(err)
	}
	units := t.TempDir()
	out, code = secretSet(r, "dupont", "encore-2027\n", "SESAM_RELAY_UNIT_DIR="+units)
	if code != 0 || !strings.Contains(out, "systemd credential") || !strings.Contains(out, "restart") {
		t.Fatalf("secret set with systemd-creds: %d\n%s", code, out)
	}
	if _, err := os.Stat(pwFile); err == nil {
		t.Fatal("the plain password file is still there")
	}
	cred := pwFile + ".cred"
	if fi, err := os.Stat(cred); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the credential: %v %v", fi, err)
	}
	name := config.PasswordCredential(pwFile)
	dropIn, _ := os.ReadFile(filepath.Join(units, "sesam-relay.service.d", "50-"+name+".conf"))
	if !strings.Contains(string(dropIn), "LoadCredentialEncrypted="+name+":"+cred) {
		t.Fatalf("the drop-in: %q", dropIn)
	}
	for _, d := range []string{r.dir, r.stateDir} {
		if got := filesHolding(t, d, "encore-2027"); len(got) > 0 {
			t.Fatalf("the sealed password is in clear in %v", got)
		}
	}
	// The installer's check, as root outside the service, decrypts it with
	// systemd-creds and logs in with it; without systemd-creds it says why
	// it cannot read it.
	if out, code := r.cli("check"); code != 0 || !strings.Contains(out, "OK — logged in") {
		t.Fatalf("check with the sealed password: %d\n%s", code, out)
	}
	cmd := exec.Command(binary, "--config", r.cfgPath, "check")
	cmd.Env = append(os.Environ(), "PATH=/nonexistent")
	if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "sealed in "+cred) || !strings.Contains(string(out), "the provider was not tried") {
		t.Fatalf("check that cannot decrypt the sealed password:\n%s", out)
	}
	// A stale clear copy beside the credential: check uses the credential
	// (the one the service gets), and status says to remove the copy.
	os.WriteFile(pwFile, []byte("nouveau-2026\n"), 0o600)
	if out, code := r.cli("check"); code != 0 || !strings.Contains(out, "OK — logged in") {
		t.Fatalf("check with a stale clear copy beside the credential: %d\n%s", code, out)
	}
	if w := weaknesses(r); !strings.Contains(w, "clear copy of the provider password") {
		t.Fatalf("status does not warn of the clear copy beside the credential:\n%s", w)
	}
	os.Remove(pwFile)
	// What systemd does for LoadCredentialEncrypted= at the restart.
	r.stop()
	creds := t.TempDir()
	if out, err := exec.Command("systemd-creds", "decrypt", "--name="+name, cred, filepath.Join(creds, name)).CombinedOutput(); err != nil {
		t.Fatalf("systemd-creds decrypt: %v %s", err, out)
	}
	r.env = append(r.env, "CREDENTIALS_DIRECTORY="+creds)
	r.start()
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a delivery with the sealed password", func() bool { return len(prov.Mails()) == 3 })
	if w := weaknesses(r); strings.Contains(w, "provider password is a plain file") {
		t.Fatalf("status still warns of the password:\n%s", w)
	}
}
