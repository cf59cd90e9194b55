package control

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
)

// accountPasswd is `account passwd NAME`, the step after a provider forced
// a password change (laposte.net, May 2022): the new password is tried,
// kept, and the account's waiting mail and returns go at once, whatever
// pause the refused old one had put the account in.
func accountPasswd(cfg *config.Config, name string, o AccountOpts, in *asker, stdout io.Writer) error {
	acct := cfg.Account(name)
	if acct == nil {
		return fmt.Errorf("no account %q (see `sesam-relay account list`)", name)
	}
	secret := acct.Upstream.PasswordFile
	if secret == "" {
		return fmt.Errorf("account %s logs in to no provider (no password_file)", name)
	}
	pw, err := in.password(fmt.Sprintf("New provider password of %s (not shown): ", acct.Upstream.Username), false)
	if err != nil {
		return err
	}
	preset, known := config.PresetNamed(acct.Upstream.Provider)
	if !o.NoCheck {
		if err := tryProvider(acct.Upstream.WithPassword(pw), cfg.Hostname, preset, known, stdout); err != nil {
			return err
		}
	}
	said, err := keys.SealSecret(secret, config.PasswordCredential(secret), []byte(pw))
	if err != nil {
		return err
	}
	applied := applyChange(cfg, keys.CanSeal())
	var r AccountRetry
	retryErr := callWhenUp(cfg, Request{Cmd: "account-retry", Account: name}, &r)
	if o.JSON {
		out := map[string]any{"account": name, "password": said, "applied": applied, "retry": r}
		if retryErr != nil {
			out["retry_error"] = retryErr.Error()
		}
		PrintJSON(stdout, out)
		return nil
	}
	fmt.Fprintf(stdout, "account %s: the provider password is %s\n%s\n", name, said, applied)
	switch {
	case errors.Is(retryErr, ErrDaemonDown):
		fmt.Fprintln(stdout, "the waiting mail leaves once the service runs")
	case retryErr != nil:
		fmt.Fprintf(stdout, "asking the relay to send now failed: %v (it tries again by itself)\n", retryErr)
	default:
		fmt.Fprintf(stdout, "%s now being sent", plural(r.Waiting, "waiting mail"))
		if r.FetchError != "" {
			fmt.Fprintf(stdout, "; collecting the returns failed: %s", r.FetchError)
		} else if acct.Upstream.IMAP.Addr != "" {
			fmt.Fprint(stdout, "; the returns were collected")
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// accountList is `account list`: each account, where it is written, its
// provider and logins, and how its password is kept.
func accountList(cfg *config.Config, o AccountOpts, stdout io.Writer) int {
	type row struct {
		Name     string   `json:"name"`
		Address  string   `json:"address"`
		Provider string   `json:"provider,omitempty"`
		SMTP     string   `json:"smtp"`
		IMAP     string   `json:"imap,omitempty"`
		Username string   `json:"username,omitempty"`
		Logins   []string `json:"logins"`
		File     string   `json:"file"`
		Password string   `json:"password"`
	}
	var rows []row
	for _, a := range cfg.Accounts {
		r := row{Name: a.Name, Address: string(a.Address), Provider: a.Upstream.Provider, SMTP: a.Upstream.SMTP.String(),
			IMAP: a.Upstream.IMAP.String(), Username: a.Upstream.Username, File: a.File, Password: passwordKept(a.Upstream)}
		if r.File == "" {
			r.File = o.Config
		}
		for _, l := range a.AllLogins() {
			n := l.Name
			if l.Human {
				n += " (person)"
			}
			r.Logins = append(r.Logins, n)
		}
		rows = append(rows, r)
	}
	if o.JSON {
		if rows == nil {
			rows = []row{}
		}
		PrintJSON(stdout, rows)
		return 0
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no account yet: add one with `sesam-relay account add NAME`")
	}
	for _, r := range rows {
		fmt.Fprintf(stdout, "%s  %s  via %s", r.Name, r.Address, r.SMTP)
		if r.IMAP != "" {
			fmt.Fprintf(stdout, ", collects from %s", r.IMAP)
		}
		fmt.Fprintf(stdout, "\n    logins %s; password %s; written in %s\n", strings.Join(r.Logins, ", "), r.Password, r.File)
	}
	return 0
}

func passwordKept(p config.Provider) string {
	switch {
	case p.PasswordFile == "":
		return "none (no provider login)"
	case p.PasswordSealed():
		return "sealed (systemd credential)"
	case fileExists(p.PasswordFile):
		return "in clear in " + p.PasswordFile
	}
	return "MISSING: run `sesam-relay account passwd`"
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

// accountRemove is `account remove NAME`: its file is set aside (renamed,
// no longer read), its provider password destroyed, and the daemon
// reloaded, which holds the account's waiting mail (never dropped).
func accountRemove(cfg *config.Config, name string, o AccountOpts, stdout io.Writer) error {
	acct := cfg.Account(name)
	if acct == nil {
		return fmt.Errorf("no account %q (see `sesam-relay account list`)", name)
	}
	if acct.File == "" {
		return fmt.Errorf("account %s is written in %s, not by `account add`: remove its [[account]] there, then `systemctl reload sesam-relay`", name, o.Config)
	}
	var q QueuePage
	waiting := -1
	if Call(cfg.Listen.Control, Request{Cmd: "queue", Account: name, Page: 1}, &q) == nil {
		waiting = q.Total
	}
	aside := acct.File + ".removed-" + time.Now().Format("20060102-150405")
	if err := os.Rename(acct.File, aside); err != nil {
		return err
	}
	var gone []string
	shared := ""
	for _, other := range cfg.Accounts {
		if other.Name != name && other.Upstream.PasswordFile != "" && other.Upstream.PasswordFile == acct.Upstream.PasswordFile {
			shared = other.Name
		}
	}
	if s := acct.Upstream.PasswordFile; s != "" && shared == "" {
		cred := keys.CredentialFile(s)
		dropIn := filepath.Join(keys.UnitDir(), "sesam-relay.service.d", "50-"+config.PasswordCredential(s)+".conf")
		for _, f := range []string{s, cred, dropIn} {
			if err := os.Remove(f); err == nil {
				gone = append(gone, f)
			}
		}
	}
	applied := applyChange(cfg, len(gone) > 1) // a credential's drop-in went: systemd must forget it
	if o.JSON {
		PrintJSON(stdout, map[string]any{"account": name, "file_set_aside": aside, "removed": gone, "applied": applied, "waiting_held": waiting})
		return nil
	}
	fmt.Fprintf(stdout, "account %s removed: its file is set aside as %s\n", name, aside)
	switch {
	case shared != "":
		fmt.Fprintf(stdout, "its provider password (%s) is kept: account %s uses it too\n", acct.Upstream.PasswordFile, shared)
	case len(gone) > 0:
		fmt.Fprintf(stdout, "its provider password is destroyed (%s): to bring the account back, rename its file back, then `sudo sesam-relay account passwd %s`\n", strings.Join(gone, ", "), name)
	}
	fmt.Fprintln(stdout, applied)
	switch {
	case waiting > 0:
		fmt.Fprintf(stdout, "%s of %s held, not dropped: `sesam-relay queue --all` shows them\n", plural(waiting, "waiting mail"), name)
	case waiting < 0:
		fmt.Fprintln(stdout, "its waiting mail, if any, is held when the service starts (never dropped)")
	}
	return nil
}

// applyChange makes the relay take a change of its accounts: a restart
// where a systemd credential was added or removed (systemd reads the
// drop-ins at the start only), else a reload; with the daemon down, it
// says to start it. It says what happened.
func applyChange(cfg *config.Config, restart bool) string {
	if restart && os.Getenv("SESAM_RELAY_UNIT_DIR") != "" { // a test's drop-ins: no systemd to restart
		return "restart the service so that it reads it: systemctl daemon-reload && systemctl restart sesam-relay"
	}
	if restart {
		exec.Command("systemctl", "daemon-reload").Run()
		if out, err := exec.Command("systemctl", "try-restart", "sesam-relay").CombinedOutput(); err != nil {
			return fmt.Sprintf("restarting the service failed (%v: %s): run systemctl restart sesam-relay", err, strings.TrimSpace(string(out)))
		}
		if callWhenUp(cfg, Request{Cmd: "status"}, nil) != nil {
			return "the service is not running: start it with `systemctl start sesam-relay`"
		}
		return "the service was restarted to read it (deliveries in hand finished first)"
	}
	err := Call(cfg.Listen.Control, Request{Cmd: "reload"}, nil)
	switch {
	case errors.Is(err, ErrDaemonDown):
		return "the service is not running: start it with `systemctl start sesam-relay`"
	case err != nil:
		return fmt.Sprintf("the relay refused the new config and keeps the one it runs: %v", err)
	}
	return "the relay reloaded its config"
}

// callWhenUp is Call, waiting up to 15 s for a daemon that is starting.
func callWhenUp(cfg *config.Config, req Request, out any) error {
	var err error
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err = Call(cfg.Listen.Control, req, out); !errors.Is(err, ErrDaemonDown) || time.Now().After(end) {
			return err
		}
		if !unitActive() {
			return err // not starting: down
		}
	}
}

// unitActive says whether systemd is starting or running the service.
func unitActive() bool {
	if os.Getenv("SESAM_RELAY_UNIT_DIR") != "" {
		return false
	}
	out, _ := exec.Command("systemctl", "is-active", "sesam-relay").Output()
	s := strings.TrimSpace(string(out))
	return s == "active" || s == "activating" || s == "reloading"
}

// BillingSettings are what to type into the billing software.
type BillingSettings struct {
	Servers []string `json:"servers"` // this box's addresses on the LAN
	SMTP    []string `json:"smtp"`    // "587 (STARTTLS)", "465 (SSL/TLS)"
	POP3    []string `json:"pop3"`
	Login   string   `json:"login"`
	Phone   string   `json:"phone_login,omitempty"`
	// Fingerprint of the certificate, when the billing software asks.
	Fingerprint string `json:"certificate_sha256,omitempty"`
}

func billingSettings(cfg *config.Config, login, phone string) BillingSettings {
	s := BillingSettings{Login: login, Phone: phone}
	seen := map[string]bool{}
	add := func(list *[]string, hps []config.HostPort, mode string) {
		for _, hp := range hps {
			host, port, _ := net.SplitHostPort(string(hp))
			if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() && !seen[host] {
				seen[host] = true
				s.Servers = append(s.Servers, host)
			}
			*list = append(*list, port+" ("+mode+")")
		}
	}
	add(&s.SMTP, cfg.Listen.SMTP, "STARTTLS")
	add(&s.SMTP, cfg.Listen.SMTPS, "SSL/TLS")
	add(&s.POP3, cfg.Listen.POP3, "STARTTLS")
	add(&s.POP3, cfg.Listen.POP3S, "SSL/TLS")
	if len(s.Servers) == 0 { // listening on every address: the box's own
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
					s.Servers = append(s.Servers, p.Addr().String())
				}
			}
		}
		if len(s.Servers) == 0 {
			s.Servers = []string{cfg.Hostname}
		}
	}
	var st Status
	if Call(cfg.Listen.Control, Request{Cmd: "status"}, &st) == nil {
		s.Fingerprint = st.Fingerprint
	}
	return s
}

func printSettings(w io.Writer, s BillingSettings) {
	fmt.Fprintln(w, "In the billing software (and the phone), type:")
	fmt.Fprintf(w, "  server (incoming and outgoing): %s\n", strings.Join(s.Servers, " or "))
	fmt.Fprintf(w, "  outgoing mail, SMTP, port:      %s\n", strings.Join(s.SMTP, " or "))
	if len(s.POP3) > 0 {
		fmt.Fprintf(w, "  incoming mail, POP3, port:      %s\n", strings.Join(s.POP3, " or "))
	}
	fmt.Fprintf(w, "  login:                          %s, with the billing software's password given above\n", s.Login)
	if s.Phone != "" {
		fmt.Fprintf(w, "  the phone's login:              %s, with its own password\n", s.Phone)
	}
	fmt.Fprintln(w, "  SMTP authentication: yes, with the same login")
	if s.Fingerprint != "" {
		fmt.Fprintf(w, "  if it asks to accept the certificate, check it is SHA-256 %s\n", s.Fingerprint)
	} else {
		fmt.Fprintln(w, "  the certificate's fingerprint: `sesam-relay status` once the service runs")
	}
	fmt.Fprintln(w, "If it only offers port 25, see the README, \"Billing software that insists on port 25\".")
}
