package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

var ctx = context.Background()

// open opens dir as the daemon does, with keys (the same ones each time
// for a folder): the suite runs the sealed store, bodies and columns. The
// tests that call store.Open run it in clear, as before `init`.
func open(t *testing.T, dir string) *store.Store {
	t.Helper()
	dirKeysMu.Lock()
	k, ok := dirKeys[dir]
	if !ok {
		k = newKeys(t)
		dirKeys[dir] = k
	}
	dirKeysMu.Unlock()
	s, err := store.OpenSealed(dir, &store.Keys{Write: k.Write, Read: k.Read})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	dirKeysMu sync.Mutex
	dirKeys   = map[string]*store.Keys{}
)

func env(account string) store.Envelope {
	return store.Envelope{Account: account, From: "jean.dupont@laposte.net", To: []string{"01422@422.01.rss.fr"}, Subject: "IR/lot", Client: "127.0.0.1:4000"}
}

func TestBodyComesBackByteForByte(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	body := []byte("Subject: x\r\n\r\nbinary \x00\xff\r\n.dot\r\nno final newline")
	id, err := enqueue(s, env("dupont"), body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Body(id)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body changed: %q %v", got, err)
	}
	m, evs, err := s.Get(id)
	if err != nil || m.State != store.Queued || m.Size != int64(len(body)) || len(evs) != 1 || m.To[0] != "01422@422.01.rss.fr" {
		t.Fatalf("%+v %v %v", m, evs, err)
	}
}

func TestTransitionsFollowTheLifecycle(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, _ := enqueue(s, env("dupont"), []byte("x"))
	if err := s.Release(ctx, id, "tech"); !errors.Is(err, store.ErrWrongState) {
		t.Fatalf("releasing a queued message: %v", err)
	}
	if err := s.MarkSending(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(ctx, id, "tech"); !errors.Is(err, store.ErrWrongState) {
		t.Fatalf("dropping a message being sent must fail: %v", err)
	}
	if err := s.MarkSentAsync(id, "250 ok").Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSending(ctx, id); !errors.Is(err, store.ErrWrongState) {
		t.Fatalf("a sent message was put back to sending: %v", err)
	}
	m, evs, _ := s.Get(id)
	if m.State != store.Sent || m.Attempts != 1 || m.Reply != "250 ok" || len(evs) != 3 {
		t.Fatalf("%+v %v", m, evs)
	}
	if _, err := s.Body(999); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
}

func TestDeferredMessageBecomesDueAtItsTime(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, _ := enqueue(s, env("dupont"), []byte("x"))
	next := time.Now().Add(time.Hour)
	if err := s.MarkDeferred(ctx, id, "451 try later", next); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due("dupont", time.Now(), 10); len(due) != 0 {
		t.Fatalf("due too early: %v", due)
	}
	if due, _ := s.Due("dupont", next.Add(time.Second), 10); len(due) != 1 || due[0].Attempts != 1 || due[0].LastError != "451 try later" {
		t.Fatalf("not due: %+v", due)
	}
	if at, ok, _ := s.NextAttempt("dupont"); !ok || at.UnixMilli() != next.UnixMilli() {
		t.Fatalf("next attempt %v %v", at, ok)
	}
}

func TestSendingAtCrashIsHeldNotResent(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	id, _ := enqueue(s, env("dupont"), []byte("x"))
	s.MarkSending(ctx, id)
	s.Close() // as good as a crash: no MarkSent
	s = open(t, dir)
	defer s.Close()
	n, err := s.RecoverInterrupted(ctx)
	if err != nil || n != 1 {
		t.Fatalf("recovered %d %v", n, err)
	}
	if due, _ := s.Due("dupont", time.Now().Add(time.Hour), 10); len(due) != 0 {
		t.Fatal("an uncertain message is due again")
	}
	m, _, _ := s.Get(id)
	if m.State != store.Held || m.HoldReason == "" {
		t.Fatalf("%+v", m)
	}
	if err := s.Release(ctx, id, "tech"); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.Due("dupont", time.Now(), 10); len(due) != 1 {
		t.Fatal("released message is not due")
	}
}

func TestBounceStoresOneDSNInTheSendersMailbox(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	id, _ := enqueue(s, env("dupont"), []byte("x"))
	if err := s.MarkBounced(ctx, id, "550 no such user", []byte("Subject: Non remis\r\n\r\ndsn")); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkBounced(ctx, id, "550 again", []byte("Subject: Non remis\r\n\r\ndsn2")); err == nil {
		t.Fatal("bounced twice")
	}
	mb, _ := s.Mailbox("dupont")
	if len(mb) != 1 || mb[0].Origin != "bounce" || mb[0].RefMsg != id {
		t.Fatalf("%+v", mb)
	}
	if b, _ := s.MailboxBody(mb[0].ID); string(b) != "Subject: Non remis\r\n\r\ndsn" || mb[0].Subject != "Non remis" {
		t.Fatalf("%q", b)
	}
	s.AddDelayNotice(ctx, id, []byte("Subject: Retard\r\n\r\nn"))
	s.AddDelayNotice(ctx, id, []byte("Subject: Retard\r\n\r\nn"))
	if mb, _ := s.Mailbox("dupont"); len(mb) != 2 {
		t.Fatalf("delay notice not stored exactly once: %d", len(mb))
	}
}

func TestConcurrentSubmissionsShareCommits(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	before := store.Commits(s)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := enqueue(s, env("dupont"), []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	n := store.Commits(s) - before
	if n >= 200 {
		t.Fatalf("200 concurrent submissions took %d commits: no group commit", n)
	}
	if got, _ := s.List(store.Filter{}); len(got) != 200 {
		t.Fatalf("%d messages", len(got))
	}
	t.Logf("200 concurrent submissions: %d commits", n)
}

func TestOneFailingWriteDoesNotSpoilItsBatch(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ok, _ := enqueue(s, env("dupont"), []byte("x"))
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%2 == 0 {
				errs[i] = s.Release(ctx, ok, "tech") // always wrong state
			} else {
				_, errs[i] = enqueue(s, env("dupont"), []byte("y"))
			}
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if (i%2 == 0) != (err != nil) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got, _ := s.List(store.Filter{}); len(got) != 26 {
		t.Fatalf("%d messages, want 26", len(got))
	}
}

func TestReadOnlyOpenSeesTheDaemonsQueue(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	enqueue(s, env("dupont"), []byte("x"))
	ro, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got, err := ro.List(store.Filter{}); err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := enqueue(ro, env("dupont"), []byte("x")); err == nil {
		t.Fatal("wrote through a read-only store")
	}
	if _, err := store.OpenReadOnly(t.TempDir()); err == nil {
		t.Fatal("read-only open of an empty folder succeeded")
	}
}

// TestFullDiskRefusesWithoutLosingEarlierMail fills a real (tmpfs) file
// system. It needs root to mount; without it the test fails, it never skips.
func TestFullDiskRefusesWithoutLosingEarlierMail(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small tmpfs (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	s := open(t, dir)
	defer s.Close()
	body := bytes.Repeat([]byte("0123456789abcdef"), 20<<10/16)
	var ids []int64
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		id, err := enqueue(s, env("dupont"), body)
		if err != nil {
			full = err
			break
		}
		ids = append(ids, id)
	}
	if full == nil {
		t.Fatal("200 x 20 KB fit in a 2 MB file system")
	}
	t.Logf("disk full after %d messages: %v", len(ids), full)
	for _, id := range ids {
		if b, err := s.Body(id); err != nil || !bytes.Equal(b, body) {
			t.Fatalf("message %d lost after the disk filled: %v", id, err)
		}
	}
	if free, err := s.FreeSpace(); err != nil || free > 1<<20 {
		t.Fatalf("free space %d %v", free, err)
	}
}

// enqueue submits a mail and returns its id.
func enqueue(s *store.Store, e store.Envelope, body []byte) (int64, error) {
	a, err := s.Submit(context.Background(), e, body)
	return a.ID, err
}

// addResult is AddMail's outcome and error together, for one-line checks.
type addResult struct {
	store.Added
	Err error
}

func added(a store.Added, err error) addResult { return addResult{a, err} }
