package store_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// openBusy opens a store whose committer is kept inside a write until
// release is called (or the test ends); every request sent meanwhile waits
// in the queue.
func openBusy(t *testing.T) (s *store.Store, release func()) {
	t.Helper()
	s = open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	return s, busy(t, s)
}

// busy keeps s's committer inside a write until release is called (or the
// test ends, before s closes if s was opened by openBusy).
func busy(t *testing.T, s *store.Store) (release func()) {
	started, free := make(chan struct{}), make(chan struct{})
	p := store.WriteAsync(s, func(*sql.Tx) error {
		close(started)
		<-free
		return nil
	})
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(free)
			if err := p.Wait(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release) // before Close, which waits for the committer
	return release
}

// within fails the test if done does not receive within a generous bound:
// the behaviour tested returns at once, the one it replaces never did.
func within[T any](t *testing.T, done <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting", what)
		panic("unreachable")
	}
}

func queued(t *testing.T, s *store.Store) int {
	t.Helper()
	n, err := s.Count(store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestASubmissionWithdrawnFromTheQueueByItsCtxNeverCommits(t *testing.T) {
	s, release := openBusy(t)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := s.Submit(cctx, env("dupont"), []byte("Subject: x\r\n\r\nwithdrawn\r\n"))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // in the queue by now, behind the busy write
	cancel()
	if err := within(t, done, "a submission whose ctx ended while queued"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the ctx's error", err)
	}
	release()
	if _, err := s.Submit(ctx, env("dupont"), []byte("Subject: x\r\n\r\nkept\r\n")); err != nil {
		t.Fatal(err)
	}
	if n := queued(t, s); n != 1 {
		t.Fatalf("%d mails queued: the client was told its submission failed, yet it committed", n)
	}
}

func TestAWriteTheCommitterTookReturnsItsRealOutcomeAfterItsCtxEnds(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for _, want := range []error{nil, errors.New("the write's own failure")} {
		running, free := make(chan struct{}), make(chan struct{})
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- store.WriteWait(s, cctx, func(tx *sql.Tx) error {
				close(running)
				<-free
				return want
			})
		}()
		<-running
		cancel()
		select {
		case err := <-done:
			t.Fatalf("returned %v while the committer still ran the write", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(free)
		if err := within(t, done, "a write taken by the committer"); err != want {
			t.Fatalf("got %v, want the write's real outcome %v", err, want)
		}
	}
}

func TestAWriteWaitingForRoomInTheQueueGivesUpWithItsCtx(t *testing.T) {
	s, release := openBusy(t)
	var fill []*store.Pending
	for range store.QueueRoom(s) {
		fill = append(fill, store.WriteAsync(s, func(*sql.Tx) error { return nil }))
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Submit(tctx, env("dupont"), []byte("Subject: x\r\n\r\nno room\r\n"))
		done <- err
	}()
	if err := within(t, done, "a submission facing a full queue"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the ctx's error", err)
	}
	release()
	for _, p := range fill {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := queued(t, s); n != 0 {
		t.Fatalf("%d mails queued after a submission refused for lack of room", n)
	}
}

func TestAPendingWriteSaysWhetherItIsDoneWithoutWaiting(t *testing.T) {
	s := open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	id, _ := enqueue(s, env("dupont"), []byte("x"))
	if err := s.MarkSending(ctx, id); err != nil {
		t.Fatal(err)
	}
	release := busy(t, s)
	p := s.MarkSentAsync(id, "250 ok")
	if _, ok := p.Done(); ok {
		t.Fatal("done while the committer is busy with another write")
	}
	release()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err, ok := p.Done(); !ok || err != nil {
		t.Fatalf("after Wait: %v %v", err, ok)
	}
	if err := s.MarkSentAsync(id, "250 again").Wait(ctx); !errors.Is(err, store.ErrWrongState) {
		t.Fatalf("a second sent record: %v", err)
	}
}

// A write asked after Close (a late task at shutdown) is refused with an
// error, not a panic on the closed queue.
func TestAWriteAfterCloseIsRefused(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.SetHealthAsync(store.Health{Account: "dupont"}).Wait(context.Background()); err == nil {
		t.Fatal("an async write after Close succeeded")
	}
	if _, err := s.Submit(context.Background(), store.Envelope{Account: "dupont", From: "a@b", To: []string{"c@d"}}, []byte("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Fatal("a submission after Close succeeded")
	}
}
