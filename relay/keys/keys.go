// Package keys is the appliance's key: the OpenPGP key every stored body
// is sealed to (store.Keys). It makes it, reads it where systemd put it
// ($CREDENTIALS_DIRECTORY, a credential sealed with systemd-creds) or from
// a plain file, and keeps older keys for reading after a rotation.
package keys

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// CredentialName is the name of the systemd credential that holds the
// keys (LoadCredentialEncrypted=store-key:…).
const CredentialName = "store-key"

// Source says where the keys were read: a systemd credential (sealed on
// disk to the host key, or the TPM2) or a plain file (readable by anyone
// who copies the disk: status warns).
type Source struct {
	Path       string
	Credential bool
}

func (s Source) String() string {
	if s.Credential {
		return "the systemd credential " + s.Path
	}
	return "the plain file " + s.Path
}

// New makes a fresh key: Ed25519 for its identity, with an X25519
// encryption subkey, as gpg makes them, so that a practice's technician can
// open a body with standard tools if ever needed.
func New(hostname string) (*openpgp.Entity, error) {
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519, Time: time.Now}
	e, err := openpgp.NewEntity("sesam-relay store "+hostname, time.Now().UTC().Format("2006-01-02"), "", cfg)
	if err != nil {
		return nil, fmt.Errorf("making the store key: %w", err)
	}
	return e, nil
}

// Find reads the keys from the systemd credential when the service was
// started with one, else from the plain file path. ErrNone: neither exists.
func Find(path string) (*store.Keys, Source, error) {
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		p := filepath.Join(dir, CredentialName)
		if b, err := os.ReadFile(p); err == nil {
			// systemd's own folder, the service's alone: no mode to check.
			k, err := Parse(b, p)
			return k, Source{Path: p, Credential: true}, err
		}
	}
	src := Source{Path: path}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(CredentialFile(path)); err == nil {
			// Never a new key beside a sealed one: what it sealed would be
			// unreadable to the service.
			return nil, Source{Path: CredentialFile(path), Credential: true}, fmt.Errorf("%w (%s): start it with systemctl", ErrCredentialOnly, CredentialFile(path))
		}
		return nil, src, fmt.Errorf("%w: looked for the credential %s in $CREDENTIALS_DIRECTORY and for %s", ErrNone, CredentialName, path)
	}
	k, err := Load(path)
	return k, src, err
}

// ErrNone is Find's answer when there is no key at all.
var ErrNone = errors.New("no store key")

// Load reads a keyring: the newest key writes, all of them read.
func Load(path string) (*store.Keys, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, path)
}

// readKeyFile reads a plain key file, refused when others than its owner
// may read it (as ssh refuses a private key): whoever could has the mail.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the store key: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("the store key %s may be read by others than its owner (mode %04o): whoever can read it can read the stored mail; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return io.ReadAll(f)
}

// Parse reads a keyring's bytes (binary OpenPGP private keys, one after
// the other); path names it in errors.
func Parse(b []byte, path string) (*store.Keys, error) {
	list, err := openpgp.ReadKeyRing(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("reading the store key %s: %w", path, err)
	}
	k := &store.Keys{Read: list}
	for _, e := range list {
		if e.PrivateKey == nil {
			return nil, fmt.Errorf("the store key %s holds a public key only", path)
		}
		// The newest writes; on a tie (keys made the same second), the
		// first in the file, where Rotate puts the new one.
		if k.Write == nil || e.PrimaryKey.CreationTime.After(k.Write.PrimaryKey.CreationTime) {
			k.Write = e
		}
	}
	if k.Write == nil {
		return nil, fmt.Errorf("the store key %s holds no key", path)
	}
	return k, nil
}

// Bytes serializes a keyring, private keys included, for Save or for
// systemd-creds.
func Bytes(list openpgp.EntityList) ([]byte, error) {
	var b bytes.Buffer
	for _, e := range list {
		if err := e.SerializePrivate(&b, nil); err != nil {
			return nil, fmt.Errorf("writing the store key: %w", err)
		}
	}
	return b.Bytes(), nil
}

// Save writes a keyring to path, mode 0600, atomically: a kill leaves the
// old file or the new one, never half of one.
func Save(path string, list openpgp.EntityList) error {
	b, err := Bytes(list)
	if err != nil {
		return err
	}
	if err := writePrivate(path, b); err != nil {
		return fmt.Errorf("writing the store key %s: %w", path, err)
	}
	return nil
}

// writePrivate writes a secret to path, mode 0600, atomically, keeping the
// file's owner (a rotation by root keeps the service's file the
// service's; a new file takes its folder's).
func writePrivate(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFile(path, b, 0o600, ownerOf(path))
}

// writeSecret writes a provider password in clear where systemd-creds
// cannot seal it: mode 0640, owned by root and the folder's group (the
// package's /etc/sesam-relay/secrets is root:sesam-relay), so the service
// reads it and nobody else; an existing file keeps its owner.
func writeSecret(path string, b []byte) error {
	owner := ownerOf(path)
	if _, err := os.Stat(path); err != nil && owner != nil {
		owner[0] = os.Geteuid()
	}
	return writeFile(path, b, 0o640, owner)
}

// writeFile puts b at path whole or not at all (a file beside, synced,
// renamed), with mode and, when given, owner (uid, gid).
func writeFile(path string, b []byte, mode os.FileMode, owner []int) error {
	tmp := path + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // whatever the umask
		f.Close()
		os.Remove(tmp)
		return err
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && owner != nil {
		err = os.Chown(tmp, owner[0], owner[1])
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ownerOf is the uid and gid of path, or of its folder when path does not
// exist yet; nil when neither can be read.
func ownerOf(path string) []int {
	for _, p := range []string{path, filepath.Dir(path)} {
		if fi, err := os.Stat(p); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				return []int{int(st.Uid), int(st.Gid)}
			}
		}
	}
	return nil
}

// Unique leaves each key once (a restore merges keyrings).
func Unique(list openpgp.EntityList) openpgp.EntityList {
	seen := map[string]bool{}
	var out openpgp.EntityList
	for _, e := range list {
		if n := store.KeyName(e); !seen[n] {
			seen[n] = true
			out = append(out, e)
		}
	}
	return out
}
