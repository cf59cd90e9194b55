package upstream_test

import (
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/upstream"
)

func TestBackoffStartsWithinAMinuteAndIsCapped(t *testing.T) {
	d := config.Defaults().Delivery
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		b := upstream.Backoff(d, 1)
		if b < 24*time.Second || b > 36*time.Second {
			t.Fatalf("first retry %v, want 30s ±20%%", b)
		}
		seen[b] = true
		if b := upstream.Backoff(d, 30); b > 72*time.Minute || b < 48*time.Minute {
			t.Fatalf("30th retry %v, want about the 1h cap", b)
		}
	}
	if len(seen) < 100 {
		t.Fatal("no jitter")
	}
	if upstream.Backoff(d, 3) < 2*d.FirstRetry.D() {
		t.Fatal("not exponential")
	}
}
