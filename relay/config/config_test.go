package config_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
)

// shipped is the commented config the .deb installs.
const shipped = "../../packaging/config.toml"

func TestShippedConfigLoadsWithNoAccount(t *testing.T) {
	c, err := config.Load(shipped)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Accounts) != 0 || len(c.Sesam.Rules) != 0 {
		t.Fatalf("the shipped config must not activate its examples: %d accounts, %d rules", len(c.Accounts), len(c.Sesam.Rules))
	}
	if c.StateDir != "/var/lib/sesam-relay" || c.Listen.Control != "/run/sesam-relay/control.sock" {
		t.Fatalf("state_dir %q, control %q: the systemd unit's StateDirectory and RuntimeDirectory expect these", c.StateDir, c.Listen.Control)
	}
}

// uncommented returns the shipped config with its examples switched on, as
// an installer would: the "#" removed from lines like "#name = ...", and
// the placeholder hashes replaced by real ones (`sesam-relay passwd`).
func uncommented(t *testing.T) []byte {
	h, err := auth.Hash("a practice password")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(examplesOn(t), []byte(auth.ExampleHash), []byte(h))
}

func examplesOn(t *testing.T) []byte {
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^(\s*)#([^\s#-])`).ReplaceAll(b, []byte("$1$2"))
}

// The review's case: the example's placeholder hash, uncommented as it
// stands, passed `check`. It is refused, with what to do.
func TestTheExamplePlaceholderHashIsRefused(t *testing.T) {
	if !bytes.Contains(examplesOn(t), []byte(auth.ExampleHash)) {
		t.Fatal("the packaged config no longer shows auth.ExampleHash: keep them one")
	}
	_, err := config.Parse(examplesOn(t))
	if err == nil || !strings.Contains(err.Error(), "placeholder") || !strings.Contains(err.Error(), "sesam-relay passwd") {
		t.Fatalf("%v", err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := config.Parse(uncommented(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sesam.Rules) != 1 {
		t.Fatalf("example rule: %+v", c.Sesam.Rules)
	}
	if len(c.Accounts) != 2 || c.Accounts[0].Upstream.SMTP.Addr != "smtp.laposte.net:465" || !c.Accounts[0].Upstream.SMTP.ImplicitTLS {
		t.Fatalf("accounts decoded wrongly: %+v", c.Accounts)
	}
	if c.Delivery.Lifetime.D() != 72*time.Hour || c.MaxMessageSize != 25<<20 {
		t.Fatalf("lifetime %v size %d", c.Delivery.Lifetime.D(), c.MaxMessageSize)
	}
	if c.Account("martin") == nil || c.Account("nobody") != nil {
		t.Fatal("Account lookup")
	}
	u := c.Accounts[0].Upstream
	if u.IMAP.Addr != "imap.laposte.net:993" || len(u.Folders) != 2 || u.Poll.Spec != "@every 2m" || u.KeepUpstream.For != 30*24*time.Hour {
		t.Fatalf("imap settings: %+v", u)
	}
	if c.Login("dupont-mobile") != &c.Accounts[0] || c.Login("martin") != &c.Accounts[1] {
		t.Fatal("Login lookup")
	}
	m := c.Accounts[1].Upstream
	if m.IMAP.Addr != "" || m.Folders[0] != "INBOX" || !m.KeepUpstream.Forever {
		t.Fatalf("defaults: %+v", m)
	}
	if c.Retention.D() != 90*24*time.Hour || len(c.Listen.POP3) != 1 {
		t.Fatal("retention or pop3")
	}
}

// valid is the smallest config that loads; each bad case below breaks one line.
const valid = `state_dir = "/tmp/x"
hostname = "h"
[listen]
smtp = ["127.0.0.1:2587"]
allow = ["127.0.0.0/8"]
[[account]]
name = "dupont"
password_hash = "$argon2id$v=19$m=1,t=1,p=1$YQ$YQ"
address = "jean.dupont@laposte.net"
  [account.upstream]
  smtp = "smtp://127.0.0.1:2525"
  username = "jean.dupont"
  password_file = "/dev/null"
`

func TestBadConfigNamesKeyAndLine(t *testing.T) {
	if _, err := config.Parse([]byte(valid)); err != nil {
		t.Fatalf("the valid base config fails: %v", err)
	}
	cases := []struct{ name, from, to, want string }{
		{"unknown key", `username = "jean.dupont"`, `username = "jean.dupont"` + "\n  pasword_file = \"x\"", `line 13: unknown key "account.upstream.pasword_file"`},
		{"unknown top key", `hostname = "h"`, `hostnam = "h"`, `line 2: unknown key "hostnam"`},
		{"bad listen address", `"127.0.0.1:2587"`, `"127.0.0.1:99999"`, `line 4`},
		{"bad network", `"127.0.0.0/8"`, `"127.0.0.0/88"`, `line 5`},
		{"bad sender address", `"jean.dupont@laposte.net"`, `"Jean <jean.dupont@laposte.net>"`, `line 9`},
		{"bad duration", `hostname = "h"`, "hostname = \"h\"\n[delivery]\nlifetime = \"3 days\"", `line 4`},
		{"bad upstream scheme", `"smtp://127.0.0.1:2525"`, `"http://127.0.0.1:2525"`, `line 11`},
		{"missing hash", `password_hash = "$argon2id$v=19$m=1,t=1,p=1$YQ$YQ"`, `password_hash = "secret"`, `sesam-relay passwd`},
		{"duplicate account", "  password_file = \"/dev/null\"\n", "  password_file = \"/dev/null\"\n" + valid[strings.Index(valid, "[[account]]"):], `used twice`},
		{"no allow", `allow = ["127.0.0.0/8"]`, ``, `allow is empty`},
		{"imap url for smtp", `"smtp://127.0.0.1:2525"`, `"imaps://127.0.0.1:993"`, `smtp must be smtps://host`},
		{"bad poll", `  password_file = "/dev/null"`, "  password_file = \"/dev/null\"\n  poll = \"@every 1s\"", `line 14`},
		{"bad keep", `  password_file = "/dev/null"`, "  password_file = \"/dev/null\"\n  keep_upstream = \"always\"", `forever`},
		{"bad rule class", `hostname = "h"`, "hostname = \"h\"\n[[sesam.rule]]\nfield = \"subject\"\npattern = \"ARL\"\nclass = \"arl\"", `class "arl" is not one of`},
		{"bad rule pattern", `hostname = "h"`, "hostname = \"h\"\n[[sesam.rule]]\nfield = \"subject\"\npattern = \"(ARL\"\nclass = \"arl-positive\"", `line 5`},
		{"login twice", `  password_file = "/dev/null"`, "  password_file = \"/dev/null\"\n  [[account.login]]\n  name = \"dupont\"\n  password_hash = \"$argon2id$x\"", `login "dupont" is used twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(valid, tc.from, tc.to, 1)
			if src == valid {
				t.Fatal("case did not change the config")
			}
			_, err := config.Parse([]byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestDurationsAcceptDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"3d": 72 * time.Hour, "1d12h": 36 * time.Hour, "90s": 90 * time.Second} {
		got, err := config.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "3 days", "-1h", "d"} {
		if _, err := config.ParseDuration(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestUpstreamPasswordIsReadFromItsFile(t *testing.T) {
	f := t.TempDir() + "/pw"
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	p := config.Provider{PasswordFile: f}
	if pw, err := p.Password(); err != nil || pw != "s3cret" {
		t.Fatalf("got %q %v", pw, err)
	}
	p.PasswordFile = f + ".missing"
	if _, err := p.Password(); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestTLSMinimumAndPlaintextNetworks(t *testing.T) {
	base := "[listen]\nsmtp = [\"127.0.0.1:0\"]\nallow = [\"127.0.0.0/8\"]\n"
	c, err := config.Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.MinVersion.String() != "1.2" || len(c.Listen.AllowPlaintextAuth) != 0 || len(c.Weaknesses()) != 0 {
		t.Fatalf("defaults: TLS %s, plaintext %v, weaknesses %q", c.TLS.MinVersion, c.Listen.AllowPlaintextAuth, c.Weaknesses())
	}
	c, err = config.Parse([]byte(base + "allow_plaintext_auth = [\"192.168.1.20\", \"10.0.0.0/8\"]\n[tls]\nmin_version = \"1.0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listen.AllowPlaintextAuth.String(); got != "192.168.1.20/32, 10.0.0.0/8" {
		t.Fatalf("networks %q", got)
	}
	if w := strings.Join(c.Weaknesses(), "\n"); !strings.Contains(w, "min_version") || !strings.Contains(w, "192.168.1.20/32") {
		t.Fatalf("weaknesses: %s", w)
	}
	// The switch of earlier versions still loads, so an upgrade does not
	// stop the relay; it is reported as a weakness.
	c, err = config.Parse([]byte(base + "allow_plaintext_auth = true\n"))
	if err != nil || !strings.Contains(strings.Join(c.Weaknesses(), "\n"), "allow_plaintext_auth = true") {
		t.Fatalf("allow_plaintext_auth = true: %v %q", err, c.Weaknesses())
	}
	for _, bad := range []string{"allow_plaintext_auth = [\"lan\"]\n", "allow_plaintext_auth = 3\n", "[tls]\nmin_version = \"1\"\n"} {
		if _, err := config.Parse([]byte(base + bad)); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%q: want an error naming the line, got %v", bad, err)
		}
	}
}

// By default the practitioner's notices are mailed to their own address:
// the packaged config, filled in as an installer would, tells someone.
func TestNoticesReachThePractitionerByDefault(t *testing.T) {
	c, err := config.Parse(uncommented(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Accounts[1].NotifyAddresses(); len(got) != 1 || got[0] != "cabinet.martin@orange.fr" {
		t.Fatalf("martin, no notify key: %v", got)
	}
	if got := c.Accounts[0].NoticesGoTo(false); got != "mailed to jean.dupont@laposte.net; in the POP3 view of dupont-mobile" {
		t.Fatalf("dupont: %q", got)
	}
	if c.Sesam.Count != "working-days" || c.Sesam.DailySummary != "18:00" || c.Sesam.StampZone != "Europe/Paris" {
		t.Fatalf("%+v", c.Sesam)
	}
	// A second account that writes notify = [] gets none; the first, which
	// does not, keeps its default.
	second := strings.NewReplacer("dupont", "martin", "jean.dupont@laposte.net\"", "cabinet.martin@orange.fr\"\nnotify = []").Replace(valid[strings.Index(valid, "[[account]]"):])
	two, err := config.Parse([]byte(valid + second))
	if err != nil {
		t.Fatal(err)
	}
	if got := two.Accounts[1].NoticesGoTo(false); got != "" {
		t.Fatalf("notify = [] and no human login: %q", got)
	}
	if got := two.Accounts[0].NoticesGoTo(false); got != "mailed to jean.dupont@laposte.net" {
		t.Fatalf("the first account: %q", got)
	}
}

// The 10-second minimum holds for every form of schedule: the review's
// "* * * * * *" (every second) passed `check`.
func TestNoScheduleMayPollFasterThanEveryTenSeconds(t *testing.T) {
	for spec, ok := range map[string]bool{
		"@every 1s": false, "@every 9s": false, "* * * * * *": false, "*/5 * * * * *": false, "0,5 * * * * *": false,
		"0,59 * * * * *": false, "0-3 */2 * * * *": false,
		"@every 10s": true, "*/10 * * * * *": true, "* * * * *": true, "@every 2m": true, "@hourly": true, "0 */5 * * * *": true,
	} {
		var s config.Schedule
		if err := s.UnmarshalText([]byte(spec)); (err == nil) != ok {
			t.Errorf("%q: %v, want accepted %v", spec, err, ok)
		}
	}
}
