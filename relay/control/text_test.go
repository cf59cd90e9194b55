package control

import (
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Text from a mail reaches the technician's terminal: an escape sequence in
// a Subject must not rewrite the screen, and a huge one must not fill it.
func TestMailTextIsMadeSafeForTheTerminal(t *testing.T) {
	got := cut("\x1b[31mevil\x1b[0m\r\n\u009b2J", 40)
	if strings.ContainsAny(got, "\x1b\r\n\u009b") || got != "?[31mevil?[0m???2J" {
		t.Fatalf("control characters kept: %q", got)
	}
	var b strings.Builder
	row(&b, "subject", strings.Repeat("x", 8<<20))
	if b.Len() > 600 {
		t.Fatalf("an 8 MB Subject printed as %d bytes", b.Len())
	}
}

func TestQueueSaysWhatItDoesNotShow(t *testing.T) {
	var b strings.Builder
	PrintQueue(&b, QueuePage{Total: 1062, Page: 1, Pages: 3, PageSize: 500, Messages: []store.Message{{ID: 1062, State: store.Queued}}}, true, true, " --all")
	if out := b.String(); !strings.Contains(out, "page 1 of 3") || !strings.Contains(out, "1062 messages") || !strings.Contains(out, "sesam-relay queue --all --page 2") {
		t.Fatalf("%s", out)
	}
}
