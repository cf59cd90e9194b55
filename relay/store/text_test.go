package store_test

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// mustNotHoldText fails if the state folder's bytes hold any of words.
func mustNotHoldText(t *testing.T, dir string, words ...string) {
	t.Helper()
	disk := onDisk(t, dir)
	for _, w := range words {
		if bytes.Contains(disk, []byte(w)) {
			t.Fatalf("the state folder holds %q in clear", w)
		}
	}
}

// aPatientsMail is a mail from a patient to the practice: her name in its
// From and its Subject.
func aPatientsMail() []byte {
	return []byte("From: " + patient + " <jeanne.dm@example.org>\r\nSubject: ordonnance de " + patient + "\r\nMessage-ID: <p1@example.org>\r\n\r\nBonjour.\r\n")
}

// The columns that carry a lot's or a patient's data are sealed like the
// bodies: a lot's stamp and Subject, a second sending held, its ARL
// matched, a patient's mail collected, a warning given — none of it reads
// from the file, and all of it reads back through the store.
func TestASealedStoreHoldsNoStampSubjectOrSenderInClear(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	lot := aLot("12345678901234")
	stamp := stampOf(lot)
	first, _ := submitLot(t, s, "dupont", lot)
	deliver(t, s, first.ID)
	second, _ := submitLot(t, s, "dupont", lot)
	if second.DuplicateOf != first.ID {
		t.Fatalf("the second sending is not held as a DOUBLON under sealed lookups: %+v", second)
	}
	added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, positiveARL(stamp), nil))
	pm := added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 2}, aPatientsMail(), nil))
	if _, err := s.GiveNotice(ctx, store.PracticeNotice{Warning: store.Warning{Account: "dupont", LotID: first.ID, Kind: "test", Text: "lot " + stamp + " looked at"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	mustNotHoldText(t, dir, stamp, lot.Subject(), patient, "ordonnance")

	s = open(t, dir)
	defer s.Close()
	l, st := lotByID(t, s, first.ID)
	if l.Stamp != stamp || st.State != sesam.LotAcknowledged || len(l.Returns) != 1 || !strings.Contains(l.Returns[0].Subject, stamp) || !strings.Contains(l.Returns[0].How, stamp) {
		t.Fatalf("the ledger does not read back: %+v %+v", l, st)
	}
	if m, _, err := s.Get(second.ID); err != nil || m.Subject != lot.Subject() || !m.Duplicate() {
		t.Fatalf("the second sending reads back as %+v (%v)", m, err)
	}
	if h := history(t, s, second.ID); !strings.Contains(h, "held at acceptance") {
		t.Fatalf("its history does not read back:\n%s", h)
	}
	e, err := s.MailboxEntryByID(pm.ID)
	if err != nil || !strings.Contains(e.From, patient) || !strings.Contains(e.Subject, patient) {
		t.Fatalf("the patient's mail reads back as %+v (%v)", e, err)
	}
	ws, err := s.Warnings("dupont", time.Time{}, 10)
	if err != nil || len(ws) != 1 || !strings.Contains(ws[0].Text, stamp) {
		t.Fatalf("the warning reads back as %+v (%v)", ws, err)
	}
	if first2, still, err := s.StillDuplicate(second.ID); err != nil || !still || first2 != first.ID {
		t.Fatalf("StillDuplicate under sealed lookups: %d %v %v", first2, still, err)
	}
}

// A store written in clear (0.1.0, or before init) looks its lots up by
// their stamps. Its first start with keys turns those lookups into keyed
// ones at once, before any submission: a second sending made before the
// background sealing has run is still held. Then the sealing leaves no
// stamp in the file.
func TestAPlainLedgerGuardsItsLotsFromTheFirstSealedStart(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	lot := aLot("12345678901234")
	stamp := stampOf(lot)
	first, _ := submitLot(t, s, "dupont", lot)
	deliver(t, s, first.ID)
	s.Close()
	if !bytes.Contains(onDisk(t, dir), []byte(stamp)) {
		t.Fatal("the plain store holds no stamp: the test proves nothing")
	}
	s = open(t, dir)
	second, _ := submitLot(t, s, "dupont", lot)
	if second.DuplicateOf != first.ID {
		t.Fatalf("the first sealed start forgot the lot sent in clear: %+v", second)
	}
	if _, _, _, err := s.Reseal(ctx); err != nil {
		t.Fatal(err)
	}
	added(s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, positiveARL(stamp), nil))
	if l, st := lotByID(t, s, first.ID); l.Stamp != stamp || st.State != sesam.LotAcknowledged {
		t.Fatalf("after sealing, the lot sent in clear: %+v %+v", l, st)
	}
	s.Close()
	mustNotHoldText(t, dir, stamp, lot.Subject())
}

// After a rotation and the background sealing, the columns open with the
// new key alone; a value that was altered on disk reads as damaged, and
// the listing around it goes on.
func TestRotatedColumnsOpenWithTheNewKeyAloneAndADamagedOneIsNamed(t *testing.T) {
	dir := t.TempDir()
	old := newKeys(t)
	s, err := store.OpenSealed(dir, old)
	if err != nil {
		t.Fatal(err)
	}
	lot := aLot("12345678901234")
	a, _ := submitLot(t, s, "dupont", lot)
	b, _ := submitLot(t, s, "dupont", aLot("99999999999999"))
	s.Close()
	k := newKeys(t)
	s, err = store.OpenSealed(dir, &store.Keys{Write: k.Write, Read: openpgp.EntityList{k.Write, old.Write}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Reseal(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = store.OpenSealed(dir, &store.Keys{Write: k.Write, Read: openpgp.EntityList{k.Write}})
	if err != nil {
		t.Fatal(err)
	}
	if m, _, err := s.Get(a.ID); err != nil || m.Subject != lot.Subject() {
		t.Fatalf("after rotation, with the new key alone: %q %v", m.Subject, err)
	}
	if l, _ := lotByID(t, s, a.ID); l.Stamp != stampOf(lot) {
		t.Fatalf("after rotation, the stamp reads %q", l.Stamp)
	}
	second, _ := submitLot(t, s, "dupont", lot)
	if second.DuplicateOf != a.ID {
		t.Fatalf("a rotation changed the lookups: %+v", second)
	}
	s.Close()
	// A bit flipped in one Subject.
	db, err := sql.Open("sqlite", filepath.Join(dir, "sesam-relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE messages SET subject = CAST(substr(subject, 1, 30) || X'00' || substr(subject, 32) AS BLOB) WHERE id = ?", a.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = store.OpenSealed(dir, &store.Keys{Write: k.Write, Read: openpgp.EntityList{k.Write}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := s.List(store.Filter{})
	if err != nil || len(ms) != 3 {
		t.Fatalf("the listing stopped at the damaged row: %d %v", len(ms), err)
	}
	for _, m := range ms {
		switch {
		case m.ID == a.ID && !strings.Contains(m.Subject, "damaged"):
			t.Fatalf("a damaged Subject reads %q", m.Subject)
		case m.ID == b.ID && m.Subject != aLot("99999999999999").Subject():
			t.Fatalf("its neighbour reads %q", m.Subject)
		}
	}
	// Read-only without the key (the CLI of a technician who has not it).
	ro, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if m, _, err := ro.Get(b.ID); err != nil || !strings.Contains(m.Subject, "encrypted") {
		t.Fatalf("without the key a Subject reads %q (%v)", m.Subject, err)
	}
}
