// Package config decodes and validates sesam-relay's one TOML file.
//
// Decoding is strict: an unknown key, a bad address, size or duration is an
// error that names the key and its line, because a typo in a relay's config
// must not silently turn into a default.
package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where the .deb installs the config; every subcommand's --config defaults to it.
const DefaultPath = "/etc/sesam-relay/config.toml"

// Config is the whole file.
type Config struct {
	Hostname string `toml:"hostname"`
	StateDir string `toml:"state_dir"`
	// StoreKey is the plain file of the key the store's bodies are sealed
	// to, used when systemd gives no credential (keys.Find). Default:
	// keys/store-key beside the config (the package makes that folder the
	// service's, mode 0700).
	StoreKey       string    `toml:"store_key"`
	MaxMessageSize Size      `toml:"max_message_size"`
	MinFreeSpace   Size      `toml:"min_free_space"`
	Retention      Duration  `toml:"retention"` // local mail is kept this long
	Listen         Listen    `toml:"listen"`
	TLS            TLS       `toml:"tls"`
	Delivery       Delivery  `toml:"delivery"`
	LocalAuth      LocalAuth `toml:"local_auth"`
	Sesam          Sesam     `toml:"sesam"`
	Backup         Backup    `toml:"backup"`
	Metrics        Metrics   `toml:"metrics"`
	Accounts       []Account `toml:"account"`
	// AccountsDir holds one file per account (`sesam-relay account add`
	// writes them), read after the [[account]] tables of this file.
	// Default: accounts.d beside the config.
	AccountsDir string `toml:"accounts_dir"`
}

// Metrics is the Prometheus endpoint (GET /metrics, OpenMetrics, no
// login): off until listen names an address; only the hosts in allow
// (default: this box) reach it.
type Metrics struct {
	Listen []HostPort `toml:"listen"`
	Allow  []Prefix   `toml:"allow"`
}

// Backup is where `sesam-relay backup` (its daily timer) writes, and to
// which key.
type Backup struct {
	// Folder receives the backups (a USB stick, a NAS share); empty: only
	// `backup --to FILE` writes one.
	Folder string `toml:"folder"`
	// Keep is how many backups stay in Folder, the newest.
	Keep int `toml:"keep"`
	// RecoveryKey is the public half of the practice's recovery key
	// (`sesam-relay keys recovery` makes it). Default: keys/recovery.pub
	// beside the config.
	RecoveryKey string `toml:"recovery_key"`
}

// Sesam holds what the relay does with what it knows of SESAM-Vitale mail.
type Sesam struct {
	// GuardClearLots holds (does not send) a mail to a fund whose care
	// sheets are not inside S/MIME encryption: health data in clear at the
	// provider. A technician can release it.
	GuardClearLots bool `toml:"guard_clear_lots"`
	// AckDelay: a delivered lot with no acknowledgement after this long is
	// warned about. UndeliveredWarning: a lot not yet delivered after this long.
	AckDelay           Duration `toml:"ack_delay"`
	UndeliveredWarning Duration `toml:"undelivered_warning"`
	// WarnBillingLogin also sends the warnings to the account's own login
	// (the billing software), which otherwise never sees them.
	WarnBillingLogin bool `toml:"warn_billing_login"`
	// Contact names the practice's technician and phone, printed in every
	// notice that asks the practitioner to call them ("Martin
	// Informatique, 04 00 00 00 00"). Empty: "appelez votre technicien".
	Contact string `toml:"contact"`
	// Count says how the two delays count time: "working-days" (default:
	// only the hours of French working days, so that a Friday lot is not
	// "missing its ARL" on Sunday) or "calendar".
	Count string `toml:"count"`
	// AlsaceMoselle adds Good Friday and 26 December to the holidays.
	AlsaceMoselle bool `toml:"alsace_moselle"`
	// Holidays are further days the practice or its fund closes (YYYY-MM-DD).
	Holidays []string `toml:"holidays"`
	// StampZone is the time zone the billing software writes lot stamps in.
	StampZone string `toml:"stamp_zone"`
	// DailySummary is the time of day (HH:MM, Europe/Paris) of the French
	// summary of the day's lots, on working days; "off" for none.
	DailySummary string `toml:"daily_summary"`
	// Rules classify returns before the built-in guesses: how the funds
	// label ARLs and returns varies and was not found in public sources.
	Rules []Rule `toml:"rule"`
}

// Rule is one [[sesam.rule]]: when field ("subject", "from" or
// "content-description") matches pattern (a Go regular expression), the
// mail is of class (arl-positive, arl-negative, noemie-payment,
// noemie-reject, noemie-warning, bounce, provider-notice, unknown).
type Rule struct {
	Field   string  `toml:"field"`
	Pattern Pattern `toml:"pattern"`
	Class   string  `toml:"class"`
}

// Listen says where the local clients reach the relay.
type Listen struct {
	SMTP    []HostPort `toml:"smtp"`  // plain, STARTTLS offered
	SMTPS   []HostPort `toml:"smtps"` // implicit TLS
	POP3    []HostPort `toml:"pop3"`  // plain, STLS offered
	POP3S   []HostPort `toml:"pop3s"` // implicit TLS
	Web     []HostPort `toml:"web"`   // the practice's page, HTTPS
	Control string     `toml:"control"`
	Allow   []Prefix   `toml:"allow"`
	// AllowPlaintextAuth lists the networks whose clients may log in without
	// TLS (SMTP AUTH, POP3 USER/PASS): an old billing program on one
	// workstation, not the whole LAN.
	AllowPlaintextAuth Networks `toml:"allow_plaintext_auth"`
	// Open connections, SMTP and POP3 together: in all, and from one
	// address (IPv6: one /64). Past them a client is answered 421 / -ERR.
	MaxConnections           int `toml:"max_connections"`
	MaxConnectionsPerAddress int `toml:"max_connections_per_address"`
}

// TLS names the certificate the local listeners present. Empty: a self-signed
// one is generated in state_dir on first start.
type TLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// MinVersion is the oldest TLS version the listeners accept: 1.2 unless
	// an old billing program needs "1.0" (then shown in status).
	MinVersion TLSVersion `toml:"min_version"`
}

// Delivery tunes retries towards the providers.
type Delivery struct {
	Lifetime    Duration `toml:"lifetime"`     // give up and bounce after this long
	DelayNotice Duration `toml:"delay_notice"` // tell the sender we are still trying
	FirstRetry  Duration `toml:"first_retry"`
	MaxRetry    Duration `toml:"max_retry"`
	AuthPause   Duration `toml:"auth_pause"` // wait after the provider refused our login
	Timeout     Duration `toml:"timeout"`    // one SMTP command or the final reply
}

// LocalAuth throttles local clients that fail to log in.
type LocalAuth struct {
	MaxFailures   int      `toml:"max_failures"`
	FailureWindow Duration `toml:"failure_window"`
	FailureDelay  Duration `toml:"failure_delay"`
}

// Account is one practitioner: a local login and their provider mailbox.
type Account struct {
	Name         string   `toml:"name"`
	PasswordHash string   `toml:"password_hash"`
	Address      Address  `toml:"address"`
	Upstream     Provider `toml:"upstream"`
	Logins       []Login  `toml:"login"` // more local logins reading this account's mail
	// Notify are the addresses the relay's French notices are mailed to,
	// through the provider: by default the practitioner's own address, so
	// that they reach the webmail and the phone; [] for none. Their copy
	// collected back is kept out of every login's view.
	Notify []Address `toml:"notify"`
	// notifySet: notify was written in the file (even empty).
	notifySet bool
	// src says where the account is written, for errors: "[[account]] #2
	// (martin)" or the file under accounts_dir; File is that file.
	src  string
	File string `toml:"-"`
	// lines are the line numbers of the keys of an accounts_dir file.
	lines map[string]int
}

// NotifyAddresses are the addresses the notices are mailed to.
func (a Account) NotifyAddresses() []string {
	if !a.notifySet && len(a.Notify) == 0 {
		return []string{string(a.Address)}
	}
	var out []string
	for _, n := range a.Notify {
		out = append(out, string(n))
	}
	return out
}

// Login is a further local login of an account (a phone, a second program):
// it submits as the account and has its own POP3 view of the account's mail.
type Login struct {
	Name         string `toml:"name"`
	PasswordHash string `toml:"password_hash"`
	// Human marks a person's login (a phone, the practitioner's mail
	// program): the relay's warnings about lots go there.
	Human bool `toml:"human"`
	// Technician marks the login of the practice's technician: the page
	// adds the Technicien tab (the queue with hold, release and retry,
	// the provider's health, the last backup, the journal's warnings).
	Technician bool `toml:"technician"`
}

// WarnLogins are the logins that get the relay's warnings about lots.
func (a Account) WarnLogins(billingToo bool) []string {
	var out []string
	if billingToo {
		out = append(out, a.Name)
	}
	for _, l := range a.Logins {
		if l.Human {
			out = append(out, l.Name)
		}
	}
	return out
}

// NoticesGoTo says, for the installer, where the account's French notices
// go: "mailed to jean.dupont@laposte.net; in the POP3 view of dupont-mobile".
// Empty: they reach nobody.
func (a Account) NoticesGoTo(billingToo bool) string {
	var parts []string
	if n := a.NotifyAddresses(); len(n) > 0 {
		parts = append(parts, "mailed to "+strings.Join(n, ", "))
	}
	if l := a.WarnLogins(billingToo); len(l) > 0 {
		parts = append(parts, "in the POP3 view of "+strings.Join(l, ", "))
	}
	return strings.Join(parts, "; ")
}

// AllLogins returns the account's own login first, then the extra ones.
func (a Account) AllLogins() []Login {
	return append([]Login{{Name: a.Name, PasswordHash: a.PasswordHash}}, a.Logins...)
}

// DefaultMaxFetchSize is the largest message fetched unless max_fetch_size
// says otherwise: providers cap attachments near 25 MB, which base64 makes
// about 34 MB; a return is tens of kilobytes.
const DefaultMaxFetchSize = 40 << 20

// Provider is how to reach the practitioner's mail provider.
type Provider struct {
	// Provider names a preset (Presets: "laposte.net", "orange.fr"…) that
	// fills in smtp, imap, username and folders where they are left empty.
	Provider string   `toml:"provider"`
	SMTP     Upstream `toml:"smtp"`
	// IMAP is where returns and acknowledgements are collected; empty: no polling.
	IMAP         Upstream `toml:"imap"`
	Folders      []string `toml:"folders"`       // default INBOX; acknowledgements sometimes land in spam
	Poll         Schedule `toml:"poll"`          // default @every 2m
	KeepUpstream Keep     `toml:"keep_upstream"` // default forever
	// MaxFetchSize: a message larger than this (its RFC822.SIZE) is left at
	// the provider and reported, never fetched. Default DefaultMaxFetchSize.
	MaxFetchSize Size `toml:"max_fetch_size"`
	// Username empty: no AUTH, for a smarthost that knows the practice by
	// its address (an ISP's port-25 relay).
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	CAFile       string `toml:"ca_file"`
	// given is a password not yet written anywhere (WithPassword).
	given string
	// Insecure allows plaintext SMTP and AUTH upstream. Tests and the demo use it;
	// never set it for a real provider.
	Insecure bool `toml:"insecure"`
}

// Password reads the upstream password: from the systemd credential that
// `sesam-relay secret set` sealed it in, which systemd decrypts for the
// service at its start ($CREDENTIALS_DIRECTORY), else from password_file,
// on every call, so that a changed file takes effect at the next
// connection (a changed credential, at the next start of the service).
func (p Provider) Password() (string, error) {
	if p.given != "" {
		return p.given, nil
	}
	var b []byte
	var err error
	where := p.PasswordFile
	cred := p.PasswordFile + ".cred"
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" && fileExists(filepath.Join(dir, PasswordCredential(p.PasswordFile))) {
		b, err = os.ReadFile(filepath.Join(dir, PasswordCredential(p.PasswordFile)))
		where = "the credential " + PasswordCredential(p.PasswordFile)
	} else if fileExists(cred) {
		// The CLI (check, as root) outside the service: systemd-creds
		// decrypts what systemd gives the service, which is what the
		// service uses, even with a stale clear copy beside it.
		b, err = exec.Command("systemd-creds", "decrypt", "--name="+PasswordCredential(p.PasswordFile), cred, "-").Output()
		if err != nil {
			return "", fmt.Errorf("the provider password is sealed in %s, which systemd decrypts for the service only: run this as root (sudo) to read it", cred)
		}
		where = cred
	} else {
		b, err = os.ReadFile(p.PasswordFile)
	}
	if err != nil {
		return "", fmt.Errorf("reading the upstream password: %w (password_file must be readable by the service user, or sealed with `sesam-relay secret set`)", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(pw) == "" {
		// Sent, an empty password is refused by the provider, and the
		// relay would pause as if the provider had refused a real one.
		return "", fmt.Errorf("the upstream password in %s is empty: give the provider password with `sesam-relay secret set`", where)
	}
	return pw, nil
}

// WithPassword is the provider with a password held in memory, not yet
// written: `account add` and `account passwd` try it before keeping it.
func (p Provider) WithPassword(pw string) Provider { p.given = pw; return p }

// PasswordCredential names the systemd credential that holds the password
// of password_file path: its file name and a hash of its whole path, so
// that two accounts never share one by chance.
func PasswordCredential(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	sum := sha256.Sum256([]byte(path))
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, filepath.Base(path))
	return "password-" + name + "-" + hex.EncodeToString(sum[:4])
}

// PasswordSealed says whether an account's provider password is kept as a
// systemd credential: given to this process by systemd, or sealed beside
// password_file (the CLI's view; systemd gives it to the service only).
func (p Provider) PasswordSealed() bool {
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, PasswordCredential(p.PasswordFile))); err == nil {
			return true
		}
	}
	return fileExists(p.PasswordFile + ".cred")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	h, _ := os.Hostname()
	return Config{
		Hostname:       h,
		StateDir:       "/var/lib/sesam-relay",
		MaxMessageSize: 25 << 20,
		MinFreeSpace:   64 << 20,
		Retention:      Duration(90 * 24 * time.Hour),
		Backup:         Backup{Keep: 7},
		Metrics:        Metrics{Allow: []Prefix{{netip.MustParsePrefix("127.0.0.0/8")}, {netip.MustParsePrefix("::1/128")}}},
		Listen: Listen{
			Control:                  "/run/sesam-relay/control.sock",
			MaxConnections:           64,
			MaxConnectionsPerAddress: 10,
		},
		TLS: TLS{MinVersion: TLSVersion(tls.VersionTLS12)},
		Delivery: Delivery{
			Lifetime:    Duration(72 * time.Hour),
			DelayNotice: Duration(4 * time.Hour),
			FirstRetry:  Duration(30 * time.Second),
			MaxRetry:    Duration(time.Hour),
			AuthPause:   Duration(time.Hour),
			Timeout:     Duration(2 * time.Minute),
		},
		LocalAuth: LocalAuth{
			MaxFailures:   5,
			FailureWindow: Duration(15 * time.Minute),
			FailureDelay:  Duration(time.Second),
		},
		Sesam: Sesam{GuardClearLots: true, AckDelay: Duration(48 * time.Hour), UndeliveredWarning: Duration(24 * time.Hour),
			Count: "working-days", StampZone: "Europe/Paris", DailySummary: "18:00"},
	}
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w (give another file with --config)", err)
	}
	c, err := Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.StoreKey == "" {
		c.StoreKey = filepath.Join("keys", "store-key")
	}
	if c.Backup.RecoveryKey == "" {
		c.Backup.RecoveryKey = filepath.Join("keys", "recovery.pub")
	}
	if c.AccountsDir == "" {
		c.AccountsDir = "accounts.d"
	}
	for _, p := range []*string{&c.StoreKey, &c.Backup.RecoveryKey, &c.AccountsDir} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(path), *p)
		}
	}
	if err := c.loadAccountsDir(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes and validates a config held in memory.
func Parse(src []byte) (*Config, error) {
	c := Defaults()
	md, err := toml.Decode(string(src), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, fmt.Errorf("line %d: unknown key %q (check its spelling and its [section])", lineOf(src, und[0]), k)
	}
	if err := c.validate(md); err != nil {
		return nil, err
	}
	return &c, nil
}

// lineOf finds the line of an undecoded key, which the decoder does not report:
// the first "name =" line after the key's table header.
func lineOf(src []byte, k toml.Key) int {
	last := k[len(k)-1]
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(nil, 1<<20)
	n, first := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		name, _, ok := strings.Cut(line, "=")
		if !ok && strings.HasPrefix(line, "[") && strings.Trim(line, "[] ") == last {
			return n // an unknown table
		}
		if ok && strings.Trim(strings.TrimSpace(name), `"'`) == last && first == 0 {
			first = n
		}
	}
	return first
}

func (c *Config) validate(md toml.MetaData) error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if c.StateDir == "" {
		bad("state_dir is empty: name the folder that holds the queue (e.g. /var/lib/sesam-relay)")
	}
	if c.Hostname == "" {
		bad("hostname is empty: name this relay (e.g. relais.cabinet.lan)")
	}
	if c.Retention < Duration(24*time.Hour) {
		bad("retention must be at least 1d (practitioners must keep FSE records 90 days)")
	}
	if len(c.Listen.SMTP)+len(c.Listen.SMTPS) == 0 {
		bad("[listen] has no smtp or smtps address: the billing software could not submit mail")
	}
	if len(c.Listen.Allow) == 0 {
		bad("[listen] allow is empty: every client would be refused (list the practice networks, e.g. 192.168.0.0/16)")
	}
	if len(c.Metrics.Listen) > 0 && len(c.Metrics.Allow) == 0 {
		bad("[metrics] allow is empty: every scrape would be refused (list the monitoring server, e.g. \"192.168.1.5\")")
	}
	if c.Listen.Control == "" {
		bad("[listen] control is empty: name the control socket (e.g. /run/sesam-relay/control.sock)")
	}
	if c.Listen.MaxConnections < 1 || c.Listen.MaxConnectionsPerAddress < 1 || c.Listen.MaxConnectionsPerAddress > c.Listen.MaxConnections {
		bad("[listen] max_connections and max_connections_per_address must be at least 1, and the second at most the first (defaults 64 and 10)")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("[tls] needs both cert_file and key_file, or neither (a self-signed certificate is then made)")
	}
	if c.MaxMessageSize < 1024 {
		bad("max_message_size %d is too small", c.MaxMessageSize)
	}
	d := c.Delivery
	if d.FirstRetry <= 0 || d.MaxRetry < d.FirstRetry {
		bad("[delivery] first_retry must be above zero and max_retry at least first_retry")
	}
	if d.Lifetime <= 0 || d.Timeout <= 0 || d.AuthPause <= 0 {
		bad("[delivery] lifetime, timeout and auth_pause must be above zero")
	}
	if c.LocalAuth.MaxFailures < 1 {
		bad("[local_auth] max_failures must be at least 1")
	}
	// No account is valid: the package installs a config without one, and
	// the relay must start and say so rather than fail (see `status`).
	for i := range c.Accounts {
		c.Accounts[i].src = fmt.Sprintf("[[account]] #%d (%s)", i+1, c.Accounts[i].Name)
		c.Accounts[i].notifySet = notifyWritten(md, i) // md.IsDefined is false inside an array of tables
	}
	errs = append(errs, validateAccounts(c.Accounts)...)
	if c.Sesam.AckDelay <= 0 || c.Sesam.UndeliveredWarning <= 0 {
		bad("[sesam] ack_delay and undelivered_warning must be above zero")
	}
	if c.Sesam.Count != "working-days" && c.Sesam.Count != "calendar" {
		bad("[sesam] count = %q: write \"working-days\" or \"calendar\"", c.Sesam.Count)
	}
	for _, h := range c.Sesam.Holidays {
		if _, err := time.Parse("2006-01-02", h); err != nil {
			bad("[sesam] holidays: %q is not a date (write 2026-12-24)", h)
		}
	}
	if _, err := time.LoadLocation(c.Sesam.StampZone); err != nil || c.Sesam.StampZone == "" {
		bad("[sesam] stamp_zone = %q is not a time zone (e.g. Europe/Paris, Indian/Reunion)", c.Sesam.StampZone)
	}
	if _, ok := c.Sesam.SummaryAt(); !ok && c.Sesam.DailySummary != "off" {
		bad("[sesam] daily_summary = %q: write a time of day such as \"18:00\", or \"off\"", c.Sesam.DailySummary)
	}
	for i, r := range c.Sesam.Rules {
		if r.Field != "subject" && r.Field != "from" && r.Field != "content-description" {
			bad("[[sesam.rule]] #%d: field %q is not subject, from or content-description", i+1, r.Field)
		}
		if r.Pattern.Regexp == nil {
			bad("[[sesam.rule]] #%d: pattern is missing", i+1)
		}
		if !validClass(r.Class) {
			bad("[[sesam.rule]] #%d: class %q is not one of %s", i+1, r.Class, strings.Join(classNames, ", "))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	for i := range c.Accounts {
		c.Accounts[i].fill()
	}
	return nil
}

// Login returns the account a local login belongs to, or nil.
func (c *Config) Login(name string) *Account {
	for i := range c.Accounts {
		for _, l := range c.Accounts[i].AllLogins() {
			if l.Name == name {
				return &c.Accounts[i]
			}
		}
	}
	return nil
}

// Account returns the account with that local login, or nil.
func (c *Config) Account(name string) *Account {
	for i := range c.Accounts {
		if c.Accounts[i].Name == name {
			return &c.Accounts[i]
		}
	}
	return nil
}

// notifyWritten says whether the i-th [[account]] has a notify key: the
// decoder's keys do not say which table of an array they come from, so
// the keys are counted in order.
func notifyWritten(md toml.MetaData, i int) bool {
	n := -1
	for _, k := range md.Keys() {
		if len(k) == 1 && k[0] == "account" {
			n++
		}
		if n == i && len(k) == 2 && k[0] == "account" && k[1] == "notify" {
			return true
		}
	}
	return false
}

// SummaryAt is the daily summary's time of day, if there is one.
func (s Sesam) SummaryAt() (time.Duration, bool) {
	t, err := time.Parse("15:04", s.DailySummary)
	if err != nil {
		return 0, false
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, true
}

// Zone is the lot stamps' time zone.
func (s Sesam) Zone() *time.Location {
	if l, ok := zones.Load(s.StampZone); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(s.StampZone)
	if err != nil {
		return nil
	}
	zones.Store(s.StampZone, l)
	return l
}

// zones keeps each zone read once: reading it parses a file of tzdata.
var zones sync.Map
