package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

func fetched(folder string, uv, uid uint32) store.Origin {
	return store.Origin{Kind: store.Fetched, Folder: folder, UIDValidity: uv, UID: uid}
}

func TestSameMailIsKeptOnceAndSyncMovesWithIt(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	a := added(s.AddMail(ctx, "dupont", fetched("INBOX", 7, 1), []byte("Subject: ARL\r\n\r\nok\r\n"), nil))
	b := added(s.AddMail(ctx, "dupont", fetched("INBOX", 7, 2), []byte("Subject: ARL\r\n\r\nok\r\n"), nil))
	c := added(s.AddMail(ctx, "martin", fetched("INBOX", 7, 1), []byte("Subject: ARL\r\n\r\nok\r\n"), nil))
	if a.Err != nil || a.Duplicate || !b.Duplicate || b.ID != a.ID || c.Duplicate {
		t.Fatalf("%+v %+v %+v", a, b, c)
	}
	if uv, last, _ := s.SyncState("dupont", "INBOX"); uv != 7 || last != 2 {
		t.Fatalf("sync %d %d: the duplicate's UID must count as fetched", uv, last)
	}
	// A message from an older UIDVALIDITY never moves the new one's position.
	s.ResetSync(ctx, "dupont", "INBOX", 8)
	added(s.AddMail(ctx, "dupont", fetched("INBOX", 7, 99), []byte("late"), nil))
	if uv, last, _ := s.SyncState("dupont", "INBOX"); uv != 8 || last != 0 {
		t.Fatalf("sync after reset %d %d", uv, last)
	}
	mb, _ := s.Mailbox("dupont")
	if len(mb) != 2 || mb[0].Subject != "ARL" || mb[0].Folder != "INBOX" {
		t.Fatalf("%+v", mb)
	}
}

func TestEachLoginHasItsOwnView(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	var ids []int64
	for i := 0; i < 3; i++ {
		r := added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Imported}, []byte(fmt.Sprintf("Subject: %d\n\nbare LF body", i)), nil))
		ids = append(ids, r.ID)
	}
	v, _ := s.View("dupont", "dupont")
	if len(v) != 3 || v[0].WireSize != int64(len("Subject: 0\r\n\r\nbare LF body\r\n")) {
		t.Fatalf("view %+v", v)
	}
	uidl := v[1].UIDL
	s.MarkRetrieved(ctx, "dupont", []int64{ids[1]})
	if err := s.DeleteFromView(ctx, "dupont", []int64{ids[1]}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.View("dupont", "dupont"); len(v) != 2 || v[1].ID != ids[2] {
		t.Fatalf("after DELE: %+v", v)
	}
	if v, _ := s.View("dupont-mobile", "dupont"); len(v) != 3 || v[1].UIDL != uidl {
		t.Fatalf("another login lost the message or its UIDL changed: %+v", v)
	}
	e, _ := s.MailboxEntryByID(ids[1])
	if len(e.Collections) != 1 || e.Collections[0].Login != "dupont" || e.Collections[0].Deleted.IsZero() || e.Collections[0].Retrieved.IsZero() {
		t.Fatalf("collections %+v", e.Collections)
	}
	if err := s.Restore(ctx, "dupont", ids[1]); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.View("dupont", "dupont"); len(v) != 3 || v[1].UIDL != uidl {
		t.Fatalf("after restore: %+v", v)
	}
	if err := s.Restore(ctx, "dupont", ids[1]); !errors.Is(err, store.ErrWrongState) {
		t.Fatalf("restoring a visible message: %v", err)
	}
	if len(uidl) > 70 {
		t.Fatalf("UIDL %q too long", uidl)
	}
}

func TestPurgeRemovesOldMailButNeverWaitingLots(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Imported}, []byte("old"), nil))
	sent, _ := enqueue(s, env("dupont"), []byte("sent lot"))
	s.MarkSending(ctx, sent)
	s.MarkSentAsync(sent, "250").Wait(ctx)
	waiting, _ := enqueue(s, env("dupont"), []byte("waiting lot"))
	n, err := s.Purge(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("purged %d %v", n, err)
	}
	if mb, _ := s.Mailbox("dupont"); len(mb) != 0 {
		t.Fatal("old mail kept")
	}
	if _, _, err := s.Get(sent); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("old sent lot kept")
	}
	if m, _, err := s.Get(waiting); err != nil || m.State != store.Queued {
		t.Fatalf("a waiting lot was purged: %v", err)
	}
	if b, err := s.Body(waiting); err != nil || string(b) != "waiting lot" {
		t.Fatal("a waiting lot lost its body")
	}
}

func TestUpstreamExpiredListsOnlyOldCurrentUIDs(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	for uid := uint32(1); uid <= 3; uid++ {
		added(s.AddMail(ctx, "dupont", fetched("INBOX", 5, uid), []byte(fmt.Sprint(uid)), nil))
	}
	added(s.AddMail(ctx, "dupont", fetched("INBOX", 4, 9), []byte("older uidvalidity"), nil))
	uids, _ := s.UpstreamExpired("dupont", "INBOX", 5, time.Now().Add(time.Minute))
	if fmt.Sprint(uids) != "[1 2 3]" {
		t.Fatalf("%v", uids)
	}
	s.MarkUpstreamDeleted(ctx, "dupont", "INBOX", 5, []uint32{1, 2})
	if uids, _ := s.UpstreamExpired("dupont", "INBOX", 5, time.Now().Add(time.Minute)); fmt.Sprint(uids) != "[3]" {
		t.Fatalf("%v", uids)
	}
	if uids, _ := s.UpstreamExpired("dupont", "INBOX", 5, time.Now().Add(-time.Minute)); len(uids) != 0 {
		t.Fatal("fresh mail listed as expired")
	}
}
