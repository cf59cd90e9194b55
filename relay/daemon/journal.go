package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
)

// NewLogger returns the daemon's structured logger, writing to w. Under
// systemd (JOURNAL_STREAM set), each line starts with its syslog priority
// ("<3>" for an error, "<4>" a warning, "<6>" information) and carries no
// time of its own: the journal stamps it, and `journalctl -u sesam-relay
// -p warning` then shows only what needs a look.
func NewLogger(w io.Writer) *slog.Logger {
	if os.Getenv("JOURNAL_STREAM") == "" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(&journalHandler{w: w, mu: &sync.Mutex{}, buf: &bytes.Buffer{}})
}

type journalHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	buf   *bytes.Buffer
	attrs []slog.Attr
	group string
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	prio := "<6>"
	switch {
	case r.Level >= slog.LevelError:
		prio = "<3>"
	case r.Level >= slog.LevelWarn:
		prio = "<4>"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	h.buf.WriteString(prio)
	var inner slog.Handler = slog.NewTextHandler(h.buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	inner = inner.WithAttrs(h.attrs)
	if h.group != "" {
		inner = inner.WithGroup(h.group)
	}
	if err := inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := h.w.Write(h.buf.Bytes())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = name // the daemon's logs use no nested groups
	return &c
}
