package daemon

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/web"
)

// webServer is the practice's page over the relay's certificate, behind
// the clients' allowlist, connection caps and login throttle.
func (d *daemon) webServer(cfg *config.Config, tlsConf *tls.Config, throttle *auth.Throttle) (*http.Server, auth.Policy) {
	hashes, accountOf, techs := map[string]string{}, map[string]string{}, map[string]bool{}
	for _, a := range cfg.Accounts {
		for _, l := range a.AllLogins() {
			hashes[l.Name], accountOf[l.Name], techs[l.Name] = l.PasswordHash, a.Name, l.Technician
		}
	}
	allow := make(auth.Allowlist, len(cfg.Listen.Allow))
	for i, p := range cfg.Listen.Allow {
		allow[i] = p.Prefix
	}
	page := web.New(web.Options{Logins: auth.NewChecker(hashes), AccountOf: accountOf, Technicians: techs, Throttle: throttle,
		Handler: d.handler.Load, Log: d.log, MaxImport: 20 << 20, Zone: cfg.Sesam.Zone()})
	conf := tlsConf.Clone()
	conf.NextProtos = []string{"h2", "http/1.1"}
	srv := &http.Server{
		Handler: page, TLSConfig: conf,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute,
		IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
		// Panics are warnings; TLS handshakes a browser gives up (the
		// self-signed certificate) are not.
		ErrorLog: slog.NewLogLogger(handshakeQuiet{d.log.Handler()}, slog.LevelWarn),
	}
	// Its own connection caps: a browser (or a host holding connections
	// open) never takes the billing software's SMTP and POP3 slots.
	return srv, auth.Policy{Allow: allow, Conns: d.webConns, Budget: auth.Budget{Session: 10 * time.Minute}}
}

// handshakeQuiet leaves out the lines of TLS handshakes a browser gave up
// (it does not know the relay's certificate yet): noise, not warnings.
type handshakeQuiet struct{ slog.Handler }

func (h handshakeQuiet) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "TLS handshake error") {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}
