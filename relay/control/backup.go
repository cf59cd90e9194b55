package control

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/backup"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// dieRestoring: TEST-ONLY, SESAM_RELAY_TEST_DIE_RESTORE stops a restore
// dead once the store is in place, before the keys are: a kill there.
var dieRestoring = os.Getenv("SESAM_RELAY_TEST_DIE_RESTORE") != ""

// backupPrefix starts the name of every backup written to [backup] folder.
const backupPrefix = "sesam-relay-backup-"

// Backup is `sesam-relay backup [--to FILE]`: a consistent snapshot while
// the daemon runs, encrypted to the practice's recovery key and to the
// store key, written whole or not at all; in [backup] folder the oldest
// beyond keep are removed. Run as root (the daily timer does).
func Backup(cfg *config.Config, to string, version string, asJSON bool, stdout, stderr io.Writer) int {
	fail := func(err error) int { fmt.Fprintf(stderr, "sesam-relay backup: %v\n", err); return 1 }
	recovery, err := backup.ReadKey(cfg.Backup.RecoveryKey)
	if err != nil {
		return fail(fmt.Errorf("no recovery key (%v): make one with `sesam-relay keys recovery --out FILE` and keep FILE off the box", err))
	}
	ring, err := keys.ReadAny(cfg.StoreKey)
	if err != nil {
		return fail(err)
	}
	k, err := keys.Parse(ring, cfg.StoreKey)
	if err != nil {
		return fail(err)
	}
	// A backup whose keys do not open its own mail would restore nothing.
	if err := store.CheckKeys(cfg.StateDir, k); err != nil {
		return fail(fmt.Errorf("the keys read from %s do not open this store, so a backup with them could not be restored: %w", cfg.StoreKey, err))
	}
	if to == "" {
		if cfg.Backup.Folder == "" {
			return fail(fmt.Errorf("say where: --to FILE, or [backup] folder in the config"))
		}
		to = filepath.Join(cfg.Backup.Folder, backupPrefix+cfg.Hostname+"-"+time.Now().UTC().Format("20060102-150405")+".pgp")
	}
	if abs, err := filepath.Abs(to); err == nil {
		to = abs // status names it from anywhere
	}
	unlock, err := store.LockSnapshots(cfg.StateDir)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	m := backup.Manifest{Hostname: cfg.Hostname, Made: time.Now().UTC(), Version: version}
	written, err := backup.Write(to, cfg.StateDir, cfg.StateDir, ring, m, append(openpgp.EntityList{}, append(recovery, k.Write)...))
	if err != nil {
		return fail(err)
	}
	if err := store.RecordBackup(cfg.StateDir, store.BackupRecord{At: m.Made, File: to, Size: written}); err != nil {
		fmt.Fprintf(stderr, "sesam-relay backup: written, but not noted for status: %v\n", err)
	}
	removed := prune(cfg, to)
	if asJSON {
		PrintJSON(stdout, map[string]any{"file": to, "size": written, "removed": removed})
		return 0
	}
	fmt.Fprintf(stdout, "backup written: %s (%s), encrypted to the recovery key %s and the store key\n", to, size(uint64(written)), store.KeyName(recovery[0]))
	for _, r := range removed {
		fmt.Fprintf(stdout, "older backup removed (keep = %d): %s\n", cfg.Backup.Keep, r)
	}
	return 0
}

// prune removes, in [backup] folder, this box's backups beyond keep,
// oldest first, and what a killed backup left there (.partial). Another
// box's backups in a shared folder are not its to remove, and the one just
// written never goes.
func prune(cfg *config.Config, written string) []string {
	folder, _ := filepath.Abs(cfg.Backup.Folder)
	if cfg.Backup.Folder == "" || filepath.Dir(written) != folder {
		return nil
	}
	mine := filepath.Join(folder, backupPrefix+cfg.Hostname+"-")
	stale, _ := filepath.Glob(mine + "*.pgp.partial")
	for _, p := range stale {
		os.Remove(p)
	}
	all, _ := filepath.Glob(mine + "*.pgp")
	all = slices.DeleteFunc(all, func(p string) bool { return p == written || len(p) != len(written) })
	sort.Strings(all) // one host, one name length: the names sort by date
	var removed []string
	for len(all) > max(cfg.Backup.Keep, 1)-1 {
		if os.Remove(all[0]) == nil {
			removed = append(removed, all[0])
		}
		all = all[1:]
	}
	return removed
}

// Restore is `sesam-relay restore FILE --recovery-key KEY [--force]`, the
// daemon stopped: the queue, mailboxes, views, UIDLs and ledger of the
// backup become the store of this box, and its store key joins this box's
// keys. A store that holds mail is kept unless --force.
func Restore(cfg *config.Config, file, recoveryKey string, force, asJSON bool, stdout, stderr io.Writer) int {
	fail := func(err error) int { fmt.Fprintf(stderr, "sesam-relay restore: %v\n", err); return 1 }
	if recoveryKey == "" {
		return fail(fmt.Errorf("give the recovery key the practice kept: --recovery-key FILE"))
	}
	var st Status
	if err := Call(cfg.Listen.Control, Request{Cmd: "status"}, &st); err == nil && st.Running {
		return fail(fmt.Errorf("the relay is running: stop it first (systemctl stop sesam-relay)"))
	}
	rk, err := backup.ReadKey(recoveryKey)
	if err != nil {
		return fail(err)
	}
	if rk[0].PrivateKey == nil {
		return fail(fmt.Errorf("%s is the public half of the recovery key (the box keeps it to encrypt backups): give the private half the practice kept off the box (the file `keys recovery --out` wrote)", recoveryKey))
	}
	f, err := os.Open(file)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fail(err)
	}
	unlock, err := store.LockSnapshots(cfg.StateDir)
	if err != nil {
		return fail(err)
	}
	defer unlock()
	tmp, err := os.MkdirTemp(cfg.StateDir, "restore-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	c, err := backup.Read(f, rk, tmp)
	if err != nil {
		return fail(err)
	}
	restored, err := keys.Parse(c.Keyring, file)
	if err != nil {
		return fail(err)
	}
	// The keys: the backup's, and this box's own (which sealed nothing that
	// stays: its store is replaced), in the plain file; sealed again below
	// where systemd runs.
	list := restored.Read
	if b, err := keys.ReadAny(cfg.StoreKey); err == nil {
		if mine, err := keys.Parse(b, cfg.StoreKey); err == nil {
			list = append(list, mine.Read...)
		}
	}
	// The mail that was waiting is held in the copy, before it takes the
	// store's place: a restore killed at any point never leaves a lot
	// ready to reach the fund a second time.
	held, err := store.HoldRestored(filepath.Dir(c.DB), restored, c.Manifest.Made)
	if err != nil {
		return fail(fmt.Errorf("holding the mail that was waiting in the backup: %w; nothing was restored", err))
	}
	if err := store.Restore(cfg.StateDir, c.DB, force); err != nil {
		return fail(err)
	}
	if dieRestoring {
		os.Exit(3)
	}
	if err := keys.Save(cfg.StoreKey, keys.Unique(list)); err != nil {
		return fail(err)
	}
	// The next backups go to the same recovery key the practice kept.
	var pub strings.Builder
	if err := backup.Armored(&pub, rk[0], false); err == nil {
		os.MkdirAll(filepath.Dir(cfg.Backup.RecoveryKey), 0o700)
		os.WriteFile(cfg.Backup.RecoveryKey, []byte(pub.String()), 0o644)
	}
	owner(cfg.StateDir, filepath.Join(cfg.StateDir, "sesam-relay.db"))
	owner(filepath.Dir(cfg.StoreKey), cfg.StoreKey)
	sealed := ""
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		os.Remove(keys.CredentialFile(cfg.StoreKey))
		if said, err := keys.Seal(cfg.StoreKey); err == nil {
			sealed = "; " + said
		} else {
			sealed = "; the store key stays a plain file: " + err.Error()
		}
	}
	if asJSON {
		PrintJSON(stdout, map[string]any{"manifest": c.Manifest, "store_key": restored.Write.PrimaryKey.KeyIdString()})
		return 0
	}
	// What the restored store holds, counted in it: not what the backup's
	// manifest claims.
	n, err := store.CountSnapshot(filepath.Join(cfg.StateDir, "sesam-relay.db"))
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "restored the backup of %s made %s: %d mails in the queue's history, %d in the mailboxes, %d lots%s\n",
		c.Manifest.Hostname, c.Manifest.Made.Local().Format("2006-01-02 15:04"), n.Messages, n.Mailbox, n.Lots, sealed)
	if held > 0 {
		fmt.Fprintf(stdout, "%d mails were waiting when the backup was made: they are held, since they may have left since (a lot would reach the fund twice). Check the practitioner's sent folder, then `sesam-relay queue release ID --confirm` or `queue drop ID`.\n", held)
	}
	fmt.Fprintln(stdout, "start the relay: systemctl start sesam-relay")
	return 0
}

// owner gives path the owner of dir (restore runs as root; the service
// must own its files).
func owner(dir, path string) {
	fi, err := os.Stat(dir)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		os.Chown(path, int(st.Uid), int(st.Gid))
	}
}

// KeysRecovery is `sesam-relay keys recovery --out FILE`: the practice's
// recovery key. Its private half goes to FILE, for the practice to print
// or keep on a USB stick off the box; its public half stays on the box,
// where backups are encrypted to it.
func KeysRecovery(cfg *config.Config, out string, force bool, stdout, stderr io.Writer) int {
	fail := func(err error) int { fmt.Fprintf(stderr, "sesam-relay keys recovery: %v\n", err); return 1 }
	if out == "" {
		return fail(fmt.Errorf("say where the private half goes: --out FILE (a USB stick, then keep it off the box)"))
	}
	e, err := keys.New(cfg.Hostname + " recovery")
	if err != nil {
		return fail(err)
	}
	if _, err := os.Stat(cfg.Backup.RecoveryKey); err == nil && !force {
		return fail(fmt.Errorf("%s exists: backups are encrypted to that recovery key; give --force to replace it (the practice's copy of the old one then opens only the old backups)", cfg.Backup.RecoveryKey))
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(err)
	}
	if err := backup.Armored(f, e, true); err != nil {
		f.Close()
		os.Remove(out)
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	var pub strings.Builder
	backup.Armored(&pub, e, false)
	os.MkdirAll(filepath.Dir(cfg.Backup.RecoveryKey), 0o700)
	if err := os.WriteFile(cfg.Backup.RecoveryKey, []byte(pub.String()), 0o644); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "recovery key %s: its private half is in %s — print it or keep it on a USB stick, away from this box; without it no backup can be restored. Backups are encrypted to %s.\n",
		store.KeyName(e), out, cfg.Backup.RecoveryKey)
	return 0
}
