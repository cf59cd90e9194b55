package control

import (
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// status lists what stands: an outage that a "works again" notice closed
// is not shown as current.
func TestStatusLeavesOutEndedOutages(t *testing.T) {
	ws := []store.Warning{{Kind: "recovered:100"}, {Kind: "outage:200"}, {Kind: "outage:100"}, {Kind: "summary:2026-12-04"}}
	got := current(ws)
	if len(got) != 3 || got[0].Kind != "recovered:100" || got[1].Kind != "outage:200" || got[2].Kind != "summary:2026-12-04" {
		t.Fatalf("%+v", got)
	}
}
