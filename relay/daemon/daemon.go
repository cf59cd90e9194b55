// Package daemon wires sesam-relay together: the store, the SMTP listeners,
// one delivery worker per account, and the control socket; it tells systemd
// when it is ready and pings its watchdog.
package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/deliver"
	"github.com/sesam-relay/sesam-relay/relay/fetch"
	"github.com/sesam-relay/sesam-relay/relay/pop3d"
	"github.com/sesam-relay/sesam-relay/relay/smtpd"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/warn"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Run serves until ctx ends, then stops cleanly: listeners first, then each
// worker after the mail in hand.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	st, err := store.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	rules := make([]sesam.Rule, len(cfg.Sesam.Rules))
	for i, r := range cfg.Sesam.Rules {
		rules[i] = sesam.Rule{Field: r.Field, Pattern: r.Pattern.Regexp, Class: sesam.Class(r.Class)}
	}
	st.SetRules(rules)
	if n, err := st.RecoverInterrupted(ctx); err != nil {
		return fmt.Errorf("recovering the queue: %w", err)
	} else if n > 0 {
		log.Warn("mail was being sent when the relay stopped: held as uncertain, not resent; see `sesam-relay queue`", "held", n)
	}
	names := make([]string, len(cfg.Accounts))
	hashes, accountOf := map[string]string{}, map[string]string{}
	for i, a := range cfg.Accounts {
		names[i] = a.Name
		for _, l := range a.AllLogins() {
			hashes[l.Name], accountOf[l.Name] = l.PasswordHash, a.Name
		}
	}
	if n, _ := st.HoldOrphans(ctx, names); n > 0 {
		log.Warn("mail of accounts no longer in the config is held", "held", n)
	}
	tlsConf, err := LoadTLS(cfg, st)
	if err != nil {
		return err
	}
	allow := make(auth.Allowlist, len(cfg.Listen.Allow))
	for i, p := range cfg.Listen.Allow {
		allow[i] = p.Prefix
	}
	la := cfg.LocalAuth
	// One checker and one throttle for SMTP and POP3: failures on either
	// count against the same address.
	logins := auth.NewChecker(hashes)
	throttle := auth.NewThrottle(la.MaxFailures, la.FailureWindow.D(), la.FailureDelay.D())
	srv := smtpd.New(smtpd.Options{
		Hostname:           cfg.Hostname,
		MaxMessageSize:     int64(cfg.MaxMessageSize),
		MinFreeSpace:       uint64(cfg.MinFreeSpace),
		AllowPlaintextAuth: cfg.Listen.AllowPlaintextAuth,
		TLS:                tlsConf,
		Logins:             logins,
		AccountOf:          accountOf,
		Throttle:           throttle,
		Allow:              allow,
		Queue:              st,
		Log:                log,
		GuardClearLots:     cfg.Sesam.GuardClearLots,
	})
	pop := pop3d.New(pop3d.Options{
		Hostname:           cfg.Hostname,
		TLS:                tlsConf,
		AllowPlaintextAuth: cfg.Listen.AllowPlaintextAuth,
		Logins:             logins,
		AccountOf:          accountOf,
		Throttle:           throttle,
		Allow:              allow,
		Store:              st,
		Log:                log,
	})

	var listeners []net.Listener
	var names2 []string
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, spec := range []struct {
		proto string
		addrs []config.HostPort
		serve func(net.Listener) error
	}{{"smtp", cfg.Listen.SMTP, srv.Serve}, {"smtps", cfg.Listen.SMTPS, srv.ServeTLS},
		{"pop3", cfg.Listen.POP3, pop.Serve}, {"pop3s", cfg.Listen.POP3S, pop.ServeTLS}} {
		for _, a := range spec.addrs {
			l, err := net.Listen("tcp", string(a))
			if err != nil {
				closeAll()
				return fmt.Errorf("listening for %s on %s: %w", spec.proto, a, err)
			}
			listeners = append(listeners, l)
			names2 = append(names2, spec.proto+"://"+l.Addr().String())
			log.Info("listening", "proto", spec.proto, "addr", l.Addr().String())
			go spec.serve(l)
		}
	}
	defer srv.Close()
	defer pop.Close()

	wctx, stopWorkers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	workers := map[string]*deliver.Worker{}
	for _, a := range cfg.Accounts {
		w := deliver.NewWorker(a, cfg.Delivery, cfg.Hostname, st, log)
		workers[a.Name] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(wctx) }()
	}

	// One loop per account: it polls at the times of its cron schedule
	// (never overlapping itself), idles in between when the server can, and
	// runs the technician's `fetch`.
	pollers := map[string]*fetch.Poller{}
	for _, a := range cfg.Accounts {
		if a.Upstream.IMAP.Addr == "" {
			continue
		}
		w := workers[a.Name]
		p := fetch.NewPoller(a, cfg.Delivery, st, log, func() bool {
			h := w.Health()
			return h.FailingSince.IsZero() && !h.LastSuccess.IsZero()
		})
		pollers[a.Name] = p
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(wctx) }()
	}

	ctl, err := control.Listen(cfg.Listen.Control)
	if err != nil {
		closeAll()
		stopWorkers()
		return err
	}
	defer ctl.Close()
	started := time.Now()
	h := &control.Handler{Store: st, Config: cfg, Live: &control.Live{Started: started, Listeners: names2,
		Health: func(a string) (store.Health, bool) {
			if w := workers[a]; w != nil {
				return w.Health(), true
			}
			return store.Health{}, false
		},
		FetchHealth: func(a string) (store.FetchHealth, bool) {
			if p := pollers[a]; p != nil {
				return p.Health(), true
			}
			return store.FetchHealth{}, false
		},
		Fetch: func(ctx context.Context, a string) (any, error) {
			p := pollers[a]
			if p == nil {
				return nil, fmt.Errorf("account %q has no imap in [account.upstream]", a)
			}
			return p.Poll(ctx)
		}}}
	go control.Serve(ctl, h)

	go purge(wctx, st, cfg.Retention.D(), log)
	wg.Add(1)
	go func() { defer wg.Done(); warn.New(cfg, st, log).Run(wctx) }()
	sd.SdNotify(false, sd.SdNotifyReady)
	log.Info("sesam-relay ready", "accounts", len(cfg.Accounts), "state_dir", cfg.StateDir, "control", cfg.Listen.Control)
	watchdog(ctx, st, log)

	log.Info("stopping: no new mail accepted; finishing deliveries in hand")
	sd.SdNotify(false, sd.SdNotifyStopping)
	closeAll()
	srv.Close()
	pop.Close()
	stopWorkers()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.Delivery.Timeout.D() + 5*time.Second):
		log.Error("a delivery did not finish in time; it will be held as uncertain at the next start")
	}
	log.Info("stopped")
	return nil
}

// purge deletes local mail and finished lots older than the retention,
// at start and then hourly.
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

// watchdog blocks until ctx ends, pinging systemd's watchdog while the
// store answers: a wedged store stops the pings and systemd restarts us.
func watchdog(ctx context.Context, st *store.Store, log *slog.Logger) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := st.Counts(); err != nil {
				log.Error("the store does not answer; not pinging the watchdog", "error", err.Error())
				continue
			}
			sd.SdNotify(false, sd.SdNotifyWatchdog)
		}
	}
}

// LoadTLS returns the local listeners' TLS settings: [tls]'s certificate,
// or the self-signed one in state_dir, made on first use.
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
	// TLS 1.0 stays possible: some billing software in practices is that old,
	// and the LAN link matters less than refusing its lots.
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10}, nil
}
