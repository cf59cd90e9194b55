package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

// The practice's mail provider, inside the booted Debian: Debian's own
// Postfix (submission with implicit TLS on port 4465, the relay holding
// 465, logins checked by Dovecot) and Dovecot (IMAPS on 993), for the
// mailbox jean.dupont@provider.test, with a certificate from a CA the box
// trusts — as a real provider's is. Postfix delivers the fund's address
// (01422@422.01.rss.fr) to a Maildir the test reads, and mail for the
// practitioner to the mailbox Dovecot serves.
const (
	providerPW   = "provider-pw"
	providerAddr = "jean.dupont@provider.test"
	fundMaildir  = "var/mail/vhosts/fund/new"
)

func installProvider(t *testing.T, c *chroot) {
	// No daemon starts in the chroot (it shares the host's network).
	os.WriteFile(c.path("usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755)
	defer os.Remove(c.path("usr/sbin/policy-rc.d"))
	c.run("sh", "-c", "echo 'postfix postfix/main_mailer_type select Local only' | debconf-set-selections; echo 'postfix postfix/mailname string provider.test' | debconf-set-selections")
	c.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "postfix", "dovecot-imapd", "ca-certificates")

	caPEM, certPEM, keyPEM := providerCerts(t)
	os.MkdirAll(c.path("etc/ssl/provider"), 0o755)
	os.WriteFile(c.path("etc/ssl/provider/cert.pem"), certPEM, 0o644)
	os.WriteFile(c.path("etc/ssl/provider/key.pem"), keyPEM, 0o600)
	os.WriteFile(c.path("usr/local/share/ca-certificates/test-provider-ca.crt"), caPEM, 0o644)
	c.run("update-ca-certificates")
	hosts := string(mustRead(t, c.path("etc/hosts")))
	os.WriteFile(c.path("etc/hosts"), []byte(hosts+"127.0.0.1 provider.test\n"), 0o644)

	c.run("adduser", "--system", "--group", "--no-create-home", "vmail")
	c.run("install", "-d", "-o", "vmail", "-g", "vmail", "-m", "0770", "/var/mail/vhosts")
	uid := strings.TrimSpace(c.run("id", "-u", "vmail"))
	gid := strings.TrimSpace(c.run("id", "-g", "vmail"))

	os.WriteFile(c.path("etc/dovecot/provider-users"), []byte(providerAddr+":{PLAIN}"+providerPW+"\n"), 0o644)
	os.WriteFile(c.path("etc/dovecot/local.conf"), []byte(`protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = </etc/ssl/provider/cert.pem
ssl_key = </etc/ssl/provider/key.pem
auth_mechanisms = plain login
mail_location = maildir:/var/mail/vhosts/%u
first_valid_uid = 100
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u /etc/dovecot/provider-users
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=/var/mail/vhosts/%u
}
service imap-login {
  inet_listener imap {
    port = 0
  }
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
`), 0o644)

	c.run("postconf", "-e",
		"myhostname=provider.test",
		"mydestination=localhost",
		"inet_interfaces=loopback-only",
		"virtual_mailbox_domains=provider.test 422.01.rss.fr",
		"virtual_mailbox_base=/var/mail/vhosts",
		"virtual_mailbox_maps=inline:{"+providerAddr+"="+providerAddr+"/, 01422@422.01.rss.fr=fund/}",
		"virtual_uid_maps=static:"+uid,
		"virtual_gid_maps=static:"+gid,
		"smtpd_tls_cert_file=/etc/ssl/provider/cert.pem",
		"smtpd_tls_key_file=/etc/ssl/provider/key.pem",
		"smtpd_sasl_type=dovecot",
		"smtpd_sasl_path=private/auth",
	)
	master := string(mustRead(t, c.path("etc/postfix/master.cf")))
	os.WriteFile(c.path("etc/postfix/master.cf"), []byte(master+`4465      inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
`), 0o644)
}

// providerCerts makes a CA and the provider's certificate for
// provider.test, signed by it.
func providerCerts(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test provider CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "provider.test"}, DNSNames: []string{"provider.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
