package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"
)

// TLSVersion is the oldest TLS version the local listeners accept, written
// "1.2". Older than 1.2 is an explicit opt-in for an old billing program.
type TLSVersion uint16

var tlsVersions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// UnmarshalText accepts "1.0" to "1.3".
func (v *TLSVersion) UnmarshalText(b []byte) error {
	n, ok := tlsVersions[strings.TrimSpace(string(b))]
	if !ok {
		return fmt.Errorf("%q is not a TLS version (write \"1.2\", or \"1.0\" only for billing software that cannot do better)", string(b))
	}
	*v = TLSVersion(n)
	return nil
}

// MarshalText gives back the "1.2" form.
func (v TLSVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

func (v TLSVersion) String() string {
	for s, n := range tlsVersions {
		if n == uint16(v) {
			return s
		}
	}
	return fmt.Sprintf("0x%04x", uint16(v))
}

// Weak reports whether the version is older than TLS 1.2.
func (v TLSVersion) Weak() bool { return uint16(v) < tls.VersionTLS12 }

// UpstreamTLSMin is the oldest TLS version spoken to a provider: every
// provider offers 1.2, and the practice has no old client to wait for there.
const UpstreamTLSMin = tls.VersionTLS12

// Networks is a list of networks, written ["192.168.1.0/24", "10.0.0.5"].
// For allow_plaintext_auth, the switch of earlier versions is still read:
// true is every network (within [listen] allow), false none.
type Networks []Prefix

// UnmarshalTOML accepts a list of networks, or true / false.
func (n *Networks) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case bool:
		*n = nil
		if v {
			*n = Networks{{netip.MustParsePrefix("0.0.0.0/0")}, {netip.MustParsePrefix("::/0")}}
		}
		return nil
	case []any:
		out := make(Networks, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%v is not a network (write [\"192.168.1.0/24\", \"10.0.0.5\"])", e)
			}
			var p Prefix
			if err := p.UnmarshalText([]byte(s)); err != nil {
				return err
			}
			out = append(out, p)
		}
		*n = out
		return nil
	}
	return fmt.Errorf("%v is neither a list of networks nor true/false (write [\"192.168.1.0/24\"])", v)
}

// Prefixes returns the networks as netip prefixes.
func (n Networks) Prefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(n))
	for i, p := range n {
		out[i] = p.Prefix
	}
	return out
}

// Weaknesses lists, in the technician's words, the settings that lower the
// practice's protection: logged at each start and reload, shown by status.
func (c *Config) Weaknesses() []string {
	var out []string
	if c.TLS.MinVersion.Weak() {
		out = append(out, fmt.Sprintf("[tls] min_version = %q: the listeners accept TLS older than 1.2, which is broken; keep it only while the billing software cannot do better", c.TLS.MinVersion))
	}
	switch plain := c.Listen.AllowPlaintextAuth; {
	case plain.everywhere():
		out = append(out, "[listen] allow_plaintext_auth = true: every allowed network may log in without TLS, passwords in clear on the LAN; list only the old program's workstation")
	case len(plain) > 0:
		out = append(out, "logins without TLS are accepted from "+plain.String())
	}
	for _, a := range c.Accounts {
		if a.Upstream.Insecure {
			out = append(out, fmt.Sprintf("account %s: upstream insecure = true: the provider password and the mail travel in clear, and the provider is not verified (for tests only)", a.Name))
		}
		switch f := a.Upstream.PasswordFile; {
		case f == "":
		case !a.Upstream.PasswordSealed():
			out = append(out, fmt.Sprintf("account %s: the provider password is a plain file (%s): a copy of this disk opens the practitioner's mailbox; seal it with `sesam-relay secret set %s < %s`", a.Name, f, a.Name, f))
		case fileExists(f):
			out = append(out, fmt.Sprintf("account %s: a clear copy of the provider password (%s) lies beside its sealed credential, which is the one used: remove it (shred -u %s)", a.Name, f, f))
		}
	}
	return out
}

func (n Networks) String() string {
	s := make([]string, len(n))
	for i, p := range n {
		s[i] = p.Prefix.String()
	}
	return strings.Join(s, ", ")
}

func (n Networks) everywhere() bool {
	for _, p := range n {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}
