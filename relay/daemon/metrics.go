package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/deliver"
	"github.com/sesam-relay/sesam-relay/relay/metrics"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Version is the relay's version, for /metrics (set by the command).
var Version = "dev"

// counted is one account's worker's store, counting each delivery's
// result for /metrics as the store records it.
type counted struct {
	deliver.Store
	account string
	n       *metrics.Deliveries
}

func (c counted) MarkSentAsync(id int64, reply string) *store.Pending {
	c.n.Count(c.account, "sent")
	return c.Store.MarkSentAsync(id, reply)
}

func (c counted) MarkDeferred(ctx context.Context, id int64, why string, next time.Time) error {
	err := c.Store.MarkDeferred(ctx, id, why, next)
	if err == nil {
		c.n.Count(c.account, "deferred")
	}
	return err
}

func (c counted) MarkUncertain(ctx context.Context, id int64, why string) error {
	err := c.Store.MarkUncertain(ctx, id, why)
	if err == nil {
		c.n.Count(c.account, "uncertain")
	}
	return err
}

func (c counted) MarkBounced(ctx context.Context, id int64, why string, dsn []byte) error {
	err := c.Store.MarkBounced(ctx, id, why, dsn)
	if err == nil {
		c.n.Count(c.account, "bounced")
	}
	return err
}

// metricsBudget bounds a scraper's connection: a scrape's request is a
// few hundred bytes; keep-alive connections are cut after a minute.
var metricsBudget = auth.Budget{Total: 64 << 10, Line: 8 << 10, Login: time.Minute, Session: time.Minute}

// metricsServer serves /metrics to the hosts of [metrics] allow, at most
// 8 connections (4 from one address), requests bounded.
func (d *daemon) metricsServer(cfg *config.Config, log *slog.Logger) (*http.Server, auth.Policy) {
	allow := make(auth.Allowlist, len(cfg.Metrics.Allow))
	for i, p := range cfg.Metrics.Allow {
		allow[i] = p.Prefix
	}
	srv := &http.Server{
		Handler:           metrics.Handler(metrics.Source{Handler: d.handler.Load, Waiting: d.st.WaitingByAccount, Deliveries: d.deliveries, Version: Version, Log: log}),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 20 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return srv, auth.Policy{Allow: allow, Conns: d.metricsConns, Budget: metricsBudget, AllowName: "[metrics] allow"}
}

func serveMetrics(srv *http.Server, l net.Listener, p auth.Policy, log *slog.Logger) {
	srv.Serve(auth.Guard(l, p, nil, log))
}
