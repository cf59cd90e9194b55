package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeMail(t *testing.T, name, mid, text string) string {
	p := filepath.Join(t.TempDir(), name)
	b := "From: <" + sender + ">\r\nTo: <" + other + ">\r\nSubject: lot " + name + "\r\nMessage-ID: " + mid + "\r\n\r\n" + text + "\r\n"
	if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The billing software sends a mail again when it missed our 250: the same
// bytes under the same Message-ID get a 250 and go upstream once.
func TestResubmittedMailIsAnswered250AndSentOnce(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	p := writeMail(t, "a", "<resubmit-1@billing.test>", "lot A")
	for i := 0; i < 2; i++ {
		if res := r.python(pyArgs{"file": p}); len(res) != 1 || res[0].Code != 250 {
			t.Fatalf("submission %d: %+v", i+1, res)
		}
	}
	waitFor(t, 10*time.Second, "the mail delivered", func() bool { return len(prov.Mails()) >= 1 })
	time.Sleep(1500 * time.Millisecond) // room for a second copy to show up, were one queued
	if n := len(prov.Mails()); n != 1 {
		t.Fatalf("the provider got %d copies", n)
	}
	q := r.queue()
	if len(q) != 1 {
		t.Fatalf("%d mails in the queue, want 1", len(q))
	}
	out, _ := r.cli("queue", "show", itoa(q[0].ID))
	if !strings.Contains(out, "resubmitted by the client") {
		t.Fatalf("queue show does not show the resubmission:\n%s", out)
	}
	if !strings.Contains(r.Log(), "resubmission of a mail already accepted") {
		t.Fatal("the resubmission is not logged")
	}
}

// Same Message-ID, other bytes: a different mail (or a buggy client). It is
// sent, and flagged for the technician.
func TestSameMessageIDWithOtherBytesIsSentAndFlagged(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	for _, p := range []string{writeMail(t, "a", "<reused@billing.test>", "lot A"), writeMail(t, "b", "<reused@billing.test>", "lot B")} {
		if res := r.python(pyArgs{"file": p}); len(res) != 1 || res[0].Code != 250 {
			t.Fatalf("%+v", res)
		}
	}
	waitFor(t, 10*time.Second, "both mails delivered", func() bool { return len(prov.Mails()) == 2 })
	q := r.queue()
	if len(q) != 2 {
		t.Fatalf("%d mails in the queue, want 2", len(q))
	}
	out, _ := r.cli("queue", "show", itoa(q[1].ID))
	if !strings.Contains(out, "flagged: Message-ID <reused@billing.test> was already accepted as mail "+itoa(q[0].ID)) {
		t.Fatalf("queue show does not flag the second mail:\n%s", out)
	}
}
