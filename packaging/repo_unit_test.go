package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What would strand the boxes already on a repository is refused: another
// key, a version published again with other bytes, a private key others
// can read; a later publication without -repo-url keeps the address.
func TestPublishRefusesWhatWouldStrandTheBoxes(t *testing.T) {
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	newRepoKey(keyA, "a")
	newRepoKey(keyB, "b")
	a, err := readRepoKey(keyA)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := readRepoKey(keyB)
	repo := filepath.Join(dir, "repo")
	if err := publish(repo, []string{debs["amd64"]}, a, ""); err == nil || !strings.Contains(err.Error(), "-repo-url") {
		t.Fatalf("a new repository without an address: %v", err)
	}
	if err := publish(repo, []string{debs["amd64"]}, a, "https://apt.example.fr/r"); err != nil {
		t.Fatal(err)
	}
	if err := publish(repo, []string{debs["amd64"]}, a, ""); err != nil {
		t.Fatalf("the same package again, same bytes: %v", err)
	}
	if list := string(mustRead(t, filepath.Join(repo, "sesam-relay.list"))); !strings.Contains(list, " https://apt.example.fr/r stable main") {
		t.Fatalf("the address was not kept: %q", list)
	}
	if err := publish(repo, []string{debs["newer"]}, b, ""); err == nil || !strings.Contains(err.Error(), "trust only the first") {
		t.Fatalf("another key: %v", err)
	}
	changed := filepath.Join(dir, filepath.Base(debs["amd64"]))
	os.WriteFile(changed, append(mustRead(t, debs["amd64"]), 0), 0o644)
	if err := publish(repo, []string{changed}, a, ""); err == nil || !strings.Contains(err.Error(), "already published with other contents") {
		t.Fatalf("a version again with other bytes: %v", err)
	}
	os.Chmod(keyA, 0o644)
	if _, err := readRepoKey(keyA); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable key: %v", err)
	}
	if pkgs := string(mustRead(t, filepath.Join(repo, "dists/stable/main/binary-amd64/Packages"))); strings.Count(pkgs, "Package: sesam-relay") != 1 {
		t.Fatalf("the refused publications changed the index:\n%s", pkgs)
	}
}
