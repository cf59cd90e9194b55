package store_test

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Health data a stolen disk must not give away: a patient's name and NIR
// in a NOEMIE-like return, and in a lot's body.
const (
	patient = "DUPONT-MARTINEAU Jeanne"
	nir     = "284057512345678"
)

func sealedBody(i int) []byte {
	return []byte("From: <cpam@caisse.fr>\r\nSubject: retour " + strconv.Itoa(i) + "\r\n\r\nBeneficiaire " + patient + " NIR " + nir + " ligne " + strconv.Itoa(i) + "\r\n")
}

func newKeys(t *testing.T) *store.Keys { return newKeysF(t) }

func newKeysF(t testing.TB) *store.Keys {
	t.Helper()
	e, err := keys.New("relais.test")
	if err != nil {
		t.Fatal(err)
	}
	return &store.Keys{Write: e, Read: openpgp.EntityList{e}}
}

// onDisk is every byte of the state folder's files.
func onDisk(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	return all
}

func mustNotHold(t *testing.T, dir string) {
	t.Helper()
	disk := onDisk(t, dir)
	for _, s := range []string{patient, nir} {
		if bytes.Contains(disk, []byte(s)) {
			t.Fatalf("the state folder holds %q in clear", s)
		}
	}
}

func TestBodiesAreSealedOnDisk(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t)
	s, err := store.OpenSealed(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	id, err := enqueue(s, env("dupont"), sealedBody(1))
	if err != nil {
		t.Fatal(err)
	}
	added, err := s.AddMail(ctx, "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 1, UID: 1}, sealedBody(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkBounced(ctx, id, "550 no", sealedBody(3)); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Body(id); err != nil || !bytes.Equal(b, sealedBody(1)) {
		t.Fatalf("queued body: %v %q", err, b)
	}
	if b, err := s.MailboxBody(added.ID); err != nil || !bytes.Equal(b, sealedBody(2)) {
		t.Fatalf("mailbox body: %v %q", err, b)
	}
	s.Close()
	mustNotHold(t, dir)

	// The key is needed, and the right one: nothing opens without it.
	if _, err := store.Open(dir); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("opened without its key: %v", err)
	}
	if _, err := store.OpenSealed(dir, newKeys(t)); err == nil || !strings.Contains(err.Error(), store.KeyName(k.Write)) {
		t.Fatalf("opened with another key: %v", err)
	}
	ro, err := store.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Body(id); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("read without the key: %v", err)
	}
	ro.Close()
	s, err = store.OpenSealed(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, err := s.Body(id); err != nil || !bytes.Equal(b, sealedBody(1)) {
		t.Fatalf("after reopening: %v %q", err, b)
	}
}

func TestSealPlainSealsAnOlderStoreInPlace(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir) // as 0.1.0 wrote it: in clear
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := 0; i < 120; i++ {
		id, err := enqueue(s, env("dupont"), sealedBody(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s.Close()
	// What 0.1.0 purged: freed, not zeroed (it had no secure_delete).
	db, err := sql.Open("sqlite", filepath.Join(dir, "sesam-relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA secure_delete = 0; INSERT INTO bodies(data) VALUES (?); DELETE FROM bodies WHERE id = last_insert_rowid(); PRAGMA wal_checkpoint(TRUNCATE)", []byte(strings.Repeat("purged "+nir+" ", 2000))); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if !bytes.Contains(onDisk(t, dir), []byte("purged "+nir)) {
		t.Fatal("the test's plain store holds no purged NIR: it proves nothing")
	}
	k := newKeys(t)
	s, err = store.OpenSealed(dir, k)
	if err != nil {
		t.Fatal(err)
	}
	// 120 bodies; their 120 Subjects and their 120 "accepted" events.
	n, fields, damaged, err := s.Reseal(ctx)
	if err != nil || n != 120 || fields != 240 || damaged != 0 {
		t.Fatalf("sealed %d bodies, %d fields (%d damaged): %v", n, fields, damaged, err)
	}
	if n, f, _, _ := s.Reseal(ctx); n != 0 || f != 0 {
		t.Fatalf("sealed %d again", n)
	}
	for i, id := range ids {
		if b, err := s.Body(id); err != nil || !bytes.Equal(b, sealedBody(i)) {
			t.Fatalf("body %d after sealing: %v", id, err)
		}
	}
	s.Close()
	mustNotHold(t, dir)
}

func TestADamagedBodyIsReportedAlone(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenSealed(dir, newKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := enqueue(s, env("dupont"), sealedBody(1))
	b, _ := enqueue(s, env("dupont"), sealedBody(2))
	db, err := sql.Open("sqlite", filepath.Join(dir, "sesam-relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Flip one byte in the middle of the first body's ciphertext.
	var data []byte
	var bid int64
	if err := db.QueryRow("SELECT b.id, b.data FROM bodies b JOIN messages m ON m.body_id = b.id WHERE m.id = ?", a).Scan(&bid, &data); err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if _, err := db.Exec("UPDATE bodies SET data = ? WHERE id = ?", data, bid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Body(a); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("a damaged body: %v", err)
	}
	if got, err := s.Body(b); err != nil || !bytes.Equal(got, sealedBody(2)) {
		t.Fatalf("the other body: %v", err)
	}
}

// The body key is derived from the OpenPGP key: the same after the key is
// written to its file and read back (the next start), not after another
// key, and a body moved beside another key's name does not open.
func TestTheBodyKeyIsTheSameAfterTheKeyFileIsReadBack(t *testing.T) {
	k := newKeys(t)
	s, err := store.OpenSealed(t.TempDir(), k)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sealed, name, err := store.Seal(s, sealedBody(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.Bytes(k.Read)
	if err != nil {
		t.Fatal(err)
	}
	back, err := keys.Parse(b, "test")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := store.OpenSealed(t.TempDir(), back)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, err := store.Unseal(s2, sealed, name); err != nil || !bytes.Equal(got, sealedBody(1)) {
		t.Fatalf("with the key read back: %v", err)
	}
	other := newKeys(t)
	both := &store.Keys{Write: other.Write, Read: openpgp.EntityList{other.Write, k.Write}}
	s3, _ := store.OpenSealed(t.TempDir(), both)
	defer s3.Close()
	if _, err := store.Unseal(s3, sealed, store.KeyName(other.Write)); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("a body under another key's name: %v", err)
	}
}

// A body sealed by this version, committed with its key, still opens: the
// body key's derivation and the format may not change under a store.
func TestABodySealedByFormat1StillOpens(t *testing.T) {
	b, err := os.ReadFile("testdata/sealed-v1/store-key")
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.Parse(b, "testdata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile("testdata/sealed-v1/body")
	name, _ := os.ReadFile("testdata/sealed-v1/key-name")
	s, err := store.OpenSealed(t.TempDir(), k)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := store.Unseal(s, body, string(name))
	if err != nil || string(got) != "Subject: fixture\r\n\r\nNIR 284057512345678\r\n" {
		t.Fatalf("%v %q", err, got)
	}
}
