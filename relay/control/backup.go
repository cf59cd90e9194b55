package control

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	if to == "" {
		if cfg.Backup.Folder == "" {
			return fail(fmt.Errorf("say where: --to FILE, or [backup] folder in the config"))
		}
		to = filepath.Join(cfg.Backup.Folder, backupPrefix+cfg.Hostname+"-"+time.Now().UTC().Format("20060102-150405")+".pgp")
	}
	m := backup.Manifest{Hostname: cfg.Hostname, Made: time.Now().UTC(), Version: version}
	size, err := backup.Write(to, cfg.StateDir, cfg.StateDir, ring, m, append(openpgp.EntityList{}, append(recovery, k.Write)...))
	if err != nil {
		return fail(err)
	}
	if err := store.RecordBackup(cfg.StateDir, store.BackupRecord{At: m.Made, File: to, Size: size}); err != nil {
		fmt.Fprintf(stderr, "sesam-relay backup: written, but not noted for status: %v\n", err)
	}
	removed := prune(cfg, to)
	if asJSON {
		PrintJSON(stdout, map[string]any{"file": to, "size": size, "removed": removed})
		return 0
	}
	fmt.Fprintf(stdout, "backup written: %s (%s), encrypted to the recovery key %s and the store key\n", to, size2(size), store.KeyName(recovery[0]))
	for _, r := range removed {
		fmt.Fprintf(stdout, "older backup removed (keep = %d): %s\n", cfg.Backup.Keep, r)
	}
	return 0
}

func size2(n int64) string { return size(uint64(n)) }

// prune removes, in [backup] folder, the backups beyond keep, oldest first.
func prune(cfg *config.Config, written string) []string {
	if cfg.Backup.Folder == "" || filepath.Dir(written) != filepath.Clean(cfg.Backup.Folder) {
		return nil
	}
	all, _ := filepath.Glob(filepath.Join(cfg.Backup.Folder, backupPrefix+"*.pgp"))
	sort.Strings(all) // the names sort by date
	var removed []string
	for len(all) > max(cfg.Backup.Keep, 1) {
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
	f, err := os.Open(file)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fail(err)
	}
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
	if err := store.Restore(cfg.StateDir, c.DB, force); err != nil {
		return fail(err)
	}
	if err := keys.Save(cfg.StoreKey, list); err != nil {
		return fail(err)
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
	n := c.Manifest.Counts
	fmt.Fprintf(stdout, "restored the backup of %s made %s: %d queued, %d in the mailboxes, %d lots%s\nstart the relay: systemctl start sesam-relay\n",
		c.Manifest.Hostname, c.Manifest.Made.Local().Format("2006-01-02 15:04"), n.Messages, n.Mailbox, n.Lots, sealed)
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
func KeysRecovery(cfg *config.Config, out string, stdout, stderr io.Writer) int {
	fail := func(err error) int { fmt.Fprintf(stderr, "sesam-relay keys recovery: %v\n", err); return 1 }
	if out == "" {
		return fail(fmt.Errorf("say where the private half goes: --out FILE (a USB stick, then keep it off the box)"))
	}
	e, err := keys.New(cfg.Hostname + " recovery")
	if err != nil {
		return fail(err)
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
