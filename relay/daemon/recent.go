package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// recentKeep is how many warnings the technician's page shows, and
// recentLine how long each may be (a client's words can be in a line).
const recentKeep, recentLine = 50, 400

// recentLog keeps the last warnings and errors of the journal, for the
// technician's page, as one bounded line each.
type recentLog struct {
	mu    sync.Mutex
	lines []string
}

func (r *recentLog) add(s string) {
	if len(s) > recentLine {
		s = strings.ToValidUTF8(s[:recentLine], "?") + "…"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, s)
	if len(r.lines) > recentKeep {
		r.lines = append([]string(nil), r.lines[len(r.lines)-recentKeep:]...)
	}
}

// List returns the kept lines, newest first.
func (r *recentLog) List() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.lines))
	for i, l := range r.lines {
		out[len(r.lines)-1-i] = l
	}
	return out
}

// recentHandler passes every record on, and keeps the warnings.
type recentHandler struct {
	slog.Handler
	r      *recentLog
	prefix string // the attributes of With, as text
}

func (h recentHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %s", rec.Time.Local().Format(time.DateTime), rec.Level, rec.Message)
		b.WriteString(h.prefix)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
			return true
		})
		h.r.add(b.String())
	}
	return h.Handler.Handle(ctx, rec)
}

func (h recentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	p := h.prefix
	for _, a := range as {
		p += fmt.Sprintf(" %s=%q", a.Key, a.Value.String())
	}
	return recentHandler{h.Handler.WithAttrs(as), h.r, p}
}

func (h recentHandler) WithGroup(name string) slog.Handler {
	return recentHandler{h.Handler.WithGroup(name), h.r, h.prefix}
}
