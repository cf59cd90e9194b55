package e2e_test

import (
	"bytes"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// TestFullDiskPausesDeliveryWithoutHammeringTheProvider fills the state
// folder from outside (as journald or apt do, behind min_free_space) while
// mail is queued: the relay must not open session after session only to
// abandon each body before the dot, must say in `status` that the disk is
// full, and must deliver every mail exactly once when space is freed.
func TestFullDiskPausesDeliveryWithoutHammeringTheProvider(t *testing.T) {
	fullDisk(t, false, 0, 4)
}

// Nearly full: a tiny write still succeeds where the "sending" mark would
// not (found by review: the relay then opened sessions, uploaded the body
// and abandoned it before the dot). Below a floor no session is opened.
func TestNearlyFullDiskOpensNoUpstreamSession(t *testing.T) {
	fullDisk(t, false, 16<<10, 0)
}

// The same with the provider up and slow, so that the disk fills in the
// middle of a burst: the "sending" mark of the next mail fails after its
// body went up, and the "sent" record of the one before may fail with it.
// That mail must still end "sent" (not stuck in "sending") once space is
// freed, and none may go twice.
func TestDiskFillingDuringABurstStopsDeliveryAndKeepsEveryRecord(t *testing.T) {
	fullDisk(t, true, 0, 4)
}

// fullDisk fills the state folder but leave bytes, and allows at most
// sessions upstream sessions while it is so.
func fullDisk(t *testing.T, duringBurst bool, leave int64, sessions int) {
	need(t, "dd", "mount")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small tmpfs (the test needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	prov := newProvider(t)
	if duringBurst {
		prov.SetReplyDelay(700 * time.Millisecond) // 20 mails take 14 s
	} else {
		prov.Off() // the mail waits in the queue
	}
	r := newRelay(t, prov, opts{stateDir: dir, top: `min_free_space = 0`})
	const n = 20
	for _, x := range r.python(pyArgs{"count": n, "size": 20000, "prefix": "full"}) {
		if x.Code != 250 {
			t.Fatalf("before the disk fills every mail is accepted: %+v", x)
		}
	}
	fill := filepath.Join(dir, "fill")
	exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=64k").Run() // stops at ENOSPC
	if leave > 0 {
		if fi, err := os.Stat(fill); err != nil || os.Truncate(fill, fi.Size()-leave) != nil {
			t.Fatalf("leaving %d bytes free: %v", leave, err)
		}
	}
	if free, err := freeBytes(dir); err != nil || free > uint64(leave)+64<<10 {
		t.Fatalf("the disk did not fill: %d bytes free (%v)", free, err)
	}
	before, _ := prov.Stats()
	if err := prov.On(); err != nil {
		t.Fatal(err)
	}
	delivered := len(prov.Mails())
	time.Sleep(15 * time.Second) // a window to count sessions in, not a timing assertion
	conns, _ := prov.Stats()
	out, _ := r.cli("status")
	t.Logf("disk full for 15 s: %d upstream sessions (%d mails delivered before the disk filled, %d while full); status:\n%s",
		conns-before, delivered, len(prov.Mails())-delivered, out)
	if conns-before > sessions {
		t.Errorf("%d upstream sessions while the disk was full: the relay hammers the provider", conns-before)
	}
	if !strings.Contains(out, "the disk is full: nothing is sent until space is freed") {
		t.Errorf("status does not say the disk is full")
	}
	if h := r.status().Accounts[0].Health; strings.Contains(h.LastError, "full") || strings.Contains(h.LastError, "queue") {
		t.Errorf("a full disk was blamed on the provider: %+v", h)
	}
	os.Remove(fill)
	waitFor(t, 90*time.Second, "every mail delivered once space is freed", func() bool {
		return r.states()[store.Sent] == n
	})
	got := map[string]int{}
	for _, m := range prov.Mails() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		got[msg.Header.Get("Message-Id")]++
	}
	for i := 0; i < n; i++ {
		if id := "<full-" + itoa(int64(i)) + "@billing.test>"; got[id] != 1 {
			t.Errorf("%s reached the provider %d times", id, got[id])
		}
	}
	if out, _ := r.cli("status"); strings.Contains(out, "DELIVERY PAUSED") {
		t.Errorf("status still shows the pause after delivery:\n%s", out)
	}
	if !strings.Contains(r.Log(), "delivery resumes") {
		t.Errorf("the log does not say delivery resumed")
	}
	t.Logf("'sent' records written again after the disk had room: %d", strings.Count(r.Log(), "recording a delivery again"))
}

func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	err := syscall.Statfs(dir, &st)
	return st.Bavail * uint64(st.Bsize), err
}
