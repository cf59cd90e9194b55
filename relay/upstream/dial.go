package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
)

// Dial opens the TCP connection to one of a provider's servers, with a
// deadline of timeout on it, and does the TLS handshake when the server
// speaks TLS from the first byte (smtps, imaps). It returns the TLS
// settings for a STARTTLS the protocol does itself. The caller clears the
// deadline once logged in.
func Dial(p config.Provider, srv config.Upstream, timeout time.Duration) (net.Conn, *tls.Config, error) {
	conf, err := TLSConfig(p, srv.Host)
	if err != nil {
		return nil, nil, LocalError("TLS handshake", err)
	}
	conn, err := net.DialTimeout("tcp", srv.Addr, timeout)
	if err != nil {
		return nil, nil, Classify("connect", srv.Host, err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	if !srv.ImplicitTLS {
		return conn, conf, nil
	}
	tc := tls.Client(conn, conf)
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, nil, Classify("TLS handshake", srv.Host, err)
	}
	return tc, conf, nil
}

// Password reads the account's provider password before any connection:
// a missing or empty file is this box's fault, found without knocking.
func Password(p config.Provider) (string, error) {
	pass, err := p.Password()
	if err != nil {
		return "", LocalError("login", err)
	}
	return pass, nil
}

// TLSConfig is how to verify the provider's certificate: the system's CAs,
// plus ca_file when the provider uses a private one.
func TLSConfig(p config.Provider, host string) (*tls.Config, error) {
	conf := &tls.Config{ServerName: host, MinVersion: config.UpstreamTLSMin}
	if p.CAFile == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(p.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading ca_file %s: %v", p.CAFile, err)
	}
	pool, _ := x509.SystemCertPool()
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate", p.CAFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// CertificateError reports whether err is the provider's certificate failing
// verification (unknown CA, wrong name…): the cure is ca_file, not a retry.
func CertificateError(err error) bool {
	var cerr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	return errors.As(err, &cerr) || errors.As(err, &uerr) || errors.As(err, &herr)
}
