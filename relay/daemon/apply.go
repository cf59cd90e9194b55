package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/deliver"
	"github.com/sesam-relay/sesam-relay/relay/fetch"
	"github.com/sesam-relay/sesam-relay/relay/pop3d"
	"github.com/sesam-relay/sesam-relay/relay/smtpd"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/warn"
	"github.com/sesam-relay/sesam-relay/relay/web"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// apply makes cfg the running config: at start, and at each reload. What
// can fail (the TLS certificate, a new port) is tried before anything
// changes, so a refused config leaves the relay as it was. Then:
//   - the listening sockets stay open; new servers take the new connections
//     and the previous ones finish their sessions (a mail being submitted
//     gets its 250) before they go;
//   - an account whose sending or collecting settings did not change keeps
//     its worker and poller; one that changed gets new ones once the old
//     ones have finished the mail in hand. A removed account's waiting mail
//     is held, as at start.
func (d *daemon) apply(cfg *config.Config) error {
	old := d.cfg
	if old != nil {
		if cfg.StateDir != old.StateDir || cfg.Listen.Control != old.Listen.Control {
			return fmt.Errorf("state_dir and [listen] control cannot change on reload: restart the service to apply them")
		}
	}
	tlsConf, err := LoadTLS(cfg, d.st)
	if err != nil {
		return err
	}
	specs := listenSpecs(cfg)
	opened := map[string]*shared{}
	for _, s := range specs {
		if d.listeners[s.key] != nil || opened[s.key] != nil {
			continue
		}
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, o := range opened {
				o.close()
			}
			return fmt.Errorf("listening for %s on %s: %w", s.proto, s.addr, err)
		}
		opened[s.key] = share(l)
		d.log.Info("listening", "proto", s.proto, "addr", l.Addr().String())
	}
	for k, l := range opened {
		d.listeners[k] = l
	}

	rules := make([]sesam.Rule, len(cfg.Sesam.Rules))
	for i, r := range cfg.Sesam.Rules {
		rules[i] = sesam.Rule{Field: r.Field, Pattern: r.Pattern.Regexp, Class: sesam.Class(r.Class)}
	}
	d.st.Configure(store.Settings{Rules: rules, ResubmitWindow: cfg.Delivery.Lifetime.D(), MinFreeSpace: uint64(cfg.MinFreeSpace)})

	var throttle *auth.Throttle
	if old != nil && old.LocalAuth == cfg.LocalAuth {
		throttle = d.gen.throttle // failures counted so far still count
	}
	d.conns.Set(cfg.Listen.MaxConnections, cfg.Listen.MaxConnectionsPerAddress)
	gen := newGeneration(cfg, tlsConf, throttle, d.locks, d.conns, d.st, d.log)
	gen.metrics, gen.metricsPolicy = d.metricsServer(cfg, d.log)
	gen.web, gen.webPolicy = d.webServer(cfg, tlsConf, gen.throttle)
	var names []string
	for _, s := range specs {
		gen.serve(s.proto, d.listeners[s.key])
		names = append(names, s.proto+"://"+d.listeners[s.key].l.Addr().String())
	}
	if prev := d.gen; prev != nil {
		go prev.shutdown(cfg.Delivery.Timeout.D())
	}
	d.gen = gen
	for k, l := range d.listeners {
		if !hasKey(specs, k) {
			l.close()
			delete(d.listeners, k)
			d.log.Info("stopped listening", "addr", k)
		}
	}

	d.replaceAccounts(old, cfg)
	halt(d.side, time.Minute)
	d.side = []*task{
		start(func(ctx context.Context) { warn.New(cfg, d.st, d.log).Run(ctx) }),
		start(func(ctx context.Context) { purge(ctx, d.st, cfg.Retention.D(), d.log) }),
		start(func(ctx context.Context) { rebuildOnNewRules(ctx, d.st, d.log) }),
	}
	d.cfg = cfg
	for _, w := range cfg.Weaknesses() {
		d.log.Warn("weakened protection: " + w)
	}
	d.handler.Store(&control.Handler{Store: d.st, Config: cfg, Log: d.log, Live: &control.Live{
		Started: d.started, Listeners: names, Health: d.health, FetchHealth: d.fetchHealth, Fetch: d.fetch, Reload: d.askReload, Actions: d.actions, StoreKey: d.keySource, Fingerprint: Fingerprint(tlsConf), Recent: d.recent.List}})
	return nil
}

type listenSpec struct{ proto, addr, key string }

func listenSpecs(cfg *config.Config) []listenSpec {
	var specs []listenSpec
	for _, g := range []struct {
		proto string
		addrs []config.HostPort
	}{{"smtp", cfg.Listen.SMTP}, {"smtps", cfg.Listen.SMTPS}, {"pop3", cfg.Listen.POP3}, {"pop3s", cfg.Listen.POP3S}, {"web", cfg.Listen.Web}, {"metrics", cfg.Metrics.Listen}} {
		for _, a := range g.addrs {
			specs = append(specs, listenSpec{g.proto, string(a), g.proto + "://" + string(a)})
		}
	}
	return specs
}

func hasKey(specs []listenSpec, key string) bool {
	for _, s := range specs {
		if s.key == key {
			return true
		}
	}
	return false
}

// generation is the servers of one config, on views of the shared sockets.
type generation struct {
	smtp          *smtpd.Server
	pop           *pop3d.Server
	throttle      *auth.Throttle
	metrics       *http.Server
	metricsPolicy auth.Policy
	web           *http.Server
	webPolicy     auth.Policy
	log           *slog.Logger
}

func newGeneration(cfg *config.Config, tlsConf *tls.Config, throttle *auth.Throttle, locks *pop3d.Locks, conns *auth.ConnLimit, st *store.Store, log *slog.Logger) *generation {
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
	la := cfg.LocalAuth
	if throttle == nil {
		throttle = auth.NewThrottle(la.MaxFailures, la.FailureWindow.D(), la.FailureDelay.D())
	}
	// One checker and one throttle for SMTP and POP3: failures on either
	// count against the same address. The connection caps (conns) outlive
	// the generation: old and new sessions count together.
	logins := auth.NewChecker(hashes)
	return &generation{
		throttle: throttle, log: log,
		smtp: smtpd.New(smtpd.Options{
			Hostname: cfg.Hostname, MaxMessageSize: int64(cfg.MaxMessageSize), MinFreeSpace: uint64(cfg.MinFreeSpace),
			AllowPlaintextAuth: cfg.Listen.AllowPlaintextAuth.Prefixes(), TLS: tlsConf, Logins: logins, AccountOf: accountOf,
			Throttle: throttle, Allow: allow, Conns: conns, Queue: st, Log: log, GuardClearLots: cfg.Sesam.GuardClearLots,
		}),
		pop: pop3d.New(pop3d.Options{
			Hostname: cfg.Hostname, TLS: tlsConf, AllowPlaintextAuth: cfg.Listen.AllowPlaintextAuth.Prefixes(), Logins: logins,
			AccountOf: accountOf, Throttle: throttle, Allow: allow, Conns: conns, Store: st, Log: log, Locks: locks,
		}),
	}
}

func (g *generation) serve(proto string, s *shared) {
	switch proto {
	case "metrics":
		go serveMetrics(g.metrics, s.view(), g.metricsPolicy, g.log)
		return
	case "web":
		go g.web.Serve(tls.NewListener(web.PlainToHTTPS(auth.Guard(s.view(), g.webPolicy, nil, g.log)), g.web.TLSConfig))
		return
	}
	serve := map[string]func(net.Listener) error{"smtp": g.smtp.Serve, "smtps": g.smtp.ServeTLS, "pop3": g.pop.Serve, "pop3s": g.pop.ServeTLS}[proto]
	go serve(s.view())
}

// shutdown lets the sessions under way end by themselves, at most limit;
// each server's Shutdown then drops the rest.
func (g *generation) shutdown(limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	done := make(chan struct{})
	go func() { g.pop.Shutdown(ctx); close(done) }()
	go g.metrics.Shutdown(ctx)
	go g.web.Shutdown(ctx)
	g.smtp.Shutdown(ctx)
	<-done // ctx must outlive both
}

func (g *generation) close() {
	g.smtp.Close()
	g.pop.Close()
	g.metrics.Close()
	g.web.Close()
}

type worker struct {
	*deliver.Worker
	acct config.Account
	task *task
}

type poller struct {
	*fetch.Poller
	acct config.Account
	task *task
}

// replaceAccounts keeps the workers and pollers whose settings are the
// same, and replaces the others after they finish the mail in hand.
func (d *daemon) replaceAccounts(old, cfg *config.Config) {
	sameAll := old != nil && old.Hostname == cfg.Hostname && old.Delivery == cfg.Delivery
	sending := func(a, b config.Account) bool {
		return sameAll && a.Address == b.Address && reflect.DeepEqual(a.Upstream, b.Upstream)
	}
	want := map[string]config.Account{}
	var names []string
	for _, a := range cfg.Accounts {
		want[a.Name] = a
		names = append(names, a.Name)
	}
	d.mu.Lock()
	var stopping []*task
	for name, w := range d.workers {
		if a, ok := want[name]; !ok || !sending(w.acct, a) {
			stopping = append(stopping, w.task)
			delete(d.workers, name)
		}
	}
	for name, p := range d.pollers {
		if a, ok := want[name]; !ok || !sending(p.acct, a) || a.Upstream.IMAP.Addr == "" {
			stopping = append(stopping, p.task)
			delete(d.pollers, name)
		}
	}
	d.mu.Unlock()
	if !halt(stopping, cfg.Delivery.Timeout.D()+5*time.Second) {
		d.log.Error("a delivery did not finish in time; it will be held as uncertain at the next start")
	}
	if n, _ := d.st.HoldOrphans(context.Background(), names); n > 0 {
		d.log.Warn("mail of accounts no longer in the config is held", "held", n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range cfg.Accounts {
		if d.workers[a.Name] == nil {
			d.deliveries.Init(a.Name)
			w := deliver.NewWorker(a, cfg.Delivery, cfg.Hostname, cfg.Sesam.Contact, counted{d.st, a.Name, d.deliveries}, d.log)
			d.workers[a.Name] = &worker{Worker: w, acct: a, task: start(w.Run)}
		}
		// One loop per account: it polls at the times of its cron schedule
		// (never overlapping itself), idles in between when the server
		// can, and runs the technician's `fetch`.
		if a.Upstream.IMAP.Addr != "" && d.pollers[a.Name] == nil {
			p := fetch.NewPoller(a, cfg.Delivery, d.st, d.log)
			d.pollers[a.Name] = &poller{Poller: p, acct: a, task: start(p.Run)}
		}
	}
}

func (d *daemon) health(account string) (store.Health, bool) {
	d.mu.Lock()
	w := d.workers[account]
	d.mu.Unlock()
	if w == nil {
		return store.Health{}, false
	}
	return w.Health(), true
}

func (d *daemon) fetchHealth(account string) (store.FetchHealth, bool) {
	d.mu.Lock()
	p := d.pollers[account]
	d.mu.Unlock()
	if p == nil {
		return store.FetchHealth{}, false
	}
	return p.Health(), true
}

func (d *daemon) fetch(ctx context.Context, account string) (any, error) {
	d.mu.Lock()
	p := d.pollers[account]
	d.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("account %q has no imap in [account.upstream]", account)
	}
	return p.PollNow(ctx)
}

// purge deletes local mail and finished lots older than the retention,
// at start and then hourly.
// rebuildOnNewRules rebuilds the lot ledger once when the rules that built
// it changed (an upgrade, a new [[sesam.rule]]), in the background.
func rebuildOnNewRules(ctx context.Context, st *store.Store, log *slog.Logger) {
	switch rebuilt, lots, matched, err := st.RebuildIfRulesChanged(ctx); {
	case err != nil:
		log.Error("rebuilding the lot ledger under the new rules failed; run `sesam-relay lots --rebuild`", "error", err.Error())
	case rebuilt:
		log.Info("lot ledger rebuilt under the new rules", "lots", lots, "returns_matched", matched)
	}
}

func purge(ctx context.Context, st *store.Store, retention time.Duration, log *slog.Logger) {
	for {
		if n, err := st.Purge(context.Background(), time.Now().Add(-retention)); err != nil {
			log.Error("purging old mail failed", "error", err.Error())
		} else if n > 0 {
			log.Info("old mail purged after the retention period", "messages", n, "retention", retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// LoadTLS returns the local listeners' TLS settings: [tls]'s certificate,
// or the self-signed one in state_dir, made on first use.
// Fingerprint is the SHA-256 fingerprint of the listeners' certificate,
// as billing software shows it on its first TLS connection: "AB:CD:…".
func Fingerprint(tc *tls.Config) string {
	if len(tc.Certificates) == 0 || len(tc.Certificates[0].Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(tc.Certificates[0].Certificate[0])
	var parts []string
	for _, b := range sum {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	return strings.Join(parts, ":")
}

func LoadTLS(cfg *config.Config, st *store.Store) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if cfg.TLS.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading [tls] cert_file/key_file: %w", err)
		}
	} else {
		pemBytes, err := st.LoadOrCreate("tls/selfsigned.pem", func() ([]byte, error) { return selfSigned(cfg.Hostname) })
		if err != nil {
			return nil, fmt.Errorf("making the self-signed certificate: %w", err)
		}
		cert, err = tls.X509KeyPair(pemBytes, pemBytes)
		if err != nil {
			return nil, fmt.Errorf("reading the self-signed certificate in state_dir (delete tls/selfsigned.pem to make a new one): %w", err)
		}
	}
	// TLS 1.2 and later unless [tls] min_version opts in to an older version
	// for a billing program that cannot do better.
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: uint16(cfg.TLS.MinVersion)}, nil
}
