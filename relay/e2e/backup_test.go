package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// uidls is what the billing software's login sees by POP3: each UIDL with
// its message, compared byte for byte across a restore.
func (r *relay) uidls() map[string]string {
	r.t.Helper()
	got := map[string]string{}
	res := r.poplib(pyArgs{"mode": "stls"})
	for i, m := range res.Messages {
		if f := strings.Fields(res.UIDL[min(i, len(res.UIDL)-1)]); len(f) == 2 && i < len(res.UIDL) {
			got[f[1]] = string(m.Raw)
		}
	}
	return got
}

// The SD card dies: a backup made while the relay works (submissions
// during the snapshot) brings back, on a fresh install, the same mail
// under the same UIDLs, the same lots and the waiting queue; a restore
// over a store that holds mail is refused; a backup killed before its
// end leaves no file under its name.
func TestBackupUnderLoadRestoresOnAFreshInstall(t *testing.T) {
	imapP := imapProvider(t)
	imapP.Deliver("INBOX", patientMail("retour sauvegarde"))
	prov := newProvider(t)
	r := newRelay(t, prov, opts{imap: imapP.Addr()})
	now := time.Now().In(sesam.Paris())
	submitLot(t, r, sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 3, At: now, Seq: 1})
	waitFor(t, 10*time.Second, "the return fetched", func() bool { return r.holds("<retour-sauvegarde@billing.test>") })
	prov.Off()
	submitOne(t, r) // waits in the queue

	recovery := filepath.Join(t.TempDir(), "recovery.asc")
	if out, err := runBinary(r, "keys", "recovery", "--out", recovery); err != nil || !strings.Contains(out, "USB stick") {
		t.Fatalf("keys recovery: %v\n%s", err, out)
	}
	backupFile := filepath.Join(t.TempDir(), "box.pgp")
	// Submissions during the snapshot.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.python(pyArgs{"count": 30, "threads": 3, "prefix": "pendant"}) }()
	out, err := runBinary(r, "backup", "--to", backupFile)
	wg.Wait()
	if err != nil || !strings.Contains(out, "backup written") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if filesHolding(t, filepath.Dir(backupFile)) != nil {
		t.Fatal("the backup file holds the patient's data in clear")
	}
	st := r.status()
	if st.LastBackup == nil || st.LastBackup.File != backupFile || strings.Contains(strings.Join(st.Weaknesses, "\n"), "no backup") {
		t.Fatalf("status after a backup: %+v %q", st.LastBackup, st.Weaknesses)
	}
	wantUIDLs, wantLots := r.uidls(), r.lots().Lots
	if len(wantUIDLs) == 0 {
		t.Fatal("the billing software sees no message: the test proves nothing")
	}
	r.stop()

	// A backup killed before its end: nothing under its name.
	killed := filepath.Join(filepath.Dir(backupFile), "killed.pgp")
	cmd := exec.Command(binary, "--config", r.cfgPath, "backup", "--to", killed)
	cmd.Env = append(os.Environ(), "SESAM_RELAY_TEST_DIE_BACKUP=1")
	if err := cmd.Run(); err == nil {
		t.Fatal("the backup was not stopped half-way")
	}
	if _, err := os.Stat(killed); err == nil {
		t.Fatal("a backup killed half-way left a file under its final name")
	}
	// What it left in the state folder (a copy of the store) goes with the
	// next backup.
	if out, err := runBinary(r, "backup", "--to", filepath.Join(t.TempDir(), "next.pgp")); err != nil {
		t.Fatalf("the backup after a killed one: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(r.stateDir, "backup-*")); len(left) > 0 {
		t.Fatalf("the killed backup's copy of the store is still there: %v", left)
	}

	// A fresh install (its own store and key), stopped, then the restore.
	fresh := newRelay(t, newProvider(t), opts{})
	fresh.stop()
	if out, err := runBinary(fresh, "restore", backupFile, "--recovery-key", filepath.Join(r.dir, "keys", "recovery.pub")); err == nil || !strings.Contains(out, "public half") {
		t.Fatalf("a restore given the recovery key's public half: %v\n%s", err, out)
	}
	// A restore killed once the store is in place: the mail that was
	// waiting is already held (a lot must not leave twice); a second
	// restore, told to replace it, completes.
	cmd = exec.Command(binary, "--config", fresh.cfgPath, "restore", backupFile, "--recovery-key", recovery)
	cmd.Env = append(os.Environ(), "SESAM_RELAY_TEST_DIE_RESTORE=1")
	if err := cmd.Run(); err == nil {
		t.Fatal("the restore was not stopped half-way")
	}
	waiting, err := exec.Command("sqlite3", filepath.Join(fresh.stateDir, "sesam-relay.db"), "SELECT count(*) FROM messages WHERE state IN ('queued', 'deferred', 'sending')").CombinedOutput()
	if err != nil || strings.TrimSpace(string(waiting)) != "0" {
		t.Fatalf("after a killed restore, mail ready to leave: %s %v", waiting, err)
	}
	if out, err := runBinary(fresh, "restore", backupFile, "--recovery-key", recovery); err == nil || !strings.Contains(out, "already holds mail") {
		t.Fatalf("a restore over the killed one's store without --force: %v\n%s", err, out)
	}
	out, err = runBinary(fresh, "restore", backupFile, "--recovery-key", recovery, "--force")
	if left, _ := filepath.Glob(filepath.Join(fresh.stateDir, "restore-*")); len(left) > 0 {
		t.Fatalf("a restore's copy of the store is left in the state folder: %v", left)
	}
	if err != nil || !strings.Contains(out, "restored the backup") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := runBinary(fresh, "restore", backupFile, "--recovery-key", recovery); err == nil || !strings.Contains(out, "already holds mail") {
		t.Fatalf("a second restore over the restored mail: %v\n%s", err, out)
	}
	fresh.start()
	got := fresh.uidls()
	for u, m := range wantUIDLs {
		if got[u] != m {
			t.Fatalf("UIDL %s is not the same message after the restore (%d UIDLs, %d before)", u, len(got), len(wantUIDLs))
		}
	}
	gotLots := fresh.lots().Lots
	if len(gotLots) != len(wantLots) || len(gotLots) == 0 {
		t.Fatalf("lots after the restore: %d, before %d", len(gotLots), len(wantLots))
	}
	for i := range wantLots {
		if gotLots[i].Stamp != wantLots[i].Stamp || gotLots[i].State != wantLots[i].State {
			t.Fatalf("lot %d: %+v, before %+v", i, gotLots[i], wantLots[i])
		}
	}
	// What was waiting is held as uncertain: it may have left since the
	// backup, and a lot must not reach the fund twice.
	q := fresh.queue()
	i := slices.IndexFunc(q, func(m store.Message) bool { return strings.HasPrefix(m.Subject, "lot m") })
	if i < 0 || q[i].State != store.Held || !q[i].Uncertain() || !strings.Contains(q[i].HoldReason, "restored from the backup") {
		t.Fatalf("the waiting mail after the restore: %+v", q)
	}
	if !strings.Contains(out, "were waiting when the backup was made: they are held") {
		t.Fatalf("restore did not say it held the waiting mail:\n%s", out)
	}
	// The next backups go to the same recovery key.
	if out, err := runBinary(fresh, "backup", "--to", filepath.Join(t.TempDir(), "after.pgp")); err != nil {
		t.Fatalf("a backup after the restore: %v\n%s", err, out)
	}
}

// In [backup] folder, keep counts this box's backups only: the newest are
// kept, the one just written always, another box's never touched.
func TestBackupFolderKeepsTheNewestOfThisBoxOnly(t *testing.T) {
	folder := t.TempDir()
	r := newRelay(t, newProvider(t), opts{top: fmt.Sprintf("[backup]\nfolder = %q\nkeep = 2", folder)})
	if out, err := runBinary(r, "keys", "recovery", "--out", filepath.Join(t.TempDir(), "rk.asc")); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	other := filepath.Join(folder, "sesam-relay-backup-another.box-20200101-000000.pgp")
	os.WriteFile(other, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(folder, "sesam-relay-backup-relais.test-20200101-000000.pgp.partial"), []byte("x"), 0o600)
	var names []string
	for i := 0; i < 3; i++ {
		out, err := runBinary(r, "backup", "--json")
		if err != nil {
			t.Fatalf("backup %d: %v\n%s", i, err, out)
		}
		var v struct{ File string }
		json.Unmarshal([]byte(out), &v)
		names = append(names, v.File)
		time.Sleep(1100 * time.Millisecond) // the names have the second
	}
	left, _ := filepath.Glob(filepath.Join(folder, "*"))
	want := []string{other, names[1], names[2]}
	slices.Sort(want)
	slices.Sort(left)
	if !slices.Equal(left, want) {
		t.Fatalf("left in the folder: %v, want %v", left, want)
	}
}
