package upstream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
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

func TestTrackerHoldsByKind(t *testing.T) {
	opt := config.Defaults().Delivery
	now := time.Now()
	var saved []store.Health
	tr := upstream.NewTracker(store.Health{Account: "dupont", PausedUntil: now.Add(time.Hour), NextTry: now.Add(time.Hour)}, opt,
		func(h store.Health) { saved = append(saved, h) })
	if !tr.Hold().IsZero() {
		t.Fatal("a restart keeps the pause: the technician's restart is how they say 'try now'")
	}
	cases := []struct {
		kind      upstream.Kind
		min, max  time.Duration
		paused    bool
		reasonHas string
	}{
		{upstream.Temporary, 24 * time.Second, 36 * time.Second, false, "1 failure(s) in a row"},
		{upstream.CredentialsRefused, opt.AuthPause.D(), opt.AuthPause.D(), true, "paused"},
		{upstream.AccessClosed, 0, 0, false, "connection test"},
		{upstream.Local, opt.FirstRetry.D(), opt.FirstRetry.D(), false, "this box"},
	}
	for _, c := range cases {
		tr.Worked(now)
		hold := tr.Failed(&upstream.Error{Kind: c.kind, Text: "x"}, now)
		h := saved[len(saved)-1]
		if d := hold.Sub(now); d < c.min || d > c.max {
			t.Errorf("%v: hold %v, want %v..%v", c.kind, d, c.min, c.max)
		}
		if !h.PausedUntil.IsZero() != c.paused || h.Failure != c.kind.String() || !strings.Contains(h.NextReason, c.reasonHas) || !h.FailingSince.Equal(now) {
			t.Errorf("%v: recorded %+v", c.kind, h)
		}
	}
	// A local fault does not grow into a long wait: nothing reached the provider.
	for i := 0; i < 10; i++ {
		if hold := tr.Failed(&upstream.Error{Kind: upstream.Local, Text: "x"}, now); hold.Sub(now) != opt.FirstRetry.D() {
			t.Fatalf("local fault %d in a row: hold %v", tr.Fails(), hold.Sub(now))
		}
	}
	tr.Worked(now)
	if h := saved[len(saved)-1]; !h.FailingSince.IsZero() || !h.NextTry.IsZero() || h.Failure != "" || !h.LastSuccess.Equal(now) || tr.Fails() != 0 {
		t.Fatalf("after a success: %+v", h)
	}
}
