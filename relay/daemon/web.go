package daemon

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/web"
)

// webServer is the practice's page over the relay's certificate, behind
// the clients' allowlist, connection caps and login throttle.
func (d *daemon) webServer(cfg *config.Config, tlsConf *tls.Config, throttle *auth.Throttle) (*http.Server, auth.Policy) {
	hashes, accountOf := map[string]string{}, map[string]string{}
	for _, a := range cfg.Accounts {
		for _, l := range a.AllLogins() {
			hashes[l.Name], accountOf[l.Name] = l.PasswordHash, a.Name
		}
	}
	allow := make(auth.Allowlist, len(cfg.Listen.Allow))
	for i, p := range cfg.Listen.Allow {
		allow[i] = p.Prefix
	}
	page := web.New(web.Options{Logins: auth.NewChecker(hashes), AccountOf: accountOf, Throttle: throttle,
		Handler: d.handler.Load, Log: d.log, MaxImport: 4 * int64(cfg.MaxMessageSize)})
	conf := tlsConf.Clone()
	conf.NextProtos = []string{"h2", "http/1.1"}
	srv := &http.Server{
		Handler: page, TLSConfig: conf,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute,
		IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	return srv, auth.Policy{Allow: allow, Conns: d.conns, Budget: auth.Budget{Session: 30 * time.Minute}}
}
