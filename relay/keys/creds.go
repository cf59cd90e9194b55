package keys

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// CredentialFile is where Seal puts the sealed key: beside the plain file.
func CredentialFile(plain string) string { return plain + ".cred" }

// ErrCredentialOnly: the key exists only as a systemd credential, which
// systemd decrypts for the service alone.
var ErrCredentialOnly = errors.New("the store key is sealed as a systemd credential, which systemd gives to the service only")

// unitDir is where Seal writes the service's drop-in. TEST-ONLY override:
// SESAM_RELAY_UNIT_DIR, so that tests do not write to /etc/systemd.
// UnitDir is where the service's drop-ins are written.
func UnitDir() string { return unitDir() }

func unitDir() string {
	if d := os.Getenv("SESAM_RELAY_UNIT_DIR"); d != "" {
		return d
	}
	return "/etc/systemd/system"
}

// DropIn is the drop-in that makes systemd give the credential to the
// service.
func DropIn() string {
	return filepath.Join(unitDir(), "sesam-relay.service.d", "50-store-key.conf")
}

// Seal turns the plain key file into a systemd credential: encrypted with
// systemd-creds to this machine's host key, and to its TPM2 when it has
// one (--with-key=auto), checked by decrypting it again; then it writes
// the drop-in that gives it to the service (LoadCredentialEncrypted=) and
// overwrites and removes the plain file. It says what protects the key.
func Seal(plain string) (string, error) {
	if abs, err := filepath.Abs(plain); err == nil {
		plain = abs // the drop-in needs an absolute path
	}
	b, err := os.ReadFile(plain)
	if err != nil {
		if _, cerr := os.Stat(CredentialFile(plain)); cerr == nil {
			return "", fmt.Errorf("%s is already sealed (%s)", plain, CredentialFile(plain))
		}
		return "", fmt.Errorf("reading the store key: %w", err)
	}
	if _, err := Parse(b, plain); err != nil {
		return "", err
	}
	if _, err := exec.LookPath("systemd-creds"); err != nil {
		return "", fmt.Errorf("systemd-creds is not installed: the key stays in the plain file %s", plain)
	}
	cred := CredentialFile(plain)
	if err := credential(cred, CredentialName, b, DropIn(), "the store key"); err != nil {
		return "", err
	}
	if err := shred(plain); err != nil {
		return "", err
	}
	return fmt.Sprintf("the store key is now the systemd credential %s, sealed to %s; the service gets it through %s (systemctl daemon-reload, then restart the service)", cred, sealedTo(), DropIn()), nil
}

// credential seals data as the systemd credential name in the file cred
// and writes the drop-in that gives it to the service.
func credential(cred, name string, data []byte, dropIn, what string) error {
	if err := writeCredential(cred, name, data); err != nil {
		return fmt.Errorf("%w: the plain file is kept", err)
	}
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		return err
	}
	unit := fmt.Sprintf("# Written by sesam-relay: %s, decrypted by systemd for the service.\n[Service]\nLoadCredentialEncrypted=%s:%s\n", what, name, cred)
	return os.WriteFile(dropIn, []byte(unit), 0o644)
}

// shred overwrites a plain secret, then removes it: on a flash card the
// overwrite is a best effort (README, "What is encrypted"). A file that is
// not there is fine.
func shred(plain string) error {
	fi, err := os.Stat(plain)
	if err != nil {
		return nil
	}
	if f, err := os.OpenFile(plain, os.O_WRONLY, 0); err == nil {
		f.Write(make([]byte, fi.Size()))
		f.Sync()
		f.Close()
	}
	return os.Remove(plain)
}

// sealedTo says what systemd-creds sealed a credential to here.
func sealedTo() string {
	if out, _ := exec.Command("systemd-creds", "has-tpm2").Output(); bytes.HasPrefix(bytes.TrimSpace(out), []byte("yes")) {
		return "this machine's TPM2 and its host key"
	}
	return "this machine's host key (/var/lib/systemd/credential.secret)"
}

// CanSeal says whether secrets can be sealed as systemd credentials here:
// systemd-creds is installed and systemd runs the services (or a test
// points the drop-ins elsewhere, SESAM_RELAY_UNIT_DIR).
func CanSeal() bool {
	if _, err := exec.LookPath("systemd-creds"); err != nil {
		return false
	}
	if os.Getenv("SESAM_RELAY_UNIT_DIR") != "" {
		return true
	}
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

// SealSecret keeps a provider password: sealed as the systemd credential
// name beside plain (plain.cred), given to the service by a drop-in, the
// plain file overwritten and removed; or, where secrets cannot be sealed
// (CanSeal), in the plain file, mode 0600, its owner kept. It says where.
func SealSecret(plain, name string, secret []byte) (string, error) {
	if fi, err := os.Stat(filepath.Dir(plain)); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the folder of password_file %s does not exist: check the path in the config (the package makes /etc/sesam-relay/secrets)", plain)
	}
	if !CanSeal() {
		if err := writeSecret(plain, secret); err != nil {
			return "", fmt.Errorf("writing %s: %w", plain, err)
		}
		return fmt.Sprintf("written in clear to %s (mode 0640, the folder's group: the service's): systemd-creds cannot seal it on this machine", plain), nil
	}
	cred := CredentialFile(plain)
	dropIn := filepath.Join(unitDir(), "sesam-relay.service.d", "50-"+name+".conf")
	if err := credential(cred, name, secret, dropIn, "a provider password"); err != nil {
		return "", err
	}
	if err := shred(plain); err != nil {
		return "", err
	}
	return fmt.Sprintf("sealed as the systemd credential %s (%s), to %s; the service gets it through %s at its next start", name, cred, sealedTo(), dropIn), nil
}

// Rotate adds a new key, which writes from the next start on, and keeps
// the old ones for reading (the service then re-encrypts the stored bodies
// to the new one, in the background: store.Reseal). It works on the plain
// file, or inside the systemd credential: decrypted and sealed again with
// systemd-creds through pipes, never written in clear (as root).
func Rotate(plain, hostname string) (string, error) {
	cred := CredentialFile(plain)
	_, perr := os.Stat(plain)
	_, cerr := os.Stat(cred)
	var b []byte
	var err error
	switch {
	case perr == nil:
		b, err = readKeyFile(plain)
	case cerr == nil:
		b, err = exec.Command("systemd-creds", "decrypt", "--name="+CredentialName, cred, "-").Output()
		if err != nil {
			err = fmt.Errorf("systemd-creds decrypt %s: %v (run as root)", cred, err)
		}
	default:
		return "", fmt.Errorf("%w: no %s nor %s", ErrNone, plain, cred)
	}
	if err != nil {
		return "", err
	}
	old, err := Parse(b, plain)
	if err != nil {
		return "", err
	}
	e, err := New(hostname)
	if err != nil {
		return "", err
	}
	// The new key first: on a creation time tie (the same second), the
	// first in the file writes.
	list := append([]*openpgp.Entity{e}, old.Read...)
	if perr == nil {
		if err := Save(plain, list); err != nil {
			return "", err
		}
	} else {
		nb, err := Bytes(list)
		if err != nil {
			return "", err
		}
		if err := writeCredential(cred, CredentialName, nb); err != nil {
			return "", fmt.Errorf("%w: the old one is kept", err)
		}
	}
	return fmt.Sprintf("new store key %s added (%d kept for reading); restart the service: new mail is then encrypted to it, and the stored mail re-encrypted in the background", store.KeyName(e), len(old.Read)), nil
}

// ReadAny reads the keys wherever they are, for the root CLI (backup): the
// plain file, or the credential decrypted with systemd-creds.
//
// The credential comes first, as for the service: a stale plain copy left
// beside it is not what the service uses.
func ReadAny(plain string) ([]byte, error) {
	cred := CredentialFile(plain)
	if _, err := os.Stat(cred); err != nil {
		_, perr := os.Stat(plain)
		switch {
		case perr == nil:
			return readKeyFile(plain)
		case errors.Is(err, fs.ErrPermission) || errors.Is(perr, fs.ErrPermission):
			return nil, fmt.Errorf("the store key (%s) cannot be read by this user: run this as root (sudo)", plain)
		}
		return nil, fmt.Errorf("%w: no %s nor %s", ErrNone, plain, cred)
	}
	b, err := exec.Command("systemd-creds", "decrypt", "--name="+CredentialName, cred, "-").Output()
	if err != nil {
		return nil, fmt.Errorf("systemd-creds decrypt %s: %v (run as root)", cred, err)
	}
	return b, nil
}

// writeCredential seals keys (or a secret) with systemd-creds into cred as
// the credential name (mode 0600),
// through a pipe (the keys are never written in clear), checks that it
// decrypts to them, and only then puts it in place of the old one.
func writeCredential(cred, name string, keys []byte) error {
	tmp := cred + ".new"
	enc := exec.Command("systemd-creds", "encrypt", "--name="+name, "--with-key=auto", "-", tmp)
	enc.Stdin = bytes.NewReader(keys)
	if out, err := enc.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("systemd-creds encrypt: %v: %s", err, strings.TrimSpace(string(out)))
	}
	back, err := exec.Command("systemd-creds", "decrypt", "--name="+name, tmp, "-").Output()
	if err != nil || !bytes.Equal(back, keys) {
		os.Remove(tmp)
		return fmt.Errorf("the credential does not decrypt to what was sealed (%v)", err)
	}
	if err := os.Chmod(tmp, 0o600); err == nil {
		err = os.Rename(tmp, cred)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
