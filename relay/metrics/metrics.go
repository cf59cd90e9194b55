// Package metrics serves the relay's state to Prometheus: GET /metrics in
// OpenMetrics, no login, on its own listener and allowlist ([metrics]).
// Every value is read at scrape time from what `sesam-relay status` and
// `sesam-relay lots` read (control.Handler), so the page, the CLI and the
// monitoring never disagree; only the delivery counters live here. A
// scrape that cannot read the store fails (HTTP 500): Prometheus then
// sees the relay down, never a reassuring zero.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// LotWindow is how far back the lot gauges count (the ledger of the
// last two months: what can still be late or need a look).
const LotWindow = 60 * 24 * time.Hour

// Results are the delivery outcomes counted.
var Results = []string{"sent", "deferred", "bounced", "uncertain"}

// Deliveries counts delivery attempts by account and result, since start.
type Deliveries struct{ v *prometheus.CounterVec }

// NewDeliveries makes the counters (once per process: they outlive reloads).
func NewDeliveries() *Deliveries {
	return &Deliveries{prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sesam_relay_delivery_attempts_total",
		Help: "Delivery attempts to the provider since the relay started, by account and result (sent, deferred, bounced, uncertain: may have left, held).",
	}, []string{"account", "result"})}
}

// Init shows an account's counters at 0 before its first attempt.
func (d *Deliveries) Init(account string) {
	for _, r := range Results {
		d.v.WithLabelValues(account, r)
	}
}

// Count adds one attempt; a nil Deliveries counts nothing.
func (d *Deliveries) Count(account, result string) {
	if d != nil {
		d.v.WithLabelValues(account, result).Inc()
	}
}

// Source is what a scrape reads.
type Source struct {
	Handler    func() *control.Handler // the running config's
	Waiting    func() (map[string]store.Waiting, error)
	Deliveries *Deliveries
	Version    string
	Log        *slog.Logger // where a failed scrape is said
}

// Handler serves /metrics from src.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{src: src})
	if src.Deliveries != nil {
		reg.MustRegister(src.Deliveries.v)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.HTTPErrorOnError,
		ErrorLog: slog.NewLogLogger(src.Log.Handler(), slog.LevelWarn)}))
	return mux
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("sesam_relay_"+name, help, labels, nil)
}

var (
	buildInfo  = desc("build_info", "The relay's version; always 1.", "version", "goversion")
	queue      = desc("queue_messages", "Mail waiting in the queue, by account and state (queued, deferred, sending, held).", "account", "state")
	oldest     = desc("queue_oldest_waiting_seconds", "Age of the oldest mail not yet gone, by account; 0 when none waits.", "account")
	uncertain  = desc("queue_uncertain_messages", "Mail held because it may have left (the relay never sends it again by itself), by account.", "account")
	fetched    = desc("fetched_messages_total", "Messages collected from the provider by IMAP, by account.", "account")
	lastSent   = desc("last_delivery_success_timestamp_seconds", "When the provider last took a mail, by account; 0: never.", "account")
	lastPoll   = desc("last_poll_success_timestamp_seconds", "When collection from the provider last worked, by account; 0: never.", "account")
	upState    = desc("upstream_state", "The provider's state as the relay sees it, by account, link (smtp, imap) and state (ok, unreachable, credentials_refused, access_closed, local); 1 for the current one.", "account", "link", "state")
	failing    = desc("upstream_failing_seconds", "How long the link to the provider has been failing, by account and link; 0 while it works.", "account", "link")
	lots       = desc("lots", "Lots of the last 60 days, by account and state (the lot states of `sesam-relay lots`).", "account", "state")
	late       = desc("lots_late", "Lots of the last 60 days whose delay ran out, by account and delay (acknowledgement: sent, no ARL after the delay; delivery: not gone after the delay).", "account", "delay")
	lastBackup = desc("last_backup_timestamp_seconds", "When the last good backup was made; 0: never.")
	freeBytes  = desc("state_free_bytes", "Free space where the store lives, in bytes.")
	fault      = desc("store_fault", "1 while the store cannot write (disk full, I/O error): nothing is accepted nor sent.")
)

// UpstreamStates are the values of upstream_state's state label.
var UpstreamStates = []string{"ok", "unreachable", "credentials_refused", "access_closed", "local"}

func upstreamState(h store.Health) string {
	if h.FailingSince.IsZero() {
		return "ok"
	}
	switch h.Failure {
	case "credentials refused":
		return "credentials_refused"
	case "access closed":
		return "access_closed"
	case "local":
		return "local"
	}
	return "unreachable"
}

type collector struct{ src Source }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfo, queue, oldest, uncertain, fetched, lastSent, lastPoll, upState, failing, lots, late, lastBackup, freeBytes, fault} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	fail := func(what string, err error) {
		ch <- prometheus.NewInvalidMetric(fault, fmt.Errorf("%s: %w", what, err))
	}
	ts := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixMilli()) / 1000
	}
	g(buildInfo, 1, c.src.Version, runtime.Version())
	h := c.src.Handler()
	st, err := h.Status()
	if err != nil {
		fail("status", err)
		return
	}
	waiting, err := c.src.Waiting()
	if err != nil {
		fail("waiting mail", err)
		return
	}
	counted, err := h.CountLots(time.Now().Add(-LotWindow))
	if err != nil {
		fail("lots", err)
		return
	}
	now := time.Now()
	for _, a := range st.Accounts {
		for _, s := range []store.State{store.Queued, store.Deferred, store.Sending, store.Held} {
			g(queue, float64(a.Counts[s]), a.Name, string(s))
		}
		w := waiting[a.Name]
		age := 0.0
		if !w.Oldest.IsZero() {
			age = now.Sub(w.Oldest).Seconds()
		}
		g(oldest, age, a.Name)
		g(uncertain, float64(w.Uncertain), a.Name)
		g(lastSent, ts(a.Health.LastSuccess), a.Name)
		links := []struct {
			name string
			h    store.Health
		}{{"smtp", a.Health}}
		if a.Fetch != nil {
			ch <- prometheus.MustNewConstMetric(fetched, prometheus.CounterValue, float64(a.Fetch.FetchedTotal), a.Name)
			g(lastPoll, ts(a.Fetch.LastSuccess), a.Name)
			links = append(links, struct {
				name string
				h    store.Health
			}{"imap", a.Fetch.Health})
		}
		for _, l := range links {
			cur := upstreamState(l.h)
			for _, s := range UpstreamStates {
				v := 0.0
				if s == cur {
					v = 1
				}
				g(upState, v, a.Name, l.name, s)
			}
			f := 0.0
			if !l.h.FailingSince.IsZero() {
				f = now.Sub(l.h.FailingSince).Seconds()
			}
			g(failing, f, a.Name, l.name)
		}
		lc := counted[a.Name]
		for _, s := range sesam.LotStates {
			g(lots, float64(lc.States[s]), a.Name, string(s))
		}
		g(late, float64(lc.NoAck), a.Name, "acknowledgement")
		g(late, float64(lc.Undelivered), a.Name, "delivery")
	}
	if st.LastBackup != nil {
		g(lastBackup, ts(st.LastBackup.At))
	} else {
		g(lastBackup, 0)
	}
	g(freeBytes, float64(st.FreeBytes))
	f := 0.0
	if st.LocalFault != nil {
		f = 1
	}
	g(fault, f)
}
