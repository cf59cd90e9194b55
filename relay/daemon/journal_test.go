package daemon

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/control"
)

func TestUnderTheJournalEachLineStartsWithItsPriorityAndHasNoTime(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "8:1234")
	var out bytes.Buffer
	log := NewLogger(&out).With("account", "dupont")
	log.Info("sesam-relay ready")
	log.Warn("imap poll failed")
	log.Error("config reload refused")
	log.Log(context.Background(), control.LevelNotice, "technician action")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"<6>level=INFO msg=\"sesam-relay ready\" account=dupont",
		"<4>level=WARN msg=\"imap poll failed\" account=dupont",
		"<3>level=ERROR msg=\"config reload refused\" account=dupont",
		"<5>level=NOTICE msg=\"technician action\" account=dupont"}
	if len(lines) != len(want) {
		t.Fatalf("got %q", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}
}

func TestOutsideTheJournalLinesKeepTheirTime(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	var out bytes.Buffer
	NewLogger(&out).Info("x")
	if !strings.HasPrefix(out.String(), "time=") {
		t.Fatalf("got %q", out.String())
	}
}
