package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/sesam-relay/sesam-relay/relay/auth"
)

// AccountFile is the file of account name under dir (accounts_dir).
func AccountFile(dir, name string) string { return filepath.Join(dir, name+".toml") }

// loadAccountsDir reads every *.toml file of accounts_dir, one account
// each, after the config's own [[account]] tables, and checks them all
// together (a login used twice across files is refused). A missing folder
// holds no account. Other files (an editor's dupont.toml~, dpkg's
// .dpkg-old) are not read.
func (c *Config) loadAccountsDir() error {
	files, err := filepath.Glob(filepath.Join(c.AccountsDir, "*.toml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	first := len(c.Accounts)
	for _, f := range files {
		a, err := readAccountFile(f)
		if err != nil {
			return err
		}
		c.Accounts = append(c.Accounts, a)
	}
	if len(files) == 0 {
		return nil
	}
	if errs := validateAccounts(c.Accounts); len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	for i := first; i < len(c.Accounts); i++ {
		c.Accounts[i].fill()
	}
	return nil
}

// readAccountFile decodes one account file: the keys of an [[account]] at
// its top, [upstream] and [[login]] tables. Its name is the file's, and a
// name key that says otherwise is refused.
func readAccountFile(path string) (Account, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Account{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return parseAccountFile(path, src)
}

func parseAccountFile(path string, src []byte) (Account, error) {
	stem := strings.TrimSuffix(filepath.Base(path), ".toml")
	var a Account
	md, err := toml.Decode(string(src), &a)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return a, fmt.Errorf("%s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return a, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return a, fmt.Errorf("%s: line %d: unknown key %q (check its spelling and its [section])", path, lineOf(src, und[0]), und[0].String())
	}
	a.src, a.File, a.notifySet, a.lines = path, path, md.IsDefined("notify"), keyLines(src)
	if a.Name == "" {
		a.Name = stem
	} else if a.Name != stem {
		return a, fmt.Errorf("%s: line %d: name = %q, but the file is named for %q: an account's file is NAME.toml", path, a.lines["name"], a.Name, stem)
	}
	return a, nil
}

// WithAccountFile checks src as the account file path would be, beside
// the accounts c already has, without writing it: `account add` writes
// only a file the config will load. It returns the account as loaded.
func (c *Config) WithAccountFile(path string, src []byte) (Account, error) {
	a, err := parseAccountFile(path, src)
	if err != nil {
		return a, err
	}
	all := append(append([]Account(nil), c.Accounts...), a)
	if errs := validateAccounts(all); len(errs) > 0 {
		return a, errors.New(strings.Join(errs, "; "))
	}
	a = all[len(all)-1]
	a.fill()
	return a, nil
}

// keyLines maps each key of a small TOML file to the line of its first use.
func keyLines(src []byte) map[string]int {
	m := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		k, _, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		k = strings.Trim(strings.TrimSpace(k), `"'`)
		if ok && !strings.HasPrefix(k, "#") && m[k] == 0 {
			m[k] = n
		}
	}
	return m
}

// at names where an account's key is written: "accounts.d/dupont.toml:
// line 4" in a file of its own, "[[account]] #2 (martin)" in the config
// (whose arrays of tables the decoder gives no lines for). The message
// that follows names the key.
func (a Account) at(key string) string {
	if n := a.lines[key]; n > 0 {
		return fmt.Sprintf("%s: line %d", a.src, n)
	}
	return a.src
}

// validateAccounts checks every account, its presets filled in, and that
// no login is used twice across them.
func validateAccounts(accts []Account) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	seen := map[string]string{}
	for i := range accts {
		a := &accts[i]
		u := &a.Upstream
		up, logins := "[upstream]", "[[login]]" // the tables' names where the account is written
		if a.File == "" {
			up, logins = "[account.upstream]", "[[account.login]]"
		}
		if u.Provider != "" {
			p, ok := PresetNamed(u.Provider)
			if !ok {
				bad("%s: provider %q is not a preset (write one of %s, or give smtp and imap yourself)", a.at("provider"), u.Provider, PresetNames())
			} else if a.Address == "" {
				bad("%s: provider %s needs the address the login is made of", a.at("address"), p.Name)
			} else if err := p.apply(a); err != nil {
				bad("%s: %v", a.at("provider"), err)
			}
		}
		for j, l := range a.AllLogins() {
			lw := a.at("name")
			if j > 0 {
				lw = fmt.Sprintf("%s %s #%d", a.src, logins, j)
			}
			switch {
			case l.Name == "":
				bad("%s: name is empty (it is a local login, e.g. of the billing software)", lw)
			case strings.ContainsAny(l.Name, " \t:@/\\"):
				bad("%s: name %q may not hold spaces, ':', '@', '/' or '\\'", lw, l.Name)
			case seen[l.Name] != "":
				bad("%s: the login %q is used twice (also by %s)", lw, l.Name, seen[l.Name])
			}
			if seen[l.Name] == "" {
				seen[l.Name] = a.src
			}
			if !strings.HasPrefix(l.PasswordHash, "$argon2id$") {
				bad("%s: password_hash must be an $argon2id$ hash: run `sesam-relay passwd` and paste what it prints", lw)
			} else if l.PasswordHash == auth.ExampleHash {
				bad("%s: %v", lw, auth.ErrExampleHash)
			}
		}
		if a.Address == "" {
			bad("%s: address is empty (the practitioner's provider address)", a.at("address"))
		}
		if u.SMTP.Addr == "" || u.SMTP.Proto() != "smtp" {
			bad("%s: %s smtp must be smtps://host or smtp://host (e.g. smtps://smtp.laposte.net:465), or provider a preset (%s)", a.at("smtp"), up, PresetNames())
		}
		if u.IMAP.Addr != "" && u.IMAP.Proto() != "imap" {
			bad("%s: %s imap must be imaps://host or imap://host (e.g. imaps://imap.laposte.net:993)", a.at("imap"), up)
		}
		if u.IMAP.Addr != "" && u.Username == "" {
			bad("%s: %s imap needs username and password_file", a.at("imap"), up)
		}
		if u.MaxFetchSize != 0 && u.MaxFetchSize < 64<<10 {
			bad("%s: %s max_fetch_size %d is too small: a return alone can take tens of kilobytes (write e.g. \"40M\")", a.at("max_fetch_size"), up, u.MaxFetchSize)
		}
		if (u.Username == "") != (u.PasswordFile == "") {
			bad("%s: %s needs both username and password_file (or neither, for a smarthost that needs no login)", a.at("password_file"), up)
		}
	}
	return errs
}

// fill gives an account's upstream its defaults.
func (a *Account) fill() {
	u := &a.Upstream
	if len(u.Folders) == 0 {
		u.Folders = []string{"INBOX"}
	}
	if u.Poll.Schedule == nil {
		u.Poll.UnmarshalText([]byte("@every 2m"))
	}
	if !u.KeepUpstream.Forever && u.KeepUpstream.For == 0 {
		u.KeepUpstream.Forever = true
	}
	if u.MaxFetchSize == 0 {
		u.MaxFetchSize = DefaultMaxFetchSize
	}
}
