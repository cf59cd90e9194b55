package store_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

func TestAFullDiskPausesDeliveryUntilAProbeWriteSucceeds(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	now := time.Now()
	store.SetNow(s, func() time.Time { return now })
	if _, local, _ := s.FailedWhileDelivering(store.ErrWrongState); local {
		t.Fatal("a message in the wrong state was taken for a local fault")
	}
	full := fmt.Errorf("committing: %w", syscall.ENOSPC)
	f, local, started := s.FailedWhileDelivering(full)
	if !local || !started || !f.DiskFull || !strings.Contains(f.Text(), "the disk is full: nothing is sent until space is freed") {
		t.Fatalf("%+v local=%v started=%v", f, local, started)
	}
	if _, _, started := s.FailedWhileDelivering(full); started {
		t.Fatal("a second failure started the fault again (it would be logged twice)")
	}
	if _, err := s.Probe(ctx); !errors.Is(err, store.ErrPaused) {
		t.Fatalf("a probe during the pause: %v", err)
	}
	now = now.Add(time.Hour) // the pause is over; the disk has room again
	if cleared, err := s.Probe(ctx); err != nil || !cleared {
		t.Fatalf("probe: cleared=%v %v", cleared, err)
	}
	if f := s.DeliveryFault(); !f.Since.IsZero() {
		t.Fatalf("the fault outlived a successful write: %+v", f)
	}
	if f, _, _ := s.FailedWhileDelivering(fmt.Errorf("read: %w", syscall.EIO)); f.DiskFull || !strings.Contains(f.Text(), "I/O error") {
		t.Fatalf("an I/O error was not told apart from a full disk: %+v", f)
	}
}
