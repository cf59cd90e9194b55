package daemon

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"strings"

	"github.com/sesam-relay/sesam-relay/relay/config"
)

// Init prepares state_dir before the first start: the store and the
// self-signed certificate, if missing; it prints the certificate's
// fingerprint, for the billing software's first TLS connection. The
// package's postinst runs it as the service user, so the files are the
// service's.
func Init(cfg *config.Config, w io.Writer) error {
	st, src, err := openStore(cfg, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	tc, err := LoadTLS(cfg, st)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		return fmt.Errorf("reading the certificate: %w", err)
	}
	sum := sha256.Sum256(leaf.Raw)
	fmt.Fprintf(w, "state_dir %s ready; TLS certificate for %s, valid until %s\nSHA-256 fingerprint %X\n",
		cfg.StateDir, strings.Join(leaf.DNSNames, ", "), leaf.NotAfter.Format("2006-01-02"), sum)
	fmt.Fprintf(w, "bodies are encrypted to the store key in %s\n", src)
	return nil
}
