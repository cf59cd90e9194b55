package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// Backoff is the wait after the n-th consecutive failure towards a provider:
// exponential from first_retry, capped at max_retry, with ±20% jitter so
// that many waiting mails, and many relays, do not all knock at once.
func (d Delivery) Backoff(n int) time.Duration {
	w := d.FirstRetry.D()
	for i := 1; i < n && w < d.MaxRetry.D(); i++ {
		w *= 2
	}
	w = min(w, d.MaxRetry.D())
	return time.Duration(float64(w) * (0.8 + 0.4*rand.Float64()))
}

// TLSConfig is how to verify the provider's certificate: the system's CAs,
// plus ca_file when the provider uses a private one.
func (p Provider) TLSConfig(host string) (*tls.Config, error) {
	conf := &tls.Config{ServerName: host, MinVersion: UpstreamTLSMin}
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
