package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/blakesmith/ar"
)

// An APT repository of the packages, as an IT provider serves it from any
// web server to the practices it looks after (unattended-upgrades then
// installs a fix everywhere):
//
//	dists/stable/{Release,InRelease,Release.gpg}
//	dists/stable/main/binary-ARCH/{Packages,Packages.gz}
//	pool/main/s/sesam-relay/*.deb
//	sesam-relay-archive-keyring.asc, sesam-relay.list
//
// Each publication adds its packages to the pool and lists every package
// there: older versions stay installable.

const suite, component = "stable", "main"

// newRepoKey writes a new signing key to path (its private half, armored,
// 0600: the maintainer keeps it) and returns its public half, armored.
func newRepoKey(path, name string) ([]byte, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s exists: a repository's key is made once (keep it)", path)
	}
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 3072, DefaultHash: crypto.SHA512, Time: time.Now}
	e, err := openpgp.NewEntity(name, "APT repository signing key", "", cfg)
	if err != nil {
		return nil, err
	}
	var priv bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, cfg); err != nil {
		return nil, err
	}
	w.Close()
	if err := os.WriteFile(path, priv.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return publicKey(e)
}

func publicKey(e *openpgp.Entity) ([]byte, error) {
	var pub bytes.Buffer
	w, _ := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		return nil, err
	}
	w.Close()
	return pub.Bytes(), nil
}

func readRepoKey(path string) (*openpgp.Entity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the repository's signing key: %w (make one with -new-repo-key FILE)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %04o): whoever read it can sign updates for every practice; chmod 600 it, and make a new key if others may have copied it", path, fi.Mode().Perm())
	}
	el, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil || len(el) != 1 || el[0].PrivateKey == nil {
		return nil, fmt.Errorf("%s is not a private OpenPGP key made by -new-repo-key", path)
	}
	return el[0], nil
}

// publish copies debs into the repository's pool, then writes its indexes
// and signs them with key. url is where the IT provider serves dir.
//
// It refuses what would strand the boxes already using the repository: a
// key other than the one they trust, a package of a version already
// published but with other bytes (apt would never fetch it again, and
// caches would report a hash mismatch). An empty url keeps the one the
// repository's sources line has.
func publish(dir string, debs []string, key *openpgp.Entity, url string) error {
	if err := sameKey(dir, key); err != nil {
		return err
	}
	if url == "" {
		line, err := os.ReadFile(filepath.Join(dir, "sesam-relay.list"))
		if f := strings.Fields(string(line)); err != nil || len(f) < 3 {
			return fmt.Errorf("no -repo-url given, and %s has no sources line to take it from: give the address the folder is served at", dir)
		} else {
			url = f[len(f)-3]
		}
	}
	pool := filepath.Join(dir, "pool", component, "s", "sesam-relay")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return err
	}
	for _, d := range debs {
		b, err := os.ReadFile(d)
		if err != nil {
			return err
		}
		dst := filepath.Join(pool, filepath.Base(d))
		if old, err := os.ReadFile(dst); err == nil {
			if !bytes.Equal(old, b) {
				return fmt.Errorf("%s is already published with other contents: boxes that installed it would never get these; raise the version (changelog.yml) and publish again", filepath.Base(d))
			}
			continue
		}
		if err := writeAtomic(dst, b); err != nil {
			return err
		}
	}
	all, _ := filepath.Glob(filepath.Join(pool, "*.deb"))
	sort.Strings(all)
	byArch := map[string][]string{"amd64": nil, "arm64": nil, "armhf": nil}
	for _, d := range all {
		stanza, arch, err := packagesStanza(dir, d)
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		byArch[arch] = append(byArch[arch], stanza)
	}
	var archs, indexes []string
	for a := range byArch {
		archs = append(archs, a)
	}
	sort.Strings(archs)
	for _, a := range archs {
		sub := filepath.Join(component, "binary-"+a)
		if err := os.MkdirAll(filepath.Join(dir, "dists", suite, sub), 0o755); err != nil {
			return err
		}
		plain := []byte(strings.Join(byArch[a], "\n"))
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(plain)
		zw.Close()
		for name, b := range map[string][]byte{"Packages": plain, "Packages.gz": gz.Bytes()} {
			if err := writeAtomic(filepath.Join(dir, "dists", suite, sub, name), b); err != nil {
				return err
			}
			indexes = append(indexes, filepath.Join(sub, name))
		}
	}
	sort.Strings(indexes)
	release := releaseFile(filepath.Join(dir, "dists", suite), archs, indexes)
	return sign(dir, release, key, url)
}

// sameKey refuses a key other than the one the repository was first
// signed with: the boxes trust only that one (signed-by), and would stop
// updating without a word.
func sameKey(dir string, key *openpgp.Entity) error {
	f, err := os.Open(filepath.Join(dir, "sesam-relay-archive-keyring.asc"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new repository
	}
	if err != nil {
		return err
	}
	defer f.Close()
	el, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil || len(el) == 0 {
		return fmt.Errorf("%s: the repository's public key cannot be read: %v", dir, err)
	}
	if el[0].PrimaryKey.Fingerprint == nil || !bytes.Equal(el[0].PrimaryKey.Fingerprint, key.PrimaryKey.Fingerprint) {
		return fmt.Errorf("%s is signed with the key %X, not with this one (%X): the practices' boxes trust only the first; publish with that key", dir, el[0].PrimaryKey.Fingerprint, key.PrimaryKey.Fingerprint)
	}
	return nil
}

// writeAtomic writes a file under a temporary name, then renames it.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// packagesStanza is a package's entry in Packages: its control file, then
// where it lies in the pool and its checksums.
func packagesStanza(dir, deb string) (string, string, error) {
	b, err := os.ReadFile(deb)
	if err != nil {
		return "", "", err
	}
	control, err := debControl(b)
	if err != nil {
		return "", "", err
	}
	rel, _ := filepath.Rel(dir, deb)
	var arch string
	for _, l := range strings.Split(control, "\n") {
		if v, ok := strings.CutPrefix(l, "Architecture: "); ok {
			arch = strings.TrimSpace(v)
		}
	}
	if arch == "" {
		return "", "", errors.New("its control file names no Architecture")
	}
	s := strings.TrimRight(control, "\n") + "\n" +
		fmt.Sprintf("Filename: %s\nSize: %d\nMD5sum: %x\nSHA1: %x\nSHA256: %x\n", filepath.ToSlash(rel), len(b), md5.Sum(b), sha1.Sum(b), sha256.Sum256(b))
	return s, arch, nil
}

// debControl reads the control file out of a .deb (an ar archive holding
// control.tar.gz).
func debControl(deb []byte) (string, error) {
	r := ar.NewReader(bytes.NewReader(deb))
	for {
		h, err := r.Next()
		if err != nil {
			return "", fmt.Errorf("no control.tar.gz in the package: %v", err)
		}
		if strings.TrimRight(h.Name, "/") != "control.tar.gz" {
			continue
		}
		zr, err := gzip.NewReader(r)
		if err != nil {
			return "", err
		}
		tr := tar.NewReader(zr)
		for {
			th, err := tr.Next()
			if err != nil {
				return "", fmt.Errorf("no control file in control.tar.gz: %v", err)
			}
			if strings.TrimPrefix(th.Name, "./") == "control" {
				b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
				return string(b), err
			}
		}
	}
}

func releaseFile(dist string, archs, indexes []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Origin: sesam-relay\nLabel: sesam-relay\nSuite: %s\nCodename: %s\n", suite, suite)
	fmt.Fprintf(&b, "Date: %s\nArchitectures: %s\nComponents: %s\n", time.Now().UTC().Format(time.RFC1123), strings.Join(archs, " "), component)
	fmt.Fprintf(&b, "Description: sesam-relay, the practice's mail relay for SESAM-Vitale\n")
	for _, sum := range []struct {
		name string
		f    func([]byte) string
	}{
		{"MD5Sum", func(b []byte) string { return fmt.Sprintf("%x", md5.Sum(b)) }},
		{"SHA256", func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }},
	} {
		fmt.Fprintf(&b, "%s:\n", sum.name)
		for _, ix := range indexes {
			data, _ := os.ReadFile(filepath.Join(dist, ix))
			fmt.Fprintf(&b, " %s %d %s\n", sum.f(data), len(data), filepath.ToSlash(ix))
		}
	}
	return []byte(b.String())
}

// sign writes Release, InRelease (clear-signed) and Release.gpg (detached),
// the public key and the sources line beside the repository.
func sign(dir string, release []byte, key *openpgp.Entity, url string) error {
	dist := filepath.Join(dir, "dists", suite)
	cfg := &packet.Config{DefaultHash: crypto.SHA512}
	var in bytes.Buffer
	w, err := clearsign.Encode(&in, key.PrivateKey, cfg)
	if err != nil {
		return err
	}
	w.Write(release)
	if err := w.Close(); err != nil {
		return err
	}
	var det bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&det, key, bytes.NewReader(release), cfg); err != nil {
		return err
	}
	pub, err := publicKey(key)
	if err != nil {
		return err
	}
	list := fmt.Sprintf("deb [signed-by=/usr/share/keyrings/sesam-relay-archive-keyring.asc] %s %s %s\n", url, suite, component)
	for name, b := range map[string][]byte{
		filepath.Join(dist, "Release"): release, filepath.Join(dist, "InRelease"): in.Bytes(), filepath.Join(dist, "Release.gpg"): det.Bytes(),
		filepath.Join(dir, "sesam-relay-archive-keyring.asc"): pub, filepath.Join(dir, "sesam-relay.list"): []byte(list),
	} {
		if err := writeAtomic(name, b); err != nil {
			return err
		}
	}
	return nil
}
