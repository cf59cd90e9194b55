package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// The types below validate themselves while the TOML is decoded, so that the
// decoder's error names the key and the line of a bad value.

// Duration is a time.Duration written as "90s", "4h" or "3d".
type Duration time.Duration

// UnmarshalText accepts Go durations plus a "d" (day) suffix.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses "30s", "4h", "3d" or "1d12h". Negative values are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (write 90s, 15m, 4h or 3d)", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration (write 90s, 15m, 4h or 3d)", s)
	}
	return days + v, nil
}

// Size is a byte count written as 1048576, "512K", "25M" or "1G".
type Size int64

// UnmarshalText accepts a plain number of bytes or a K/M/G suffix (powers of 1024).
func (z *Size) UnmarshalText(b []byte) error {
	s := strings.ToUpper(strings.TrimSpace(string(b)))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size (write 26214400, 512K, 25M or 1G)", string(b))
	}
	*z = Size(n * mult)
	return nil
}

// HostPort is a listen or connect address such as "0.0.0.0:587" or "[::1]:465".
type HostPort string

// UnmarshalText checks the host:port form and the port number.
func (h *HostPort) UnmarshalText(b []byte) error {
	host, port, err := net.SplitHostPort(string(b))
	if err != nil {
		return fmt.Errorf("%q is not host:port (write 0.0.0.0:587 or [::1]:465)", string(b))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", string(b), port)
	}
	if host != "" && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: %q is not a host name or address", string(b), host)
	}
	*h = HostPort(b)
	return nil
}

// Prefix is a network allowed to connect, written "192.168.0.0/16" or a single address.
type Prefix struct{ netip.Prefix }

// UnmarshalText accepts a CIDR prefix or a bare IP address.
func (p *Prefix) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if pr, err := netip.ParsePrefix(s); err == nil {
		p.Prefix = pr.Masked()
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		p.Prefix = netip.PrefixFrom(a, a.BitLen())
		return nil
	}
	return fmt.Errorf("%q is not a network (write 192.168.0.0/16 or 10.0.0.5)", s)
}

// Address is an e-mail address such as "jean.dupont@laposte.net".
type Address string

// UnmarshalText accepts a bare address (no display name).
func (a *Address) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	m, err := mail.ParseAddress(s)
	if err != nil || m.Address != s || !strings.Contains(s, "@") {
		return fmt.Errorf("%q is not a bare e-mail address (write jean.dupont@laposte.net)", s)
	}
	*a = Address(s)
	return nil
}

// Upstream is a provider's server URL: "smtps://host:465" or
// "smtp://host:587" for sending, "imaps://host:993" or "imap://host:143" for
// collecting. The plain schemes require STARTTLS (unless insecure is set).
type Upstream struct {
	Scheme      string // smtp, smtps, imap, imaps
	ImplicitTLS bool
	Addr        string // host:port
	Host        string
}

var defaultPorts = map[string]string{"smtp": "587", "smtps": "465", "imap": "143", "imaps": "993"}

// UnmarshalText parses the URL form; the port defaults by scheme.
func (u *Upstream) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	p, err := url.Parse(s)
	if err != nil || p.Host == "" || (p.Path != "" && p.Path != "/") || p.User != nil {
		return fmt.Errorf("%q is not a server URL (write smtps://smtp.laposte.net:465 or imaps://imap.laposte.net:993)", s)
	}
	def, ok := defaultPorts[p.Scheme]
	if !ok {
		return fmt.Errorf("%q: scheme %q is not smtps, smtp, imaps or imap", s, p.Scheme)
	}
	u.Scheme, u.ImplicitTLS, u.Host = p.Scheme, strings.HasSuffix(p.Scheme, "s"), p.Hostname()
	port := p.Port()
	if port == "" {
		port = def
	}
	u.Addr = net.JoinHostPort(u.Host, port)
	return nil
}

// Proto is "smtp" or "imap", whatever the TLS mode.
func (u Upstream) Proto() string { return strings.TrimSuffix(u.Scheme, "s") }

// MarshalText gives back the URL form.
func (u Upstream) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

func (u Upstream) String() string {
	if u.Addr == "" {
		return ""
	}
	return u.Scheme + "://" + u.Addr
}

// Schedule is a poll schedule: a cron expression with optional seconds
// ("*/5 * * * *") or a descriptor ("@every 2m", "@hourly").
type Schedule struct {
	Spec     string
	Schedule cron.Schedule
}

// CronParser is the parser every schedule goes through.
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// MinPollGap is the shortest time allowed between two polls: polling a
// provider more often is what gets an account cut off.
const MinPollGap = 10 * time.Second

// UnmarshalText parses and checks the schedule: two polls closer than
// MinPollGap are refused, whatever the form ("@every 5s", "* * * * * *",
// "0,5 * * * * *").
func (s *Schedule) UnmarshalText(b []byte) error {
	spec := strings.TrimSpace(string(b))
	sch, err := CronParser.Parse(spec)
	if err != nil {
		return fmt.Errorf("%q is not a schedule (write \"@every 2m\" or \"*/5 * * * *\"): %v", spec, err)
	}
	if gap := shortestGap(sch); gap < MinPollGap {
		return fmt.Errorf("%q polls %s apart: poll at most every 10 seconds", spec, gap)
	}
	s.Spec, s.Schedule = spec, sch
	return nil
}

// shortestGap is the shortest time between two runs of a schedule, over
// its first runs. Cron fields are independent, so the seconds (and
// minutes) that come closest together do so in the first matching minute
// (and hour): a few hundred runs find them.
func shortestGap(sch cron.Schedule) time.Duration {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	shortest := time.Duration(1<<63 - 1)
	prev := sch.Next(t)
	for i := 0; i < 400 && !prev.IsZero(); i++ {
		next := sch.Next(prev)
		if next.IsZero() {
			break
		}
		shortest = min(shortest, next.Sub(prev))
		prev = next
	}
	return shortest
}

// Keep is how long mail stays upstream after its local copy is safe:
// a duration, or "forever" (never delete upstream).
type Keep struct {
	Forever bool
	For     time.Duration
}

// UnmarshalText accepts "forever" or a duration such as "30d".
func (k *Keep) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "forever" {
		*k = Keep{Forever: true}
		return nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is neither \"forever\" nor a duration such as \"30d\"", s)
	}
	*k = Keep{For: d}
	return nil
}

// Pattern is a Go regular expression, checked when the file is read.
type Pattern struct{ *regexp.Regexp }

// UnmarshalText compiles the expression.
func (p *Pattern) UnmarshalText(b []byte) error {
	re, err := regexp.Compile(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a regular expression: %v", string(b), err)
	}
	p.Regexp = re
	return nil
}

// classNames are the classes a [[sesam.rule]] may name (sesam.Classes;
// config does not import the domain package).
var classNames = []string{"arl-positive", "arl-negative", "noemie-payment", "noemie-reject", "noemie-warning", "bounce", "provider-notice", "unknown"}

func validClass(c string) bool {
	for _, n := range classNames {
		if n == c {
			return true
		}
	}
	return false
}
