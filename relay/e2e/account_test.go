package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// account runs `sesam-relay account ...` with stdin (a pipe: no terminal).
func (r *relay) account(stdin string, args ...string) (string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--config", r.cfgPath, "account"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return string(out), 0
}

// martin is an account the tests add: an address with no preset, so the
// servers are given (the test provider's, in clear).
func martinArgs(r *relay, imap string, more ...string) []string {
	return append([]string{"add", "martin", "--address", "cabinet.martin@exemple-sante.fr", "--smtp", "smtp://" + r.prov.Addr(),
		"--imap", "imap://" + imap, "--username", "jean.dupont", "--insecure"}, more...)
}

func TestAccountAddTriesTheProviderWritesTheAccountAndReloads(t *testing.T) {
	prov := newProvider(t)
	imapProv, err := demo.StartIMAP("127.0.0.1:0", "jean.dupont", "provider-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(imapProv.Close)
	r := newRelay(t, prov, opts{})
	accountsD, secret := filepath.Join(r.dir, "accounts.d"), filepath.Join(r.dir, "secrets", "martin")

	// A wrong provider password is said, and nothing is written.
	out, code := r.account("not the password\nbilling-pw\n", martinArgs(r, imapProv.Addr())...)
	if code != 1 || !strings.Contains(out, "refused the password of jean.dupont: nothing was written") {
		t.Fatalf("a wrong provider password (%d):\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(accountsD, "martin.toml")); err == nil {
		t.Fatal("the account was written with a refused password")
	}
	if _, err := os.Stat(secret); err == nil {
		t.Fatal("the refused password was written")
	}

	out, code = r.account("provider-pw\nbilling-pw\n", martinArgs(r, imapProv.Addr())...)
	if code != 0 {
		t.Fatalf("account add (%d):\n%s", code, out)
	}
	for _, want := range []string{"sending: smtp://", "accepted the login jean.dupont", "collecting: imap://", "the relay reloaded its config",
		"In the billing software", "login:                          martin", "certificate, check it is SHA-256 "} {
		if !strings.Contains(out, want) {
			t.Errorf("account add's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "provider-pw") || strings.Contains(out, "billing-pw") {
		t.Fatalf("a password is shown:\n%s", out)
	}
	fi, err := os.Stat(filepath.Join(accountsD, "martin.toml"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("the account's file: %v %v", fi, err)
	}
	if b, err := os.ReadFile(secret); err != nil || strings.TrimSpace(string(b)) != "provider-pw" {
		t.Fatalf("the provider password: %q %v", b, err)
	}
	if st := r.status(); len(st.Accounts) != 2 || st.Accounts[1].Name != "martin" {
		t.Fatalf("the running relay has %+v", st.Accounts)
	}
	// The billing software submits as martin, and the mail leaves.
	res := r.python(pyArgs{"user": "martin", "password": "billing-pw", "from": "cabinet.martin@exemple-sante.fr"})
	if len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission as martin: %+v", res)
	}
	waitFor(t, 10*time.Second, "martin's mail at the provider", func() bool { return len(prov.Mails()) == 1 })

	// One name twice is refused.
	if out, code := r.account("provider-pw\nbilling-pw\n", martinArgs(r, imapProv.Addr())...); code != 1 || !strings.Contains(out, `login "martin" is already used`) {
		t.Fatalf("the same name again (%d):\n%s", code, out)
	}
	var list []struct{ Name, File, Password string }
	out, _ = r.account("", "list", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[1].File != filepath.Join(accountsD, "martin.toml") ||
		!strings.HasPrefix(list[1].Password, "in clear in ") {
		t.Fatalf("account list: %v\n%s", err, out)
	}

	// A typo in a file of accounts.d: check names the file, the line and
	// the key; a reload is refused and the running config kept.
	os.WriteFile(filepath.Join(accountsD, "typo.toml"), []byte("name = \"typo\"\nadress = \"x@y.fr\"\n"), 0o640)
	if out, code := r.cli("check"); code != 1 || !strings.Contains(out, "typo.toml: line 2: unknown key \"adress\"") {
		t.Fatalf("check with a typo (%d):\n%s", code, out)
	}
	if out, code := r.cli("reload"); code != 1 || !strings.Contains(out, "the running config is kept") {
		t.Fatalf("reload with a typo (%d):\n%s", code, out)
	}
	os.Remove(filepath.Join(accountsD, "typo.toml"))

	// A name that would need quoting (a file name, a TOML value, a word of
	// the CLI's hints) is refused before anything is written.
	for _, bad := range []string{"a*b", "Dupont", "x\nnotify = []", strings.Repeat("c", 65)} {
		if out, code := r.account("pw\npw\n", "add", bad, "--address", "a@exemple-sante.fr", "--smtp", "smtp://"+prov.Addr(), "--no-check", "--insecure"); code == 0 || !strings.Contains(out, "cannot name an account") {
			t.Fatalf("account add %q (%d):\n%s", bad, code, out)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(r.dir, "secrets")); len(ents) != 1 {
		t.Fatalf("a refused name left a password behind: %v", ents)
	}
	// An account written by hand that shares martin's password file: its
	// removal keeps the file martin still needs.
	srcB, _ := os.ReadFile(filepath.Join(accountsD, "martin.toml"))
	src := string(srcB)
	other := regexp.MustCompile(`(?m)^name(\s*)= "martin"`).ReplaceAllString(src, `name$1= "other"`)
	other = strings.ReplaceAll(other, "cabinet.martin@", "cabinet.other@")
	os.WriteFile(filepath.Join(accountsD, "other.toml"), []byte(other), 0o640)
	if out, code := r.account("", "remove", "other"); code != 0 || !strings.Contains(out, "is kept: account martin uses it too") {
		t.Fatalf("removing an account that shares martin's password (%d):\n%s", code, out)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Fatalf("removing other destroyed martin's password: %v", err)
	}

	// Removed, martin's waiting mail is held, never dropped.
	prov.SetMode(demo.TempFail)
	if res := r.python(pyArgs{"user": "martin", "password": "billing-pw", "from": "cabinet.martin@exemple-sante.fr", "prefix": "second"}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission as martin: %+v", res)
	}
	waitFor(t, 10*time.Second, "the provider's 451", func() bool {
		for _, m := range r.queue() {
			if m.Account == "martin" && m.Attempts > 0 && (m.State == store.Deferred || m.State == store.Queued) {
				return true
			}
		}
		return false
	})
	out, code = r.account("", "remove", "martin")
	if code != 0 || !strings.Contains(out, "1 waiting mail of martin held, not dropped") || !strings.Contains(out, "destroyed") {
		t.Fatalf("account remove (%d):\n%s", code, out)
	}
	if _, err := os.Stat(secret); err == nil {
		t.Fatal("the removed account's provider password is still there")
	}
	held := 0
	for _, m := range r.queue() {
		if m.Account == "martin" && m.State == store.Held && strings.Contains(m.HoldReason, "no longer in the config") {
			held++
		}
	}
	if held != 1 {
		t.Fatalf("%d of martin's mails held: %+v", held, r.queue())
	}
}

// The provider forced a password change: the relay's login is refused
// and the account paused (auth_pause, an hour). `account passwd` tries
// the new one and sends the waiting mail at once.
func TestAccountPasswdSendsTheWaitingMailAtOnce(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	prov.SetPass("the new password")
	if res := r.python(pyArgs{}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submission: %+v", res)
	}
	waitFor(t, 10*time.Second, "the refused login", func() bool {
		st := r.status()
		return len(st.Accounts) > 0 && st.Accounts[0].Health.Failure == "credentials refused" && !st.Accounts[0].Health.PausedUntil.IsZero()
	})
	if out, code := r.account("still the old one\n", "passwd", "dupont"); code != 1 || !strings.Contains(out, "refused the password") {
		t.Fatalf("passwd with a wrong password (%d):\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(r.dir, "upstream-pw")); strings.TrimSpace(string(b)) != "provider-pw" {
		t.Fatalf("a refused password was written: %q", b)
	}
	out, code := r.account("the new password\n", "passwd", "dupont")
	if code != 0 || !strings.Contains(out, "1 waiting mail now being sent") {
		t.Fatalf("passwd (%d):\n%s", code, out)
	}
	waitFor(t, 10*time.Second, "the mail at the provider, long before the pause's end", func() bool { return len(prov.Mails()) == 1 })
}

// With the daemon down, add still writes, and says the service must be
// started; started, the relay serves the account.
func TestAccountAddWithTheDaemonDownSaysToStartIt(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	r.stop()
	args := []string{"add", "martin", "--address", "cabinet.martin@exemple-sante.fr", "--smtp", "smtp://" + prov.Addr(), "--username", "jean.dupont", "--insecure"}
	out, code := r.account("provider-pw\nbilling-pw\n", args...)
	if code != 0 || !strings.Contains(out, "the service is not running: start it with `systemctl start sesam-relay`") ||
		!strings.Contains(out, "the certificate's fingerprint: `sesam-relay status` once the service runs") {
		t.Fatalf("account add, daemon down (%d):\n%s", code, out)
	}
	r.start()
	if st := r.status(); len(st.Accounts) != 2 {
		t.Fatalf("accounts after the start: %+v", st.Accounts)
	}
}

// An installer at the keyboard: account add asks for each value, shows
// what is typed except the passwords, and checks the billing software's
// password twice. Driven through a pseudo-terminal (Python's pty).
func TestAccountAddAtATerminalDoesNotEchoPasswords(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	spec, _ := json.Marshal(map[string]any{
		"argv": []string{binary, "--config", r.cfgPath, "account", "add", "martin", "--smtp", "smtp://" + prov.Addr(), "--username", "jean.dupont", "--insecure"},
		"steps": [][2]string{
			{"Provider address of the practitioner", "cabinet.martin@exemple-sante.fr"},
			{"Provider password of cabinet.martin@exemple-sante.fr (not shown): ", "provider-pw"},
			{"Password the billing software will give the relay for martin (not shown): ", "pw-of-the-billing-software"},
			{"Again: ", "pw-of-the-billing-software"},
			{"Extra login for the practitioner's phone", "martin-mobile"},
			{"Password of the login martin-mobile (not shown): ", "pw-of-the-phone"},
			{"Again: ", "pw-of-the-phone"},
		},
	})
	out, err := exec.Command("python3", "testdata/ptydrive.py", string(spec)).Output()
	if err != nil {
		t.Fatalf("ptydrive.py: %v\n%s", err, out)
	}
	var res struct {
		Transcript, Error string
		Code              int
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Error != "" || res.Code != 0 {
		t.Fatalf("%v %s:\n%s", err, res.Error, res.Transcript)
	}
	if !strings.Contains(res.Transcript, "cabinet.martin@exemple-sante.fr\r\n") || !strings.Contains(res.Transcript, "martin-mobile\r\n") {
		t.Fatalf("what the installer typed is not echoed (the terminal does not work as supposed):\n%s", res.Transcript)
	}
	for _, pw := range []string{"provider-pw", "pw-of-the-billing-software", "pw-of-the-phone"} {
		if strings.Contains(res.Transcript, pw) {
			t.Fatalf("the password %q was echoed:\n%s", pw, res.Transcript)
		}
	}
	if !strings.Contains(res.Transcript, "the phone's login:              martin-mobile") {
		t.Fatalf("transcript:\n%s", res.Transcript)
	}
	if res := r.python(pyArgs{"user": "martin-mobile", "password": "pw-of-the-phone", "from": "cabinet.martin@exemple-sante.fr"}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("the phone's login submits: %+v", res)
	}
}
