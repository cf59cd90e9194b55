// Package backup writes and reads the practice's backups: one file, an
// OpenPGP message encrypted to the practice's recovery key (whose private
// half is kept off the box, printed or on a USB stick) and to the
// appliance's store key, holding a consistent snapshot of the store and
// the store key itself — so that a fresh box, given the recovery key,
// gets back the queue, the mailboxes, the views, the UIDLs and the ledger.
package backup

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Manifest says what a backup holds.
type Manifest struct {
	Format   int                  `json:"format"` // 1
	Hostname string               `json:"hostname"`
	Made     time.Time            `json:"made"`
	Version  string               `json:"version"`
	Counts   store.SnapshotCounts `json:"counts"`
}

const (
	manifestName = "manifest.json"
	dbName       = "sesam-relay.db"
	keyName      = "store-key"
	// maxMember bounds what one member of an archive may unpack to when
	// restoring: a backup is read with the recovery key, but a damaged or
	// forged one must not fill the disk.
	maxMember = 8 << 30
)

var config = &packet.Config{DefaultCipher: packet.CipherAES256, DefaultCompressionAlgo: packet.CompressionNone}

// Write writes a backup to path: a snapshot of the store in stateDir
// (taken in tmpDir, removed after), the keyring, and the manifest, all
// encrypted to the recipients. It is written as path.partial, synced, then
// renamed: a kill leaves no half file under the final name.
func Write(path, stateDir, tmpDir string, keyring []byte, m Manifest, to []*openpgp.Entity) (int64, error) {
	snapDir, err := os.MkdirTemp(tmpDir, "backup-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(snapDir)
	snap := filepath.Join(snapDir, dbName)
	if err := store.Snapshot(stateDir, snap); err != nil {
		return 0, err
	}
	if m.Counts, err = store.CountSnapshot(snap); err != nil {
		return 0, err
	}
	m.Format = 1
	partial := path + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("writing the backup: %w", err)
	}
	fail := func(err error) (int64, error) {
		f.Close()
		os.Remove(partial)
		return 0, fmt.Errorf("writing the backup: %w", err)
	}
	enc, err := openpgp.Encrypt(f, to, nil, &openpgp.FileHints{IsBinary: true}, config)
	if err != nil {
		return fail(err)
	}
	tw := tar.NewWriter(enc)
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := member(tw, manifestName, bytes.NewReader(mb), int64(len(mb))); err != nil {
		return fail(err)
	}
	db, err := os.Open(snap)
	if err != nil {
		return fail(err)
	}
	fi, _ := db.Stat()
	err = member(tw, dbName, db, fi.Size())
	db.Close()
	if err != nil {
		return fail(err)
	}
	if err := member(tw, keyName, bytes.NewReader(keyring), int64(len(keyring))); err != nil {
		return fail(err)
	}
	if err := tw.Close(); err != nil {
		return fail(err)
	}
	if dieWriting != "" {
		os.Exit(3) // TEST-ONLY: a kill before the file is whole (relay/e2e)
	}
	if err := enc.Close(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	if err := f.Close(); err != nil {
		os.Remove(partial)
		return 0, err
	}
	if err := os.Rename(partial, path); err != nil {
		os.Remove(partial)
		return 0, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return size, nil
}

func member(tw *tar.Writer, name string, r io.Reader, size int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := io.Copy(tw, r)
	return err
}

// Contents is what Read unpacked: the manifest, the snapshot's path (in
// the folder Read was given) and the keyring.
type Contents struct {
	Manifest Manifest
	DB       string
	Keyring  []byte
}

// ErrNotBackup: the file is not a backup these keys open.
var ErrNotBackup = errors.New("not a sesam-relay backup that this key opens")

// Read opens a backup with the recovery key (or the store key) and
// unpacks it into dir. The integrity check covers the whole file: a
// damaged backup is refused, never half restored.
func Read(r io.Reader, keys openpgp.EntityList, dir string) (Contents, error) {
	var c Contents
	md, err := openpgp.ReadMessage(r, keys, nil, config)
	if err != nil {
		return c, fmt.Errorf("%w (%v)", ErrNotBackup, err)
	}
	tr := tar.NewReader(md.UnverifiedBody)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c, fmt.Errorf("%w: damaged (%v)", ErrNotBackup, err)
		}
		if seen[h.Name] || h.Size < 0 || h.Size > maxMember {
			return c, fmt.Errorf("%w: unexpected member %q", ErrNotBackup, h.Name)
		}
		seen[h.Name] = true
		switch h.Name {
		case manifestName:
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil || json.Unmarshal(b, &c.Manifest) != nil {
				return c, fmt.Errorf("%w: its manifest does not read", ErrNotBackup)
			}
		case keyName:
			if c.Keyring, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return c, fmt.Errorf("%w: damaged (%v)", ErrNotBackup, err)
			}
		case dbName:
			c.DB = filepath.Join(dir, dbName)
			f, err := os.OpenFile(c.DB, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return c, err
			}
			_, err = io.Copy(f, io.LimitReader(tr, h.Size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return c, fmt.Errorf("%w: damaged (%v)", ErrNotBackup, err)
			}
		default:
			return c, fmt.Errorf("%w: unexpected member %q", ErrNotBackup, h.Name)
		}
	}
	// Reading to the end is what checks the integrity (MDC).
	if _, err := io.Copy(io.Discard, md.UnverifiedBody); err != nil {
		return c, fmt.Errorf("%w: damaged (%v)", ErrNotBackup, err)
	}
	if c.Manifest.Format != 1 || c.DB == "" || len(c.Keyring) == 0 {
		return c, fmt.Errorf("%w: incomplete", ErrNotBackup)
	}
	return c, nil
}

// ReadKey reads an OpenPGP key file, armored (as printed for the
// practice) or binary.
func ReadKey(path string) (openpgp.EntityList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b)); err == nil {
		return list, nil
	}
	list, err := openpgp.ReadKeyRing(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s is not an OpenPGP key: %w", path, err)
	}
	return list, nil
}

// Armored writes e armored: its private half when private (the recovery
// key the practice keeps), else its public half (what the box keeps).
func Armored(w io.Writer, e *openpgp.Entity, private bool) error {
	typ := openpgp.PublicKeyType
	if private {
		typ = openpgp.PrivateKeyType
	}
	aw, err := armor.Encode(w, typ, map[string]string{"Comment": "sesam-relay recovery key"})
	if err != nil {
		return err
	}
	if private {
		err = e.SerializePrivate(aw, nil)
	} else {
		err = e.Serialize(aw)
	}
	if err != nil {
		return err
	}
	return aw.Close()
}

// dieWriting is a TEST-ONLY hook for relay/e2e, never set in production:
// the process exits with the backup written but not closed, as a kill would.
var dieWriting = os.Getenv("SESAM_RELAY_TEST_DIE_BACKUP")
