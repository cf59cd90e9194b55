package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/deliver"
	"github.com/sesam-relay/sesam-relay/relay/fetch"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
)

// AccountOpts are the flags of `sesam-relay account`.
type AccountOpts struct {
	Config   string // the config file: accounts_dir and secrets/ are beside it
	JSON     bool
	Address  string // the practitioner's provider address
	Provider string // a preset's name, when the domain has none or another
	SMTP     string // overrides the preset's servers
	IMAP     string
	Username string // overrides the preset's login form
	Phone    string // an extra login for a person's device (human = true)
	NoCheck  bool   // write without trying the provider (no network yet)
	Insecure bool   // plaintext upstream: tests and demos only (status warns)
}

// Account is `sesam-relay account add|passwd|list|remove`.
func Account(cfg *config.Config, args []string, o AccountOpts, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "sesam-relay account: usage: account add NAME [--address A] [--phone LOGIN] | passwd NAME | list | remove NAME")
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	if args[0] == "list" {
		if len(args) != 1 {
			return usage()
		}
		return accountList(cfg, o, stdout)
	}
	if len(args) != 2 {
		return usage()
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "sesam-relay account %s: %v\n", args[0], err)
		return 1
	}
	var err error
	switch args[0] {
	case "add":
		err = accountAdd(cfg, args[1], o, newAsker(stdin, stderr), stdout)
	case "passwd":
		err = accountPasswd(cfg, args[1], o, newAsker(stdin, stderr), stdout)
	case "remove":
		err = accountRemove(cfg, args[1], o, stdout)
	default:
		return usage()
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// loginNames are the names account add gives: they become file names, TOML
// values and words of the CLI's hints, so nothing there may need quoting.
var loginNames = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func loginName(what, name string) error {
	if !loginNames.MatchString(name) {
		return fmt.Errorf("%q cannot name %s: a short login such as dupont (lower-case letters, digits, '-' and '_', at most 64)", name, what)
	}
	return nil
}

// secretsDir holds the provider passwords the account commands write.
func secretsDir(o AccountOpts) string { return filepath.Join(filepath.Dir(o.Config), "secrets") }

func accountAdd(cfg *config.Config, name string, o AccountOpts, in *asker, stdout io.Writer) error {
	if cfg.Login(name) != nil {
		return fmt.Errorf("the login %q is already used (see `sesam-relay account list`): choose another name", name)
	}
	if err := loginName("an account", name); err != nil {
		return err
	}
	addr := o.Address
	var err error
	if addr == "" {
		if addr, err = in.line("Provider address of the practitioner (e.g. jean.dupont@laposte.net): "); err != nil {
			return err
		}
	}
	addr = strings.TrimSpace(addr)
	var a config.Address
	if err := a.UnmarshalText([]byte(addr)); err != nil {
		return err
	}
	preset, known := config.PresetFor(addr)
	if o.Provider != "" {
		if preset, known = config.PresetNamed(o.Provider); !known {
			return fmt.Errorf("--provider %q is not a preset (%s)", o.Provider, config.PresetNames())
		}
	}
	smtp, imap := o.SMTP, o.IMAP
	if !known && smtp == "" {
		_, domain, _ := strings.Cut(addr, "@")
		if !in.Interactive() {
			return fmt.Errorf("no preset for @%s (presets: %s): give the provider's servers with --smtp smtps://HOST:465 and --imap imaps://HOST:993", domain, config.PresetNames())
		}
		fmt.Fprintf(in.stderr, "No preset for @%s: give the provider's servers (its help pages list them).\n", domain)
		if smtp, err = in.line("Sending server (e.g. smtps://smtp.example.fr:465): "); err != nil {
			return err
		}
		if imap == "" {
			if imap, err = in.line("Collecting server (e.g. imaps://imap.example.fr:993; empty: none): "); err != nil {
				return err
			}
		}
	}
	username := o.Username
	if username == "" {
		if known {
			username = preset.LoginOf(addr)
		} else {
			username = addr
		}
	}
	fmt.Fprintf(in.stderr, "Provider login: %s\n", username)
	providerPW, err := in.password(fmt.Sprintf("Provider password of %s (not shown): ", addr), false)
	if err != nil {
		return err
	}
	localPW, err := in.password(fmt.Sprintf("Password the billing software will give the relay for %s (not shown): ", name), true)
	if err != nil {
		return err
	}
	phone := strings.TrimSpace(o.Phone)
	var phonePW string
	if phone == "" && in.Interactive() {
		if phone, err = in.line("Extra login for the practitioner's phone or mail program (empty: none): "); err != nil {
			return err
		}
		phone = strings.TrimSpace(phone)
	}
	if phone != "" {
		if err := loginName("the phone's login", phone); err != nil {
			return err
		}
		if cfg.Login(phone) != nil || phone == name {
			return fmt.Errorf("the login %q is already used: choose another name for the phone", phone)
		}
		if phonePW, err = in.password(fmt.Sprintf("Password of the login %s (not shown): ", phone), true); err != nil {
			return err
		}
	}

	// The account, as its file will hold it, checked as the config will
	// load it, before anything is tried or written.
	file := config.AccountFile(cfg.AccountsDir, name)
	secret := filepath.Join(secretsDir(o), name)
	src, err := accountText(name, addr, localPW, phone, phonePW, preset, known, smtp, imap, username, o, secret)
	if err != nil {
		return err
	}
	acct, err := cfg.WithAccountFile(file, src)
	if err != nil {
		return err
	}
	if !o.NoCheck {
		if err := tryProvider(acct.Upstream.WithPassword(providerPW), cfg.Hostname, preset, known, stdout); err != nil {
			return err
		}
	}
	// Written: the password first, so that the account never exists
	// without it; then the account's file, atomically.
	if err := os.MkdirAll(secretsDir(o), 0o750); err != nil {
		return err
	}
	shareGroup(secretsDir(o), o.Config)
	said, err := keys.SealSecret(secret, config.PasswordCredential(secret), []byte(providerPW))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.AccountsDir, 0o750); err != nil {
		return err
	}
	shareGroup(cfg.AccountsDir, o.Config)
	if err := writeAccountFile(file, src); err != nil {
		return err
	}
	applied := applyChange(cfg, keys.CanSeal())
	settings := billingSettings(cfg, name, phone)
	if o.JSON {
		PrintJSON(stdout, map[string]any{"account": name, "file": file, "address": addr, "username": username,
			"smtp": acct.Upstream.SMTP.String(), "imap": acct.Upstream.IMAP.String(), "folders": acct.Upstream.Folders,
			"password": said, "applied": applied, "billing_software": settings, "checked": !o.NoCheck})
		return nil
	}
	fmt.Fprintf(stdout, "account %s written to %s\n", name, file)
	fmt.Fprintf(stdout, "provider password: %s\n", said)
	fmt.Fprintf(stdout, "%s\n\n", applied)
	printSettings(stdout, settings)
	return nil
}

// accountText is the account's file, commented for the next technician.
func accountText(name, addr, localPW, phone, phonePW string, preset config.Preset, known bool, smtp, imap, username string, o AccountOpts, secret string) ([]byte, error) {
	h, err := auth.Hash(localPW)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	who := "root"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	fmt.Fprintf(&b, "# Written by `sesam-relay account add %s` on %s (%s).\n", name, time.Now().Format("2006-01-02 15:04"), who)
	fmt.Fprintf(&b, "# Change it here, then `sesam-relay check` and `systemctl reload sesam-relay`;\n")
	fmt.Fprintf(&b, "# the provider password: `sesam-relay account passwd %s`.\n", name)
	fmt.Fprintf(&b, "name          = %s\n", tomlString(name))
	fmt.Fprintf(&b, "address       = %s\n", tomlString(addr))
	fmt.Fprintf(&b, "password_hash = %s   # the billing software's password\n", tomlString(h))
	fmt.Fprintf(&b, "\n[upstream]\n")
	if known {
		fmt.Fprintf(&b, "provider      = %s   # fills in what is not written below (%s)\n", tomlString(preset.Name), preset.Source)
	}
	if smtp != "" {
		fmt.Fprintf(&b, "smtp          = %s\n", tomlString(smtp))
	}
	if imap != "" {
		fmt.Fprintf(&b, "imap          = %s\n", tomlString(imap))
	}
	fmt.Fprintf(&b, "username      = %s\n", tomlString(username))
	fmt.Fprintf(&b, "password_file = %s   # or its sealed credential, .cred beside it\n", tomlString(secret))
	if o.Insecure {
		fmt.Fprintf(&b, "insecure      = true   # no TLS to the provider: tests and demos only\n")
	}
	if phone != "" {
		ph, err := auth.Hash(phonePW)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "\n# A person's device: the relay's French notices reach it too.\n[[login]]\n")
		fmt.Fprintf(&b, "name          = %s\nhuman         = true\npassword_hash = %s\n", tomlString(phone), tomlString(ph))
	}
	return b.Bytes(), nil
}

// tomlString quotes s as a TOML basic string (a JSON string is one).
func tomlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// tryProvider logs in once by SMTP and once by IMAP with a password not
// yet written: a refused one is said before anything is written.
func tryProvider(p config.Provider, hostname string, preset config.Preset, known bool, stdout io.Writer) error {
	webmail := "the provider's webmail"
	if known {
		webmail = preset.Webmail
	}
	try := func(what string, u config.Upstream, err error) error {
		if err == nil {
			fmt.Fprintf(stdout, "%s: %s accepted the login %s\n", what, u.String(), p.Username)
			return nil
		}
		var ue *upstream.Error
		errors.As(err, &ue)
		switch {
		case ue != nil && ue.Kind == upstream.CredentialsRefused:
			return fmt.Errorf("%s refused the password of %s: nothing was written. Check it by logging in to %s, then run this again", u.String(), p.Username, webmail)
		case ue != nil && ue.Kind == upstream.AccessClosed:
			return fmt.Errorf("%s: %v. Nothing was written; while the provider keeps it closed, add --no-check to write it anyway", u.String(), err)
		}
		return fmt.Errorf("%s: %v. Nothing was written: check this box's Internet access and the server's name, or add --no-check to write it without trying", u.String(), err)
	}
	if err := try("sending", p.SMTP, deliver.TryLogin(p, hostname, 30*time.Second)); err != nil {
		return err
	}
	if p.IMAP.Addr != "" {
		if err := try("collecting", p.IMAP, fetch.TryLogin(p, 30*time.Second)); err != nil {
			return err
		}
	}
	return nil
}

// writeAccountFile writes the file whole or not at all: a temporary name
// that the config does not read (not *.toml), synced, then renamed. It is
// 0640 with its folder's group (the service's): it holds password hashes.
func writeAccountFile(path string, src []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(src); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		shareGroup(tmp, filepath.Dir(path))
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// shareGroup gives path the group of like (the config's: sesam-relay),
// so that the service may read what root wrote.
func shareGroup(path, like string) {
	if fi, err := os.Stat(like); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			os.Lchown(path, -1, int(st.Gid))
		}
	}
}
