package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Health data a stolen disk must not give away.
const (
	patientName = "LEFEBVRE-ROUSSEAU Marguerite"
	patientNIR  = "287117512345694"
)

func patientMail(subject string) []byte {
	return []byte(fmt.Sprintf("From: <jean.dupont@laposte.net>\r\nTo: <secretariat@cabinet-voisin.test>\r\nSubject: %s\r\nMessage-ID: <%s@billing.test>\r\n\r\nPatiente %s, NIR %s, soins du 03/12.\r\n",
		subject, strings.ReplaceAll(subject, " ", "-"), patientName, patientNIR))
}

// filesHolding lists the files under dir whose bytes hold one of secrets
// (the patient's name and NIR when none is given).
func filesHolding(t *testing.T, dir string, secrets ...string) []string {
	t.Helper()
	if len(secrets) == 0 {
		secrets = []string{patientName, patientNIR}
	}
	var found []string
	for _, d := range []string{dir} {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					found = append(found, p+" ("+s+")")
				}
			}
			return nil
		})
	}
	return found
}

// The stolen-disk test: after mail with a patient's name and NIR and a
// lot's stamp went through the relay — a letter sent, one bounced, a
// return fetched, a lot sent and acknowledged, a lot held by the guard
// with its care sheet in clear — a copy of the state folder and of the
// config folder without the key holds none of them: not in the bytes
// (grep -a), not in what strings(1) finds, not in SQLite's own dump.
func TestAStolenDiskHoldsNoBodyInClear(t *testing.T) {
	imapP := imapProvider(t)
	ret := patientMail("retour NOEMIE")
	imapP.Deliver("INBOX", ret)
	prov := newProvider(t)
	r := newRelay(t, prov, opts{imap: imapP.Addr()})
	p := filepath.Join(t.TempDir(), "sent.eml")
	os.WriteFile(p, patientMail("lettre envoyee"), 0o600)
	if res := r.python(pyArgs{"file": p}); res[0].Code != 250 {
		t.Fatalf("%+v", res)
	}
	waitFor(t, 10*time.Second, "the first mail sent", func() bool { return len(prov.Mails()) == 1 })
	stamp := submitLot(t, r, sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 3, At: time.Now(), Seq: 4})
	imapP.Deliver("INBOX", sesam.ARLMail{Subject: "ARL positif " + stamp, To: sender, Stamp: stamp, Outcome: sesam.ARLPositiveText(stamp)}.Mail())
	waitFor(t, 15*time.Second, "the lot acknowledged", func() bool {
		l := r.lots().Lots
		return len(l) == 1 && l[0].State == "acknowledged"
	})
	// A lot whose care sheet travels outside S/MIME: held, in the store.
	heldStamp := "2026120309150054321"
	os.WriteFile(p, []byte("From: <"+sender+">\r\nTo: <"+fund+">\r\nSubject: IR/12345678901234/"+heldStamp+"/00001\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/EDI-consent\r\n"+
		"Content-Description: IRIS/B2\r\n\r\n103 "+patientName+" "+patientNIR+"\r\n--b--\r\n"), 0o600)
	if res := r.python(pyArgs{"file": p, "to": fund}); res[0].Code != 250 {
		t.Fatalf("%+v", res)
	}
	waitFor(t, 10*time.Second, "the lot in clear held", func() bool { return r.states()[store.Held] == 1 })
	prov.SetMode(demo.PermFail)
	os.WriteFile(p, patientMail("lettre refusee"), 0o600)
	if res := r.python(pyArgs{"file": p}); res[0].Code != 250 {
		t.Fatalf("%+v", res)
	}
	waitFor(t, 10*time.Second, "the bounce", func() bool { return r.states()[store.Bounced] == 1 })
	waitFor(t, 10*time.Second, "the return fetched", func() bool { return r.holds("<retour-NOEMIE@billing.test>") })
	// The billing software gets the return as it was.
	pop := r.poplib(pyArgs{"mode": "stls"})
	found := false
	for _, m := range pop.Messages {
		found = found || bytes.Equal(m.Raw, ret)
	}
	if !found {
		t.Fatalf("the return is not served byte for byte: %d messages", len(pop.Messages))
	}
	r.stop()
	secrets := []string{patientName, patientNIR, stamp, heldStamp}
	// The thief's copy: the state folder and the config folder, less the key.
	copyDir := t.TempDir()
	for _, d := range []string{r.stateDir, r.dir} {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || strings.Contains(p, string(filepath.Separator)+"keys"+string(filepath.Separator)) {
				return nil
			}
			b, _ := os.ReadFile(p)
			os.WriteFile(filepath.Join(copyDir, strings.ReplaceAll(p, string(filepath.Separator), "_")), b, 0o600)
			return nil
		})
	}
	if got := filesHolding(t, copyDir, secrets...); len(got) > 0 {
		t.Fatalf("the stolen copy holds health or lot data in clear: %v", got)
	}
	var strs []byte
	filepath.Walk(copyDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out, err := exec.Command("strings", "-a", "-n", "6", p).Output()
			if err != nil {
				t.Fatalf("strings %s: %v", p, err)
			}
			strs = append(strs, out...)
		}
		return nil
	})
	dbCopy := filepath.Join(t.TempDir(), "stolen.db")
	b, _ := os.ReadFile(filepath.Join(r.stateDir, "sesam-relay.db"))
	os.WriteFile(dbCopy, b, 0o600)
	if wal, err := os.ReadFile(filepath.Join(r.stateDir, "sesam-relay.db-wal")); err == nil {
		os.WriteFile(dbCopy+"-wal", wal, 0o600)
	}
	dump, err := exec.Command("sqlite3", dbCopy, ".dump").Output()
	if err != nil || !bytes.Contains(dump, []byte("CREATE TABLE lots")) {
		t.Fatalf("sqlite3 .dump of the stolen store: %v\n%.300s", err, dump)
	}
	for _, sec := range secrets {
		for what, out := range map[string][]byte{"strings(1)": strs, "sqlite3 .dump": dump} {
			if bytes.Contains(out, []byte(sec)) {
				t.Fatalf("%s of the stolen copy shows %q", what, sec)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(r.dir, "keys", "store-key")); err != nil {
		t.Fatalf("no store key where the config says: %v", err)
	}
	// With its key the relay serves everything again, and knows its lots.
	r.start()
	found = false
	for _, m := range r.poplib(pyArgs{"mode": "stls"}).Messages {
		found = found || bytes.Equal(m.Raw, ret)
	}
	if !found {
		t.Fatal("after a restart the return is not served")
	}
	if l := r.lots().Lots; len(l) != 2 || l[0].Stamp != stamp || l[0].State != "acknowledged" || l[1].Stamp != heldStamp {
		t.Fatalf("after a restart, the ledger reads %+v", l)
	}
	if out, _ := r.cli("queue"); !strings.Contains(out, heldStamp) {
		t.Fatalf("after a restart, queue does not show the held lot's Subject:\n%s", out)
	}
}

// A relay whose store key is gone does not start, says which key and
// where it looked, and touches nothing.
func TestAMissingStoreKeyStopsTheRelayAndTouchesNothing(t *testing.T) {
	prov := newProvider(t)
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a delivery", func() bool { return len(prov.Mails()) == 1 })
	r.stop()
	key := filepath.Join(r.dir, "keys", "store-key")
	os.Rename(key, key+".away")
	before := onDiskSum(t, r.stateDir)
	out, err := runBinary(r, "serve")
	if err == nil || !strings.Contains(out, "encrypted") || !strings.Contains(out, key) {
		t.Fatalf("serve without its key: %v\n%s", err, out)
	}
	if onDiskSum(t, r.stateDir) != before {
		t.Fatal("the store changed though the relay did not start")
	}
	if _, err := os.Stat(key); err == nil {
		t.Fatal("a new key was made over an encrypted store")
	}
}

// runBinary runs the relay's binary with its config and args, bounded.
func runBinary(r *relay, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, append([]string{"--config", r.cfgPath}, args...)...).CombinedOutput()
	return string(out), err
}

// onDiskSum is a digest of every file under dir, names and bytes.
func onDiskSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			fmt.Fprintf(h, "%s %d\n", p, len(b))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

// A store written in clear by an older version is sealed in place at the
// first start; killed half-way, the next start goes on; every message is
// then served as it was, and nothing is left in clear on disk.
func TestAnOlderStoreIsSealedInPlaceAcrossAKill(t *testing.T) {
	r := newRelay(t, newProvider(t), opts{})
	r.stop()
	os.RemoveAll(r.stateDir)
	want := storeReturns(t, r.stateDir, nil, 120) // as 0.1.0 wrote them: no key, bodies in clear
	if len(filesHolding(t, r.stateDir)) == 0 {
		t.Fatal("the plain store holds no patient data: the test proves nothing")
	}
	cmd := exec.Command(binary, "--config", r.cfgPath, "serve")
	cmd.Env = append(os.Environ(), "SESAM_RELAY_TEST_DIE_SEALING=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("the relay was not stopped half-way through sealing: %v\n%s", err, out)
	}
	r.start()
	waitFor(t, 15*time.Second, "the rest sealed", func() bool { return strings.Contains(r.Log(), "are now encrypted to the current store key") })
	if !strings.Contains(r.Log(), "sealed=70") {
		t.Fatalf("want the 70 left after the kill sealed by the second start:\n%s", r.Log())
	}
	got := r.poplib(pyArgs{"mode": "stls"})
	if len(got.Messages) != len(want) {
		t.Fatalf("POP3 serves %d messages, want %d", len(got.Messages), len(want))
	}
	for i, m := range got.Messages {
		if !bytes.Equal(m.Raw, want[i]) {
			t.Fatalf("message %d changed by the sealing:\n%q\nwant\n%q", i+1, m.Raw, want[i])
		}
	}
	r.stop()
	if files := filesHolding(t, r.stateDir); len(files) > 0 {
		t.Fatalf("left in clear after sealing: %v", files)
	}
}

// keys seal moves the store key into a systemd credential (real
// systemd-creds); run by hand the relay then refuses to start rather than
// make a second key; given the credential as systemd gives it
// ($CREDENTIALS_DIRECTORY), it serves what it stored before.
func TestKeysSealMakesTheKeyASystemdCredential(t *testing.T) {
	need(t, "systemd-creds")
	imapP := imapProvider(t)
	ret := patientMail("retour avant scellement")
	imapP.Deliver("INBOX", ret)
	r := newRelay(t, newProvider(t), opts{imap: imapP.Addr()})
	waitFor(t, 10*time.Second, "the return fetched", func() bool { return r.holds("<retour-avant-scellement@billing.test>") })
	if st := r.status(); !strings.Contains(st.StoreKey, "plain file") || !strings.Contains(strings.Join(st.Weaknesses, "\n"), "store key is a plain file") {
		t.Fatalf("status with a plain key file: %q %q", st.StoreKey, st.Weaknesses)
	}
	r.stop()
	units := t.TempDir()
	os.Setenv("SESAM_RELAY_UNIT_DIR", units)
	defer os.Unsetenv("SESAM_RELAY_UNIT_DIR")
	out, err := runBinary(r, "keys", "seal")
	key := filepath.Join(r.dir, "keys", "store-key")
	if err != nil || !strings.Contains(out, "systemd credential") {
		t.Fatalf("keys seal: %v\n%s", err, out)
	}
	if _, err := os.Stat(key); err == nil {
		t.Fatal("the plain key file is still there")
	}
	dropIn, _ := os.ReadFile(filepath.Join(units, "sesam-relay.service.d", "50-store-key.conf"))
	if !strings.Contains(string(dropIn), "LoadCredentialEncrypted=store-key:"+key+".cred") {
		t.Fatalf("the drop-in: %q", dropIn)
	}
	if out, err := runBinary(r, "serve"); err == nil || !strings.Contains(out, "systemd credential") {
		t.Fatalf("serve by hand with a sealed key: %v\n%s", err, out)
	}
	if _, err := os.Stat(key); err == nil {
		t.Fatal("serve made a second key beside the sealed one")
	}
	// Rotating inside the credential: decrypted and sealed again, never
	// written in clear.
	if out, err := runBinary(r, "keys", "rotate"); err != nil || !strings.Contains(out, "1 kept for reading") {
		t.Fatalf("keys rotate on the credential: %v\n%s", err, out)
	}
	if _, err := os.Stat(key); err == nil {
		t.Fatal("rotating the credential wrote the keys in clear")
	}
	// What systemd does for LoadCredentialEncrypted=.
	creds := t.TempDir()
	if out, err := exec.Command("systemd-creds", "decrypt", "--name=store-key", key+".cred", filepath.Join(creds, "store-key")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-creds decrypt: %v %s", err, out)
	}
	r.env = append(r.env, "CREDENTIALS_DIRECTORY="+creds)
	r.start()
	if st := r.status(); !strings.Contains(st.StoreKey, "systemd credential") || strings.Contains(strings.Join(st.Weaknesses, "\n"), "store key") {
		t.Fatalf("status with the credential: %q %q", st.StoreKey, st.Weaknesses)
	}
	found := false
	for _, m := range r.poplib(pyArgs{"mode": "stls"}).Messages {
		found = found || bytes.Equal(m.Raw, ret)
	}
	if !found {
		t.Fatal("the return stored before sealing is not served")
	}
}

// keys rotate: a new key writes, the old one still reads; the stored mail
// is re-encrypted to the new key in the background, going on after a
// kill, and every message is then served as it was.
func TestKeysRotateReencryptsAcrossAKill(t *testing.T) {
	r := newRelay(t, newProvider(t), opts{})
	r.stop()
	keyFile := filepath.Join(r.dir, "keys", "store-key")
	k, err := keys.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	old := store.KeyName(k.Write)
	want := storeReturns(t, r.stateDir, k, 120)
	os.Chown(keyFile, 65534, 65534) // the service's file, as in the package
	out, err := runBinary(r, "keys", "rotate")
	if err != nil || !strings.Contains(out, "new store key") {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("keys rotate (as root) took the key file from the service: %v", err)
	}
	os.Chown(keyFile, os.Getuid(), os.Getgid())
	k2, err := keys.Load(keyFile)
	if err != nil || len(k2.Read) != 2 || store.KeyName(k2.Write) == old {
		t.Fatalf("after rotate: %v, %d keys, write key %s (old %s)", err, len(k2.Read), store.KeyName(k2.Write), old)
	}
	cmd := exec.Command(binary, "--config", r.cfgPath, "serve")
	cmd.Env = append(os.Environ(), "SESAM_RELAY_TEST_DIE_SEALING=1")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("the relay was not stopped half-way through re-encrypting:\n%s", out)
	}
	r.start()
	waitFor(t, 15*time.Second, "the rest re-encrypted", func() bool { return strings.Contains(r.Log(), "now encrypted to the current store key") })
	if !strings.Contains(r.Log(), "sealed=70") {
		t.Fatalf("want the 70 left after the kill re-encrypted by the second start:\n%s", r.Log())
	}
	got := r.poplib(pyArgs{"mode": "stls"})
	if len(got.Messages) != len(want) {
		t.Fatalf("POP3 serves %d messages, want %d", len(got.Messages), len(want))
	}
	for i, m := range got.Messages {
		if !bytes.Equal(m.Raw, want[i]) {
			t.Fatalf("message %d changed by the rotation", i+1)
		}
	}
	r.stop()
	// Every body is the new key's: the store opens with it alone.
	only := &store.Keys{Write: k2.Write, Read: openpgp.EntityList{k2.Write}}
	st, err := store.OpenSealed(r.stateDir, only)
	if err != nil {
		t.Fatalf("a body is still sealed to the old key: %v", err)
	}
	st.Close()
}

// A queued body damaged on disk is held for a technician, once: not
// picked again and again (the review saw 100,000 log lines in 25 s).
func TestADamagedQueuedBodyIsHeldNotRetriedInALoop(t *testing.T) {
	prov := newProvider(t)
	prov.Off()
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	r.stop()
	db, err := sql.Open("sqlite", filepath.Join(r.stateDir, "sesam-relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	var bid int64
	var data []byte
	if err := db.QueryRow("SELECT b.id, b.data FROM bodies b JOIN messages m ON m.body_id = b.id").Scan(&bid, &data); err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if _, err := db.Exec("UPDATE bodies SET data = ? WHERE id = ?", data, bid); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := prov.On(); err != nil {
		t.Fatal(err)
	}
	r.start()
	waitFor(t, 10*time.Second, "the damaged mail held", func() bool { return r.states()[store.Held] == 1 })
	m := only(t, r)
	if !strings.Contains(m.HoldReason, "damaged") {
		t.Fatalf("hold reason %q", m.HoldReason)
	}
	time.Sleep(time.Second)
	if n := strings.Count(r.Log(), "does not read"); n != 1 {
		t.Fatalf("the damaged body was tried %d times", n)
	}
}

// storeReturns writes n fetched returns with patient data straight into
// the store in dir (sealed to keys; nil: in clear, as 0.1.0 did), the
// relay stopped, and returns them in order.
func storeReturns(t *testing.T, dir string, keys *store.Keys, n int) [][]byte {
	t.Helper()
	st, err := store.OpenSealed(dir, keys)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var want [][]byte
	for i := 0; i < n; i++ {
		m := patientMail(fmt.Sprintf("retour %03d", i))
		if _, err := st.AddMail(context.Background(), "dupont", store.Origin{Kind: store.Fetched, Folder: "INBOX", UIDValidity: 7, UID: uint32(i + 1)}, m, nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	return want
}

// A store key that others may read is refused, as ssh refuses such a
// private key: whoever can read it can read the stored mail.
func TestAStoreKeyOthersMayReadIsRefused(t *testing.T) {
	r := newRelay(t, newProvider(t), opts{})
	r.stop()
	key := filepath.Join(r.dir, "keys", "store-key")
	os.Chmod(key, 0o644)
	out, err := runBinary(r, "serve")
	if err == nil || !strings.Contains(out, "chmod 600 "+key) {
		t.Fatalf("serve with a store key of mode 0644: %v\n%s", err, out)
	}
	if out, err := runBinary(r, "keys", "rotate"); err == nil || !strings.Contains(out, "mode 0644") {
		t.Fatalf("keys rotate with a store key of mode 0644: %v\n%s", err, out)
	}
	os.Chmod(key, 0o600)
	r.start()
}
