package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The IT provider's path: a signing key made once, the packages published
// into an APT repository folder, a fresh Debian 12 that trusts only that
// key (signed-by) installs from it, gets the next version by apt-get
// upgrade with its account kept, and refuses the repository once its
// InRelease is tampered with.
func TestAPTRepositoryInstallsUpgradesAndRefusesATamperedIndex(t *testing.T) {
	c := newChroot(t)
	work := t.TempDir()
	keyFile := filepath.Join(work, "repo.key")
	if _, err := newRepoKey(keyFile, "sesam-relay packages"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the private key is %v", fi.Mode())
	}
	if _, err := newRepoKey(keyFile, "again"); err == nil {
		t.Fatal("a second key overwrote the first")
	}
	key, err := readRepoKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(work, "repo")
	serve := func() { // the web server's copy, here a file: source
		os.RemoveAll(c.path("srv/repo"))
		if out, err := exec.Command("cp", "-a", repo, c.path("srv/repo")).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	if err := publish(repo, []string{debs["amd64"]}, key, "file:/srv/repo"); err != nil {
		t.Fatal(err)
	}
	list := string(mustRead(t, filepath.Join(repo, "sesam-relay.list")))
	if list != "deb [signed-by=/usr/share/keyrings/sesam-relay-archive-keyring.asc] file:/srv/repo stable main\n" {
		t.Fatalf("sources line %q", list)
	}
	serve()
	os.WriteFile(c.path("usr/share/keyrings/sesam-relay-archive-keyring.asc"), mustRead(t, filepath.Join(repo, "sesam-relay-archive-keyring.asc")), 0o644)
	os.WriteFile(c.path("etc/apt/sources.list.d/sesam-relay.list"), []byte(list), 0o644)
	c.run("apt-get", "update")
	c.run("apt-get", "install", "-y", "--no-install-recommends", "sesam-relay")
	if v := strings.TrimSpace(c.run("dpkg-query", "-W", "-f", "${Version}", "sesam-relay")); !strings.HasPrefix(v, version) {
		t.Fatalf("installed %q from the repository, want %s", v, version)
	}
	// An account, as the installer adds it (no network here: --no-check).
	cmd := exec.Command("chroot", c.root, "sh", "-c", "printf 'provider-pw\\nbilling-pw\\n' | sesam-relay account add dupont --address jean.dupont@laposte.net --no-check")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "accounts.d/dupont.toml") {
		t.Fatalf("account add: %v\n%s", err, out)
	}

	// The next version, published: apt-get upgrade installs it and keeps the account.
	if err := publish(repo, []string{debs["newer"]}, key, "file:/srv/repo"); err != nil {
		t.Fatal(err)
	}
	serve()
	c.run("apt-get", "update")
	c.run("apt-get", "upgrade", "-y")
	if v := strings.TrimSpace(c.run("dpkg-query", "-W", "-f", "${Version}", "sesam-relay")); !strings.HasPrefix(v, newer) {
		t.Fatalf("after apt-get upgrade: %q, want %s", v, newer)
	}
	if out := c.run("sesam-relay", "account", "list"); !strings.Contains(out, "dupont  jean.dupont@laposte.net  via smtps://smtp.laposte.net:465") {
		t.Fatalf("the account after the upgrade:\n%s", out)
	}
	if pkgs := string(mustRead(t, filepath.Join(repo, "dists/stable/main/binary-amd64/Packages"))); strings.Count(pkgs, "Package: sesam-relay") != 2 {
		t.Fatalf("both versions stay listed:\n%s", pkgs)
	}

	// A tampered index is refused.
	in := filepath.Join(repo, "dists/stable/InRelease")
	os.WriteFile(in, []byte(strings.Replace(string(mustRead(t, in)), "Origin: sesam-relay", "Origin: sesam-re1ay", 1)), 0o644)
	os.Remove(filepath.Join(repo, "dists/stable/Release.gpg"))
	serve()
	cmd = exec.Command("chroot", c.root, "apt-get", "update")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	out, err := cmd.CombinedOutput()
	if err == nil && !strings.Contains(string(out), "signature") {
		t.Fatalf("apt accepted a tampered InRelease:\n%s", out)
	}
	if !strings.Contains(string(out), "BADSIG") && !strings.Contains(string(out), "not signed") && !strings.Contains(string(out), "invalid") {
		t.Fatalf("apt's refusal does not name the signature:\n%s", out)
	}
}
