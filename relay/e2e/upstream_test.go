package e2e_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/deliver"
	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/fetch"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// The one failure kind of relay/upstream, as real servers produce it: what
// the relay does next (retry, bounce, pause, wait for the provider, or fix
// this box) depends on it alone.

func provider(t *testing.T, smtpAddr, imapAddr string, pass string) config.Provider {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(pass+"\n"), 0o600)
	p := config.Provider{Username: "jean.dupont", PasswordFile: pw, Insecure: true}
	if smtpAddr != "" {
		p.SMTP.UnmarshalText([]byte("smtp://" + smtpAddr))
	}
	if imapAddr != "" {
		p.IMAP.UnmarshalText([]byte("imap://" + imapAddr))
	}
	return p
}

func kindOf(t *testing.T, what string, err error) *upstream.Error {
	t.Helper()
	var ue *upstream.Error
	if !errors.As(err, &ue) {
		t.Fatalf("%s: %v is not an *upstream.Error", what, err)
	}
	return ue
}

func TestUpstreamKindsFromDovecot(t *testing.T) {
	dv := startDovecot(t)
	if err := fetch.TryLogin(provider(t, "", dv.imap, "provider-pw"), 5*time.Second); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	e := kindOf(t, "wrong password", fetch.TryLogin(provider(t, "", dv.imap, "not the password"), 5*time.Second))
	if e.Kind != upstream.CredentialsRefused || !strings.Contains(e.Text, "credentials rejected") || e.Fail.Stage != sesam.StageLogin {
		t.Fatalf("Dovecot refusing the password: %v %q stage %v", e.Kind, e.Text, e.Fail.Stage)
	}
	if fr := sesam.ExplainSMTPFailure(e.Fail, false); !strings.Contains(fr, "identifiant ou le mot de passe") {
		t.Fatalf("French wording: %q", fr)
	}
	// A missing password file is this box's fault, found before knocking:
	// Dovecot sees no login at all.
	before := dv.logins()
	p := provider(t, "", dv.imap, "provider-pw")
	p.PasswordFile += ".missing"
	e = kindOf(t, "missing password file", fetch.TryLogin(p, 5*time.Second))
	if e.Kind != upstream.Local || !strings.Contains(e.Text, "not of the provider") {
		t.Fatalf("missing password file: %v %q", e.Kind, e.Text)
	}
	time.Sleep(200 * time.Millisecond) // Dovecot logs asynchronously
	if n := dv.logins(); n != before {
		t.Fatalf("the provider was contacted for a local fault: %d logins, %d before", n, before)
	}
}

func TestUpstreamKindsFromGoSMTP(t *testing.T) {
	prov := newProvider(t)
	p := provider(t, prov.Addr(), "", "provider-pw")
	if err := deliver.TryLogin(p, "relais.test", 5*time.Second); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	prov.SetMode(demo.AuthFail) // 535 5.7.8
	if e := kindOf(t, "535", deliver.TryLogin(p, "relais.test", 5*time.Second)); e.Kind != upstream.CredentialsRefused || !strings.Contains(e.Text, "535 5.7.8") {
		t.Fatalf("535 at AUTH: %v %q", e.Kind, e.Text)
	}
	prov.SetMode(demo.Unavailable) // 421 at the greeting
	if e := kindOf(t, "421", deliver.TryLogin(p, "relais.test", 5*time.Second)); e.Kind != upstream.Temporary || !strings.Contains(e.Text, "421") {
		t.Fatalf("421 at the greeting: %v %q", e.Kind, e.Text)
	}
	// Replies to a mail, from go-smtp's real client and server: 550 to
	// RCPT is for good (a bounce), 451 to the final dot is for later.
	send := func(m demo.Mode) (stage string, err error) {
		prov.SetMode(m)
		c, err := smtp.Dial(prov.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("cabinet@laposte.net", nil); err != nil {
			return "MAIL FROM", err
		}
		if err := c.Rcpt("cpam@caisse.fr", nil); err != nil {
			return "RCPT TO <cpam@caisse.fr>", err
		}
		wc, err := c.Data()
		if err != nil {
			return "DATA", err
		}
		wc.Write([]byte("Subject: x\r\n\r\nx\r\n"))
		return "the final dot", wc.Close()
	}
	stage, err := send(demo.PermFail)
	if e := deliver.Classify(stage, "smtp.test", err); e.Kind != upstream.Permanent || e.Fail.Code != 550 || e.Fail.Enhanced != "5.1.1" {
		t.Fatalf("550 at %s: %v %+v", stage, e.Kind, e.Fail)
	}
	stage, err = send(demo.TempFail)
	if e := deliver.Classify(stage, "smtp.test", err); e.Kind != upstream.Temporary || e.Fail.Code != 451 || stage != "the final dot" {
		t.Fatalf("451 at %s: %v %+v", stage, e.Kind, e.Fail)
	}
	// A missing password file: no connection at all.
	prov.SetMode(demo.Normal)
	conns, _ := prov.Stats()
	p.PasswordFile += ".missing"
	if e := kindOf(t, "missing password file", deliver.TryLogin(p, "relais.test", 5*time.Second)); e.Kind != upstream.Local {
		t.Fatalf("missing password file: %v %q", e.Kind, e.Text)
	}
	if n, _ := prov.Stats(); n != conns {
		t.Fatalf("the provider was contacted for a local fault (%d connections, %d before)", n, conns)
	}
}

func TestUpstreamKindsRefusedPortAndBadCertificate(t *testing.T) {
	closed := freeTCP(t) // nothing listens there
	e := kindOf(t, "refused SMTP port", deliver.TryLogin(provider(t, closed, "", "pw"), "relais.test", 5*time.Second))
	if e.Kind != upstream.Temporary || !e.Refused() || e.Fail.Stage != sesam.StageConnect || !strings.Contains(e.Text, "unreachable") {
		t.Fatalf("refused SMTP port: %v %q", e.Kind, e.Text)
	}
	e = kindOf(t, "refused IMAP port", fetch.TryLogin(provider(t, "", closed, "pw"), 5*time.Second))
	if e.Kind != upstream.Temporary || !e.Refused() || !strings.Contains(e.Text, "refuses connections on the IMAP port") {
		t.Fatalf("refused IMAP port (SMTP not known to work): %v %q", e.Kind, e.Text)
	}
	// A certificate no CA the relay trusts signed, on both protocols.
	_, conf := testCA(t)
	tp := tlsProvider(t, conf, true)
	p := provider(t, tp.Addr(), "", "provider-pw")
	p.Insecure = false
	p.SMTP.UnmarshalText([]byte("smtps://" + tp.Addr()))
	e = kindOf(t, "untrusted SMTP certificate", deliver.TryLogin(p, "relais.test", 5*time.Second))
	if e.Kind != upstream.Temporary || e.Fail.Cause != sesam.CauseCertificate || !strings.Contains(e.Text, "ca_file") {
		t.Fatalf("untrusted SMTP certificate: %v %q", e.Kind, e.Text)
	}
	ip, err := demo.StartIMAPTLS("127.0.0.1:0", "jean.dupont", "provider-pw", conf, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ip.Close)
	p = provider(t, "", ip.Addr(), "provider-pw")
	p.Insecure = false
	p.IMAP.UnmarshalText([]byte("imaps://" + ip.Addr()))
	e = kindOf(t, "untrusted IMAP certificate", fetch.TryLogin(p, 5*time.Second))
	if e.Kind != upstream.Temporary || e.Fail.Cause != sesam.CauseCertificate || ip.Logins() != 0 {
		t.Fatalf("untrusted IMAP certificate: %v %q, %d logins", e.Kind, e.Text, ip.Logins())
	}
}
