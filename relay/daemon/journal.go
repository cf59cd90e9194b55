package daemon

import (
	"bytes"
	"io"
	"log/slog"
	"os"

	"github.com/sesam-relay/sesam-relay/relay/control"
)

// NewLogger returns the daemon's structured logger, writing to w. Under
// systemd (JOURNAL_STREAM set), each line starts with its syslog priority
// ("<3>" for an error, "<4>" a warning, "<6>" information) and carries no
// time of its own: the journal stamps it, and `journalctl -u sesam-relay
// -p warning` then shows only what needs a look.
func NewLogger(w io.Writer) *slog.Logger {
	if os.Getenv("JOURNAL_STREAM") == "" {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: noticeName}))
	}
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return noticeName(groups, a)
	}
	return slog.New(slog.NewTextHandler(journalWriter{w}, &slog.HandlerOptions{ReplaceAttr: noTime}))
}

// noticeName writes control.LevelNotice as "NOTICE", not "INFO+2".
func noticeName(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l == control.LevelNotice {
			return slog.String(slog.LevelKey, "NOTICE")
		}
	}
	return a
}

// journalWriter prefixes each record with its priority. The text handler
// writes a record in one Write and, with the time left out, begins it with
// its level.
type journalWriter struct{ w io.Writer }

func (j journalWriter) Write(p []byte) (int, error) {
	prio := "<6>"
	switch {
	case bytes.HasPrefix(p, []byte("level=ERROR")):
		prio = "<3>"
	case bytes.HasPrefix(p, []byte("level=WARN")):
		prio = "<4>"
	case bytes.HasPrefix(p, []byte("level=NOTICE")):
		prio = "<5>"
	}
	if _, err := j.w.Write(append([]byte(prio), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}
