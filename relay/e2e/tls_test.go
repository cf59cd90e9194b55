package e2e_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// testCA writes a private CA (ca.pem) and the server certificate it signed
// for 127.0.0.1 (cert.pem, key.pem) to a folder.
func testCA(t *testing.T) (caFile string, conf *tls.Config) {
	t.Helper()
	ca, err := demo.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile = filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.CertPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "cert.pem"), ca.LeafPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), ca.KeyPEM, 0o600)
	return caFile, ca.Server
}

func TestConfiguredCertificateIsWhatClientsVerify(t *testing.T) {
	caFile, _ := testCA(t)
	dir := filepath.Dir(caFile)
	prov := newProvider(t)
	r := newRelay(t, prov, opts{top: fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))})
	for _, mode := range []string{"starttls", "ssl"} {
		if res := r.python(pyArgs{"mode": mode, "cafile": caFile}); len(res) != 1 || res[0].Code != 250 {
			t.Fatalf("%s with a verifying client: %+v", mode, res)
		}
	}
	// The default self-signed certificate does not verify against that CA.
	r2 := newRelay(t, prov, opts{})
	if res := r2.python(pyArgs{"cafile": caFile}); len(res) != 1 || res[0].Code != 0 || !strings.Contains(res[0].Resp, "CERTIFICATE_VERIFY_FAILED") {
		t.Fatalf("self-signed certificate verified: %+v", res)
	}
}

func tlsProvider(t *testing.T, conf *tls.Config, implicit bool) *demo.Provider {
	p, err := demo.StartTLS("127.0.0.1:0", "jean.dupont", "provider-pw", conf, implicit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestImplicitTLSUpstreamIsVerifiedWithCAFile(t *testing.T) {
	caFile, conf := testCA(t)
	prov := tlsProvider(t, conf, true)
	r := newRelay(t, prov, opts{upstream: "smtps://" + prov.Addr(), provExtra: fmt.Sprintf("ca_file = %q", caFile)})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "delivery over TLS", func() bool { return len(prov.Mails()) == 1 })
}

func TestSTARTTLSUpstreamIsVerifiedWithCAFile(t *testing.T) {
	caFile, conf := testCA(t)
	prov := tlsProvider(t, conf, false)
	r := newRelay(t, prov, opts{upstream: "smtp://" + prov.Addr(), provExtra: fmt.Sprintf("ca_file = %q", caFile)})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "delivery after STARTTLS", func() bool { return len(prov.Mails()) == 1 })
}

func TestUntrustedUpstreamCertificateGetsNoCredentials(t *testing.T) {
	_, conf := testCA(t)
	for _, implicit := range []bool{true, false} {
		prov := tlsProvider(t, conf, implicit)
		scheme := map[bool]string{true: "smtps://", false: "smtp://"}[implicit]
		r := newRelay(t, prov, opts{upstream: scheme + prov.Addr(), provExtra: "# no ca_file: the system's CAs only"})
		submitOne(t, r)
		waitFor(t, 10*time.Second, "a deferral", func() bool { return only(t, r).State == store.Deferred })
		if m := only(t, r); !strings.Contains(m.LastError, "could not be verified") || !strings.Contains(m.LastError, "ca_file") {
			t.Fatalf("%s: last error %q", scheme, m.LastError)
		}
		if _, auths := prov.Stats(); auths != 0 || len(prov.Mails()) != 0 {
			t.Fatalf("%s: the password or the mail went to an unverified server", scheme)
		}
	}
}

func TestProviderWithoutSTARTTLSGetsNoPasswordInClear(t *testing.T) {
	prov := newProvider(t) // plain text only
	r := newRelay(t, prov, opts{upstream: "smtp://" + prov.Addr(), provExtra: "# insecure not set"})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a deferral", func() bool { return only(t, r).State == store.Deferred })
	if m := only(t, r); !strings.Contains(m.LastError, "STARTTLS") {
		t.Fatalf("last error %q", m.LastError)
	}
	if _, auths := prov.Stats(); auths != 0 {
		t.Fatal("the password went out in clear")
	}
}

func TestEachAccountDeliversThroughItsOwnProvider(t *testing.T) {
	provA, provB := newProvider(t), newProvider(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("provider-pw\n"), 0o600)
	r := newRelay(t, provA, opts{accounts: fmt.Sprintf(`[[account]]
name = "martin"
password_hash = %q
address = "cabinet.martin@orange.fr"
  [account.upstream]
  smtp = "smtp://%s"
  username = "jean.dupont"
  password_file = %q
  insecure = true
`, passwordHash, provB.Addr(), pw)})
	submitOne(t, r)
	if res := r.python(pyArgs{"user": "martin", "from": "cabinet.martin@orange.fr"}); res[0].Code != 250 {
		t.Fatalf("%+v", res)
	}
	waitFor(t, 10*time.Second, "both deliveries", func() bool { return len(provA.Mails()) == 1 && len(provB.Mails()) == 1 })
	if provA.Mails()[0].From != sender || provB.Mails()[0].From != "cabinet.martin@orange.fr" {
		t.Fatal("mail went through the wrong provider")
	}
	out, _ := r.cli("status")
	if !strings.Contains(out, "martin <cabinet.martin@orange.fr>") {
		t.Fatalf("status:\n%s", out)
	}
}
