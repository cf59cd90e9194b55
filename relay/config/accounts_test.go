package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
)

// The providers' published values, written out again here: a preset that
// changes must change in both places, on purpose.
func TestPresetsHoldTheProvidersPublishedSettings(t *testing.T) {
	want := map[string]struct{ smtp, imap, login string }{
		"jean.dupont@laposte.net":         {"smtps://smtp.laposte.net:465", "imaps://imap.laposte.net:993", "jean.dupont"},
		"cabinet.martin@orange.fr":        {"smtps://smtp.orange.fr:465", "imaps://imap.orange.fr:993", "cabinet.martin@orange.fr"},
		"cabinet.martin@wanadoo.fr":       {"smtps://smtp.orange.fr:465", "imaps://imap.orange.fr:993", "cabinet.martin@wanadoo.fr"},
		"kine.durand@free.fr":             {"smtps://smtp.free.fr:465", "imaps://imap.free.fr:993", "kine.durand"},
		"infirmiere@sfr.fr":               {"smtps://smtp.sfr.fr:465", "imaps://imap.sfr.fr:993", "infirmiere@sfr.fr"},
		"infirmiere@neuf.fr":              {"smtps://smtp.sfr.fr:465", "imaps://imap.sfr.fr:993", "infirmiere@neuf.fr"},
		"cabinet@bbox.fr":                 {"smtp://smtp.bbox.fr:587", "imaps://imap.bbox.fr:993", "cabinet@bbox.fr"},
		"Jean.Dupont@LAPOSTE.NET":         {"smtps://smtp.laposte.net:465", "imaps://imap.laposte.net:993", "Jean.Dupont"},
		"cabinet.martin@club-internet.fr": {"smtps://smtp.sfr.fr:465", "imaps://imap.sfr.fr:993", "cabinet.martin@club-internet.fr"},
	}
	for addr, w := range want {
		p, ok := config.PresetFor(addr)
		if !ok {
			t.Errorf("%s: no preset", addr)
			continue
		}
		if p.SMTP != w.smtp || p.IMAP != w.imap || p.LoginOf(addr) != w.login || p.Spam != `\Junk` || p.Source == "" || p.Webmail == "" {
			t.Errorf("%s: %+v, login %q; want %+v", addr, p, p.LoginOf(addr), w)
		}
	}
	if _, ok := config.PresetFor("cabinet@exemple-sante.fr"); ok {
		t.Error("an unknown domain got a preset: it must ask for the hosts")
	}
}

func accountsDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.toml"), []byte(`state_dir = "/var/lib/sesam-relay"
[listen]
smtp = ["127.0.0.1:587"]
allow = ["127.0.0.0/8"]
`), 0o640)
	os.Mkdir(filepath.Join(dir, "accounts.d"), 0o750)
	for name, body := range files {
		os.WriteFile(filepath.Join(dir, "accounts.d", name), []byte(body), 0o640)
	}
	return filepath.Join(dir, "config.toml")
}

var hash = func() string { h, _ := auth.Hash("billing-pw"); return h }()

func accountFile(name, address, upstream string) string {
	return "name = \"" + name + "\"\npassword_hash = \"" + hash + "\"\naddress = \"" + address + "\"\n\n[upstream]\n" + upstream
}

func TestAccountFilesAreReadWithTheirPreset(t *testing.T) {
	cfg := accountsDir(t, map[string]string{
		"dupont.toml": accountFile("dupont", "jean.dupont@laposte.net", "provider = \"laposte.net\"\npassword_file = \"/etc/sesam-relay/secrets/dupont\"\n") +
			"\n[[login]]\nname = \"dupont-mobile\"\nhuman = true\npassword_hash = \"" + hash + "\"\n",
		// An override wins over the preset.
		"martin.toml":   accountFile("martin", "cabinet.martin@orange.fr", "provider = \"orange.fr\"\nsmtp = \"smtp://smtp.orange.fr:587\"\nfolders = [\"INBOX\"]\npassword_file = \"/etc/sesam-relay/secrets/martin\"\n"),
		"dupont.toml~":  "not read",
		"README":        "not read",
		"old.toml.dpkg": "not read",
	})
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Accounts) != 2 {
		t.Fatalf("%d accounts", len(c.Accounts))
	}
	d, m := c.Account("dupont"), c.Account("martin")
	if d == nil || m == nil || c.Login("dupont-mobile") != d {
		t.Fatalf("accounts %+v", c.Accounts)
	}
	u := d.Upstream
	if u.SMTP.String() != "smtps://smtp.laposte.net:465" || u.IMAP.String() != "imaps://imap.laposte.net:993" || u.Username != "jean.dupont" ||
		strings.Join(u.Folders, ",") != `INBOX,\Junk` || u.Poll.Schedule == nil || !u.KeepUpstream.Forever {
		t.Fatalf("dupont's upstream %+v", u)
	}
	if d.File != filepath.Join(filepath.Dir(cfg), "accounts.d", "dupont.toml") || len(d.WarnLogins(false)) != 1 {
		t.Fatalf("file %q, warn logins %v", d.File, d.WarnLogins(false))
	}
	if m.Upstream.SMTP.String() != "smtp://smtp.orange.fr:587" || m.Upstream.Username != "cabinet.martin@orange.fr" || strings.Join(m.Upstream.Folders, ",") != "INBOX" {
		t.Fatalf("martin's upstream %+v", m.Upstream)
	}
}

// Bad account files are refused with the file, the line and the key.
func TestBadAccountFilesNameTheFileTheLineAndTheKey(t *testing.T) {
	ok := accountFile("dupont", "jean.dupont@laposte.net", "provider = \"laposte.net\"\npassword_file = \"/p\"\n")
	for _, c := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"typo", map[string]string{"dupont.toml": strings.Replace(ok, "address", "adress", 1)}, []string{"dupont.toml: line 3", `unknown key "adress"`}},
		{"typo in upstream", map[string]string{"dupont.toml": ok + "pasword_file = \"/p\"\n"}, []string{"dupont.toml: line 8", `unknown key "upstream.pasword_file"`}},
		{"bad TOML", map[string]string{"dupont.toml": ok + "folders = [\"INBOX\"\n"}, []string{"dupont.toml: line"}},
		{"bad value", map[string]string{"dupont.toml": strings.Replace(ok, "jean.dupont@laposte.net", "jean dupont", 1)}, []string{"dupont.toml", "line 3", "not a bare e-mail address"}},
		{"unknown provider", map[string]string{"dupont.toml": strings.Replace(ok, `"laposte.net"`, `"laposte.fr"`, 1)}, []string{"dupont.toml: line 6", `provider "laposte.fr" is not a preset`, "laposte.net, orange.fr"}},
		{"name unlike the file", map[string]string{"dupond.toml": ok}, []string{"dupond.toml: line 1", `name = "dupont"`}},
		{"one name twice", map[string]string{"dupont.toml": ok, "martin.toml": strings.Replace(ok, `name = "dupont"`, `name = "martin"`, 1) + "\n[[login]]\nname = \"dupont\"\npassword_hash = \"" + hash + "\"\n"},
			[]string{"martin.toml [[login]] #1", `login "dupont" is used twice (also by`, "dupont.toml"}},
		{"no smtp and no preset", map[string]string{"dupont.toml": accountFile("dupont", "a@exemple.fr", "password_file = \"/p\"\nusername = \"a\"\n")}, []string{"dupont.toml", "smtp must be", "provider a preset"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Load(accountsDir(t, c.files))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\nlacks %q", err, w)
				}
			}
		})
	}
}

// A name used both in the config's [[account]] and in a file is refused.
func TestAnAccountInTheConfigAndInAFileIsRefused(t *testing.T) {
	cfg := accountsDir(t, map[string]string{"dupont.toml": accountFile("dupont", "jean.dupont@laposte.net", "provider = \"laposte.net\"\npassword_file = \"/p\"\n")})
	b, _ := os.ReadFile(cfg)
	b = append(b, []byte("[[account]]\nname = \"dupont\"\npassword_hash = \""+hash+"\"\naddress = \"j@laposte.net\"\n[account.upstream]\nprovider = \"laposte.net\"\npassword_file = \"/p\"\n")...)
	os.WriteFile(cfg, b, 0o640)
	_, err := config.Load(cfg)
	if err == nil || !strings.Contains(err.Error(), "dupont.toml: line 1") || !strings.Contains(err.Error(), "also by [[account]] #1 (dupont)") {
		t.Fatalf("%v", err)
	}
}
