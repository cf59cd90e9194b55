package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Snapshot writes a consistent copy of the store's database to dest, a
// file that must not exist, while the daemon runs and writes (VACUUM INTO
// through a read-only connection: one read transaction, so the copy is
// the store at one instant). Its bodies are sealed as in the store.
func Snapshot(dir, dest string) error {
	db, err := ping(dsn(filepath.Join(dir, dbFile), true))
	if err != nil {
		return fmt.Errorf("reading the store in %s: %w", dir, err)
	}
	defer db.Close()
	if _, err := db.Exec("VACUUM INTO ?", dest); err != nil {
		os.Remove(dest)
		return fmt.Errorf("copying the store: %w", err)
	}
	return nil
}

// SnapshotCounts says what a snapshot (or a store's database file) holds.
type SnapshotCounts struct {
	Messages int `json:"messages"`
	Mailbox  int `json:"mailbox"`
	Lots     int `json:"lots"`
}

// CountSnapshot counts a database file's queued mail, mailbox and lots.
func CountSnapshot(path string) (SnapshotCounts, error) {
	var c SnapshotCounts
	db, err := ping(dsn(path, true))
	if err != nil {
		return c, err
	}
	defer db.Close()
	for q, n := range map[string]*int{"SELECT COUNT(*) FROM messages": &c.Messages, "SELECT COUNT(*) FROM mailbox": &c.Mailbox, "SELECT COUNT(*) FROM lots": &c.Lots} {
		if err := db.QueryRow(q).Scan(n); err != nil {
			return c, err
		}
	}
	return c, nil
}

// ErrNotEmpty: a restore would replace mail the store already holds.
var ErrNotEmpty = errors.New("the store already holds mail")

// Restore puts the database file src in place as the store of dir (the
// daemon stopped). A store that already holds mail is kept unless force:
// a restore must not silently replace the mail that came since.
func Restore(dir, src string, force bool) error {
	path := filepath.Join(dir, dbFile)
	if _, err := os.Stat(path); err == nil && !force {
		c, err := CountSnapshot(path)
		if err != nil || c.Messages+c.Mailbox > 0 {
			return fmt.Errorf("%w in %s (%d queued, %d in the mailboxes): restore into a fresh install, or give --force to replace it", ErrNotEmpty, dir, c.Messages, c.Mailbox)
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	// Streamed, not read whole: a store of years is larger than a Pi's memory.
	tmp := path + ".restore"
	os.Remove(tmp) // a restore killed before
	err := copyFile(src, tmp)
	if err == nil {
		err = os.Chmod(tmp, fileMode)
	}
	if err == nil {
		var f *os.File
		if f, err = os.Open(tmp); err == nil {
			err = f.Sync()
			f.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	for _, suffix := range []string{"-wal", "-shm"} { // the old store's log must not be replayed on the new file
		os.Remove(path + suffix)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// BackupRecord is the last good backup, for status.
type BackupRecord struct {
	At   time.Time `json:"at"`
	File string    `json:"file"`
	Size int64     `json:"size"`
}

const backupFile = "last-backup.json"

// RecordBackup notes a good backup in the state folder.
// It is the state folder's owner's and readable by its group whatever the
// writer's umask and user (backup runs as root, the daemon reads it).
func RecordBackup(dir string, r BackupRecord) error {
	b, _ := json.Marshal(r)
	tmp := filepath.Join(dir, backupFile+".new")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o640); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := os.Chown(tmp, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
	}
	return os.Rename(tmp, filepath.Join(dir, backupFile))
}

// LastBackup reads what RecordBackup noted; ok is false when no backup was
// ever made.
func LastBackup(dir string) (r BackupRecord, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, backupFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	return r, true, json.Unmarshal(b, &r)
}

// CheckKeys says whether keys open every sealed body of the store in dir
// (read only): backup checks the keys it packs.
func CheckKeys(dir string, keys *Keys) error {
	db, err := ping(dsn(filepath.Join(dir, dbFile), true))
	if err != nil {
		return err
	}
	defer db.Close()
	return keysFit(db, keys, dir)
}

// restoredPrefix starts the hold reason of mail that was waiting when the
// backup was made: an uncertain hold, so that release asks --confirm.
const restoredPrefix = uncertainPrefix + "restored from the backup of "

// HoldRestored holds, in a store just restored, every mail that was
// waiting or being sent when the backup was made: it may have left since
// (a lot would reach the fund twice), and only a person who looked in the
// sent folder can tell. It returns how many it held.
func HoldRestored(dir string, keys *Keys, made time.Time) (int, error) {
	s, err := OpenSealed(dir, keys)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	why := restoredPrefix + made.Local().Format("2006-01-02 15:04") + ": it may have been sent since; check the sent folder"
	now := s.now()
	n := 0
	err = s.writeWait(context.Background(), func(tx *sql.Tx) error {
		var err error
		n, err = s.holdUncertain(tx, now, []State{Queued, Deferred, Sending}, why, "held after a restore: "+why)
		return err
	})
	if err == nil {
		// Restore then moves the database file alone: nothing may stay
		// in the write-ahead log.
		_, err = s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	return n, err
}

// LockSnapshots serializes the backups and restores of the store in dir
// (an exclusive lock on a file there), and lets the holder remove what a
// killed one left: a copy of the store in a backup-* or restore-* folder,
// which would fill an SD card day after day and keep mail past retention.
// It fails at once when another backup or restore holds the lock.
func LockSnapshots(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "snapshot.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another backup or restore of %s is running: wait for it to end", dir)
	}
	for _, pat := range []string{"backup-*", "restore-*"} {
		old, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, d := range old {
			if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
				os.RemoveAll(d)
			}
		}
	}
	return func() { f.Close() }, nil
}
