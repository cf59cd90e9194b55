package e2e_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixture010 is a store written in clear by sesam-relay 0.1.0 (the first
// package, commit 6939b19), with what 0.1.0 showed of it; make.sh beside
// it made both.
const fixture010 = "testdata/store-0.1.0"

// seen is what a technician and the billing software see of one mail, in
// the fields both versions show.
type seen struct {
	ID                       int64
	Subject, From, MessageID string
	To                       []string
	Size                     int64
	State, Class             string
}

func read010(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixture010, name))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// Real 0.1.0 data: two lots (one waiting for the provider, one held in
// clear by the guard), four returns imported, the billing software's
// login having taken and deleted two while the phone's kept all, the
// database with its write-ahead log as 0.1.0 left them. Today's relay
// starts on it, encrypts it in place, and every message, view, UIDL, queue
// entry and lot reads as 0.1.0 showed them; the stamps and the returns'
// contents are no longer in clear on disk.
func TestAStoreWrittenBy010UpgradesUnchanged(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	r.stop()
	prov.Off() // the waiting lot stays waiting, as 0.1.0 left it
	os.RemoveAll(r.stateDir)
	os.MkdirAll(r.stateDir, 0o700)
	for _, f := range []string{"sesam-relay.db", "sesam-relay.db-wal"} {
		b, err := os.ReadFile(filepath.Join(fixture010, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(r.stateDir, f), b, 0o600)
	}
	clear := []string{"2026112408150000042", "2026112408150012345", "ACTE NON REMBOURSABLE"}
	if len(filesHolding(t, r.stateDir, clear...)) == 0 {
		t.Fatal("the 0.1.0 store holds none of the stamps in clear: the test proves nothing")
	}
	r.start()
	waitFor(t, 15*time.Second, "the old store sealed", func() bool { return strings.Contains(r.Log(), "are now encrypted to the current store key") })

	// The billing software and the phone: the same UIDLs, the same bytes.
	for _, login := range []string{"dupont", "dupont-mobile"} {
		want, _ := os.ReadFile(filepath.Join(fixture010, "uidl-"+login+".txt"))
		got := r.poplib(pyArgs{"user": login})
		// The relay's own notice about the held lot, which 0.1.0 did not
		// send, comes after: 0.1.0's messages keep their numbers and UIDLs.
		if n := strings.Count(string(want), "\n"); len(got.UIDL) < n || strings.Join(got.UIDL[:n], "\n")+"\n" != string(want) {
			t.Errorf("%s's UIDLs after the upgrade:\n%s\nas 0.1.0 served them:\n%s", login, strings.Join(got.UIDL, "\n"), want)
		}
		if login == "dupont-mobile" {
			for i, name := range []string{"arl-positive.eml", "noemie-reject.eml", "noemie-payment-gz.eml", "provider-notice.eml"} {
				b, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "mail", name))
				if i >= len(got.Messages) || !bytes.Equal(got.Messages[i].Raw, b) {
					t.Errorf("message %d is not %s as imported into 0.1.0", i+1, name)
				}
			}
		}
	}

	// The queue, the mailbox and the ledger, as 0.1.0 listed them.
	var oldQueue, newQueue, oldMail, newMail []seen
	read010(t, "queue.json", &oldQueue)
	for _, m := range r.queue() {
		newQueue = append(newQueue, seen{ID: m.ID, Subject: m.Subject, From: m.From, MessageID: m.MessageID, To: m.To, Size: m.Size, State: string(m.State)})
	}
	if len(newQueue) < len(oldQueue) || !reflect.DeepEqual(newQueue[:len(oldQueue)], oldQueue) || !relayNotices(newQueue[len(oldQueue):]) {
		t.Errorf("the queue after the upgrade:\n%+v\nas 0.1.0 listed it:\n%+v", newQueue, oldQueue)
	}
	read010(t, "mail.json", &oldMail)
	entries, _ := r.mailbox()
	for _, e := range entries {
		newMail = append(newMail, seen{ID: e.ID, Subject: e.Subject, From: e.From, MessageID: e.MessageID, Size: e.Size, Class: e.Class})
	}
	if len(newMail) < len(oldMail) || !reflect.DeepEqual(newMail[:len(oldMail)], oldMail) || !relayNotices(newMail[len(oldMail):]) {
		t.Errorf("the mailbox after the upgrade:\n%+v\nas 0.1.0 listed it:\n%+v", newMail, oldMail)
	}
	var oldLots []struct {
		ID                               int64
		Fund, Stamp, Emitter, QueueState string
		Invoices                         int
		LotAt                            time.Time
		Returns                          []any
	}
	read010(t, "lots.json", &oldLots)
	var newLots struct {
		Lots []struct {
			ID       int64     `json:"id"`
			Fund     string    `json:"fund"`
			Stamp    string    `json:"stamp"`
			Emitter  string    `json:"emitter"`
			Invoices int       `json:"invoices"`
			LotAt    time.Time `json:"lot_at"`
			Queue    string    `json:"queue_state"`
			Returns  []any     `json:"returns"`
		} `json:"lots"`
	}
	out, _ := r.cli("lots", "--json")
	if err := json.Unmarshal([]byte(out), &newLots); err != nil {
		t.Fatalf("lots --json: %v\n%s", err, out)
	}
	if len(newLots.Lots) != len(oldLots) {
		t.Fatalf("%d lots after the upgrade, 0.1.0 had %d:\n%s", len(newLots.Lots), len(oldLots), out)
	}
	for i, o := range oldLots {
		n := newLots.Lots[i]
		// 0.1.0 read a stamp's time as UTC; it is the practice's (Paris)
		// time, as today's relay reads it: the same wall clock.
		if n.ID != o.ID || n.Fund != o.Fund || n.Stamp != o.Stamp || n.Emitter != o.Emitter || n.Invoices != o.Invoices ||
			n.LotAt.Format(time.DateTime) != o.LotAt.Format(time.DateTime) || n.Queue != o.QueueState || len(n.Returns) < len(o.Returns) {
			t.Errorf("lot %d after the upgrade: %+v; as 0.1.0 listed it: %+v", i+1, n, o)
		}
	}

	// The ledger, rebuilt under today's rules at the first start, now sees
	// the positive ARL that quotes lot 1's stamp (0.1.0 matched returns only
	// to lots that had left).
	if r := newLots.Lots[0].Returns; len(r) != 1 || !strings.Contains(toJSON(r), `"class":"arl-positive"`) || !strings.Contains(toJSON(r), `"mailbox_id":1`) {
		t.Errorf("lot 1's returns after the upgrade: %s", toJSON(r))
	}

	// Nothing of it in clear on disk any more.
	r.stop()
	if got := filesHolding(t, r.stateDir, clear...); len(got) > 0 {
		t.Errorf("after the upgrade, in clear on disk: %v", got)
	}
}

// relayNotices says whether mail added since 0.1.0 is only the relay's
// notices to the practitioner (about the lot 0.1.0 held).
func relayNotices(added []seen) bool {
	for _, m := range added {
		// What the upgraded relay wrote since, as time went by from the
		// fixture's day: a held lot's notice, a delay notice (DSN).
		if !strings.HasSuffix(m.MessageID, ".notice@relais.test>") && !strings.HasSuffix(m.MessageID, ".dsn@relais.test>") {
			return false
		}
	}
	return true
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
