package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
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

// Upstream is the provider's SMTP server: "smtps://host:465" (implicit TLS) or
// "smtp://host:587" (STARTTLS, which is then required).
type Upstream struct {
	ImplicitTLS bool
	Addr        string // host:port
	Host        string
}

// UnmarshalText parses the URL form; the port defaults to 465 or 587.
func (u *Upstream) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	p, err := url.Parse(s)
	if err != nil || p.Host == "" || (p.Path != "" && p.Path != "/") || p.User != nil {
		return fmt.Errorf("%q is not an upstream URL (write smtps://smtp.laposte.net:465 or smtp://host:587)", s)
	}
	switch p.Scheme {
	case "smtps":
		u.ImplicitTLS = true
	case "smtp":
		u.ImplicitTLS = false
	default:
		return fmt.Errorf("%q: scheme %q is not smtps or smtp", s, p.Scheme)
	}
	u.Host = p.Hostname()
	port := p.Port()
	if port == "" {
		port = "587"
		if u.ImplicitTLS {
			port = "465"
		}
	}
	u.Addr = net.JoinHostPort(u.Host, port)
	return nil
}

// MarshalText gives back the URL form, for `check` and the demo's generated config.
func (u Upstream) MarshalText() ([]byte, error) {
	scheme := "smtp"
	if u.ImplicitTLS {
		scheme = "smtps"
	}
	return []byte(scheme + "://" + u.Addr), nil
}

func (u Upstream) String() string { b, _ := u.MarshalText(); return string(b) }
