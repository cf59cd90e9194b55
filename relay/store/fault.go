package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"modernc.org/sqlite"
)

// SQLite's primary result codes for a full disk and an I/O error (the
// extended codes keep them in their low byte).
const (
	sqliteIOErr = 10
	sqliteFull  = 13
)

// Fault pauses all delivery after the store failed to write while
// delivering: on a full disk nothing may be uploaded that cannot then be
// marked "sending", and retrying at once would hammer the provider with
// bodies abandoned before the dot. It is the store's, so one fault pauses
// every account's worker.
type Fault struct {
	Since    time.Time `json:"since,omitzero"`      // zero: no fault; the store writes
	DiskFull bool      `json:"disk_full,omitempty"` // ENOSPC (SQLITE_FULL), not another I/O error
	Error    string    `json:"error,omitempty"`     // the last failure, as the store saw it
	NextTry  time.Time `json:"next_try,omitzero"`   // the next probe write; nothing is sent before
}

// Text is the fault as the log and `status` state it.
func (f Fault) Text() string {
	if f.DiskFull {
		return "the disk is full: nothing is sent until space is freed (" + f.Error + ")"
	}
	return "the state folder cannot be written (I/O error): nothing is sent until a write succeeds again — check the disk and the system log (" + f.Error + ")"
}

// faultPause is the pause after the n-th consecutive local failure: calm,
// so that a full disk costs the provider a handful of sessions at most.
func faultPause(n int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

type faultState struct {
	mu    sync.Mutex
	f     Fault
	fails int // consecutive failed writes while delivering; a sent mail resets it
}

// IsDiskFull reports whether err is the file system refusing for lack of space.
func IsDiskFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == sqliteFull
	}
	return errors.Is(err, syscall.ENOSPC)
}

// isLocal reports whether err is the disk's fault rather than a rule's
// (a message in the wrong state, a missing row).
func isLocal(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqliteFull || c == sqliteIOErr
	}
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO)
}

// DeliveryFault returns the current local fault (Since zero: none).
func (s *Store) DeliveryFault() Fault {
	s.fault.mu.Lock()
	defer s.fault.mu.Unlock()
	return s.fault.f
}

// FailedWhileDelivering records a store write that failed while delivering.
// It returns true when err is a local fault (disk full, I/O error): delivery
// then pauses for every account, and started is true for the failure that
// began the fault, so that it is logged once.
func (s *Store) FailedWhileDelivering(err error) (f Fault, local, started bool) {
	if err == nil || !isLocal(err) {
		return Fault{}, false, false
	}
	f, started = s.noteFault(err)
	return f, true, started
}

func (s *Store) noteFault(err error) (Fault, bool) {
	now := s.now()
	s.fault.mu.Lock()
	defer s.fault.mu.Unlock()
	s.fault.fails++
	started := s.fault.f.Since.IsZero()
	if started {
		s.fault.f.Since = now
	}
	s.fault.f.DiskFull, s.fault.f.Error = IsDiskFull(err), err.Error()
	s.fault.f.NextTry = now.Add(faultPause(s.fault.fails))
	return s.fault.f, started
}

// probeFloor is the free space below which delivery does not start: the
// marks of one delivery need a few pages of write-ahead log.
const probeFloor = 1 << 20

// ErrPaused is wrapped by Probe while a local fault's pause runs.
var ErrPaused = errors.New("delivery paused by a local fault")

// Probe proves, with a tiny durable write, that the store can record what
// delivery needs: a worker calls it before opening an upstream connection.
// During a fault's pause it writes nothing and returns an error wrapping
// ErrPaused. A failed probe extends the fault (and returns the store's
// error); a successful one ends it (cleared is true then).
func (s *Store) Probe(ctx context.Context) (cleared bool, err error) {
	if f := s.DeliveryFault(); !f.Since.IsZero() && s.now().Before(f.NextTry) {
		return false, fmt.Errorf("%w until %s: %s", ErrPaused, f.NextTry.Format(time.RFC3339), f.Text())
	}
	// A tiny write can succeed where the "sending" mark, a moment later,
	// does not: below a floor the probe fails without trying, so that no
	// body is uploaded to the provider and then abandoned before the dot.
	if free, err := s.FreeSpace(); err == nil && free < probeFloor {
		err := fmt.Errorf("only %d bytes free on %s, below the %d the relay keeps to record a delivery: %w", free, s.dir, probeFloor, syscall.ENOSPC)
		s.noteFault(err)
		return false, fmt.Errorf("probe: %w", err)
	}
	now := s.now()
	err = s.writeWait(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec("INSERT INTO probe(id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at", ms(now))
		return err
	})
	if err != nil {
		s.noteFault(err) // whatever the cause: a store that cannot write sends nothing
		return false, fmt.Errorf("probe write to the queue: %w", err)
	}
	s.fault.mu.Lock()
	defer s.fault.mu.Unlock()
	cleared = !s.fault.f.Since.IsZero()
	s.fault.f = Fault{}
	return cleared, nil
}
