// Package daemon wires sesam-relay together: the store, the SMTP and POP3
// listeners, one delivery worker and one IMAP poller per account, the
// warner and the control socket. It tells systemd when it is ready, pings
// its watchdog, and applies a new config on reload without dropping mail.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/metrics"
	"github.com/sesam-relay/sesam-relay/relay/pop3d"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Run serves until ctx ends, then stops cleanly: listeners first, then each
// worker after the mail in hand. Each value received on reload (SIGHUP)
// makes it read the config again with load and apply it; a config that
// does not load or apply is refused, and the running one kept.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, reload <-chan struct{}, load func() (*config.Config, error)) error {
	recent := &recentLog{}
	log = slog.New(recentHandler{Handler: log.Handler(), r: recent})
	st, keySource, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if n, err := st.RecoverInterrupted(ctx); err != nil {
		return fmt.Errorf("recovering the queue: %w", err)
	} else if n > 0 {
		log.Warn("mail was being sent when the relay stopped: held as uncertain, not resent; see `sesam-relay queue`", "held", n)
	}
	d := &daemon{st: st, keySource: keySource, log: log, started: time.Now(), listeners: map[string]*shared{},
		workers: map[string]*worker{}, pollers: map[string]*poller{}, locks: pop3d.NewLocks(),
		conns: auth.NewConnLimit(0, 0), metricsConns: auth.NewConnLimit(8, 4), deliveries: metrics.NewDeliveries(),
		load: load, reloads: make(chan chan error), actions: &control.Actions{}, recent: recent,
		webConns: auth.NewConnLimit(32, 8)}
	if err := d.apply(cfg); err != nil {
		d.stop()
		return err
	}
	ctl, err := control.Listen(cfg.Listen.Control)
	if err != nil {
		d.stop()
		return err
	}
	defer ctl.Close()
	go control.Serve(ctl, d.handler.Load)

	sd.SdNotify(false, sd.SdNotifyReady)
	log.Info("sesam-relay ready", "accounts", len(cfg.Accounts), "state_dir", cfg.StateDir, "control", cfg.Listen.Control)
	go watchdog(ctx, st, log)
	go sealOlderBodies(ctx, st, log)
	for ctx.Err() == nil {
		select {
		case <-reload:
			d.reload()
		case reply := <-d.reloads:
			reply <- d.reload()
		case <-ctx.Done():
		}
	}
	log.Info("stopping: no new mail accepted; finishing deliveries in hand")
	sd.SdNotify(false, sd.SdNotifyStopping)
	d.stop()
	log.Info("stopped")
	return nil
}

// daemon is the running relay. Only Run's goroutine changes it; the
// control socket reads the workers and pollers under mu.
type daemon struct {
	st        *store.Store
	keySource keys.Source // where the store key was read, for status
	log       *slog.Logger
	started   time.Time

	cfg       *config.Config // the config applied last
	listeners map[string]*shared
	gen       *generation
	locks     *pop3d.Locks
	conns     *auth.ConnLimit // open connections of every generation
	// metricsConns caps the scrapers' connections, apart from the clients'.
	metricsConns *auth.ConnLimit
	deliveries   *metrics.Deliveries // counted across reloads
	recent       *recentLog          // the last warnings, for the technician's page
	webConns     *auth.ConnLimit     // the page's connections, apart from the mail clients'
	side         []*task             // the warner and the purge, restarted at each reload
	handler      atomic.Pointer[control.Handler]
	load         func() (*config.Config, error) // reads the config file again; nil: no reload
	reloads      chan chan error                // `sesam-relay reload`, answered with the verdict
	actions      *control.Actions               // the technicians' last actions, across reloads

	mu      sync.Mutex
	workers map[string]*worker
	pollers map[string]*poller
}

// reload reads the config again and applies it, or keeps the running one,
// and says which.
func (d *daemon) reload() error {
	if d.load == nil {
		return fmt.Errorf("this relay was not started from a config file: nothing to reload")
	}
	sd.SdNotify(false, sd.SdNotifyReloading)
	defer sd.SdNotify(false, sd.SdNotifyReady)
	d.log.Info("reading the config again")
	cfg, err := d.load()
	if err == nil {
		err = d.apply(cfg)
	}
	if err != nil {
		d.log.Error("config reload refused: the running config is kept; fix the file, check it with `sesam-relay check`, and reload again", "error", err.Error())
		return fmt.Errorf("reload refused, the running config is kept: %w", err)
	}
	d.log.Info("config reloaded", "accounts", len(cfg.Accounts))
	return nil
}

// askReload is `sesam-relay reload` through the control socket: the main
// loop applies it, as it does SIGHUP, and the verdict goes back.
func (d *daemon) askReload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.reloads <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop closes the listeners and drops the sessions (a mail not yet
// answered 250 is the client's to resend), then stops every worker after
// the mail in hand, waiting at most the delivery timeout.
func (d *daemon) stop() {
	for _, l := range d.listeners {
		l.close()
	}
	if d.gen != nil {
		d.gen.close()
	}
	var tasks []*task
	d.mu.Lock()
	for _, w := range d.workers {
		tasks = append(tasks, w.task)
	}
	for _, p := range d.pollers {
		tasks = append(tasks, p.task)
	}
	d.mu.Unlock()
	tasks = append(tasks, d.side...)
	limit := 5 * time.Second
	if d.cfg != nil {
		limit += d.cfg.Delivery.Timeout.D()
	}
	if !halt(tasks, limit) {
		d.log.Error("a delivery did not finish in time; it will be held as uncertain at the next start")
	}
}

// task is a goroutine that runs until its context is cancelled.
type task struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func start(run func(ctx context.Context)) *task {
	ctx, cancel := context.WithCancel(context.Background())
	t := &task{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(t.done); run(ctx) }()
	return t
}

// halt cancels the tasks together and waits for them all, at most limit;
// it says whether they all ended.
func halt(tasks []*task, limit time.Duration) bool {
	for _, t := range tasks {
		t.cancel()
	}
	deadline := time.After(limit)
	for _, t := range tasks {
		select {
		case <-t.done:
		case <-deadline:
			return false
		}
	}
	return true
}

// watchdog pings systemd's watchdog until ctx ends, while the store
// answers: a wedged store stops the pings and systemd restarts the relay.
func watchdog(ctx context.Context, st *store.Store, log *slog.Logger) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
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
