package store_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

func TestStateOfVersion1GainsThePoisonMark(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, "sesam-relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(store.SchemaV1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatalf("opening a version 1 state folder: %v", err)
	}
	defer s.Close()
	if err := s.MarkClassifying(ctx, "dupont", "INBOX", store.Classifying{UIDValidity: 7, Lo: 3, Hi: 9}); err != nil {
		t.Fatal(err)
	}
	if c, found, err := s.MarkFound("dupont", "INBOX"); err != nil || !found || c.Lo != 3 || c.Hi != 9 || c.Single {
		t.Fatalf("%+v %v %v", c, found, err)
	}
}

func TestDoneClassifyingClearsTheMarkAndPassesTheBatch(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 7, UID: 3}, []byte("Subject: x\r\n\r\n"), nil))
	s.MarkClassifying(ctx, "dupont", "INBOX", store.Classifying{UIDValidity: 7, Lo: 4, Hi: 9})
	s.DoneClassifying(ctx, "dupont", "INBOX", 7, 9)
	s.MarkClassifying(ctx, "other", "INBOX", store.Classifying{UIDValidity: 1, Lo: 1, Hi: 1}) // after the one not waited for
	if _, found, _ := s.MarkFound("dupont", "INBOX"); found {
		t.Fatal("the mark is still there")
	}
	if _, last, _ := s.SyncState("dupont", "INBOX"); last != 9 {
		t.Fatalf("sync position %d, want 9", last)
	}
}
