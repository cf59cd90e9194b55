package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// readmeBlocks returns the shell blocks (```sh) of the README's section
// whose heading is title, up to the next heading (its subsections are
// sections of their own), each as its command lines.
func readmeBlocks(t *testing.T, title string) [][]string {
	t.Helper()
	lines := strings.Split(string(mustRead(t, "../README.md")), "\n")
	start := -1
	for i, l := range lines {
		if h := strings.TrimLeft(l, "#"); h != l && strings.TrimSpace(h) == title {
			start = i + 1
			break
		}
	}
	if start < 0 {
		t.Fatalf("README has no section %q", title)
	}
	var blocks [][]string
	var cur []string
	in := false
	for _, l := range lines[start:] {
		if h := strings.TrimLeft(l, "#"); !in && h != l && strings.HasPrefix(h, " ") {
			break
		}
		switch {
		case !in && l == "```sh":
			in, cur = true, nil
		case in && l == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, l)
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("README's section %q has no ```sh block", title)
	}
	return blocks
}

// installer runs a README line in the booted container as the installer
// "admin" at a fresh login (its groups as they are now), with sudo, and
// answering y to apt's questions. The README's repository address is
// replaced by the test's copy of the repository: the only change made.
func (b *booted) installer(line string) (string, error) {
	line = strings.ReplaceAll(line, readmeRepoURL, testRepoURL)
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(b.pid1), "-m", "-u", "-i", "-n", "-p", "--", "runuser", "-l", "admin", "-c", line)
	cmd.Stdin = strings.NewReader(strings.Repeat("y\n", 10))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const (
	readmeRepoURL = "https://apt.example.fr/sesam-relay"
	testRepoURL   = "file:///srv/repo"
)

// makeInstaller gives the chroot the account an installer logs in with: a
// member of group sudo, as Debian's installer makes the first user (sudo
// asks no password here: nobody types it).
func makeInstaller(c *chroot) {
	c.run("useradd", "-m", "-s", "/bin/bash", "-G", "sudo", "admin")
	if err := os.WriteFile(c.path("etc/sudoers.d/admin"), []byte("admin ALL=(ALL) NOPASSWD: ALL\n"), 0o440); err != nil {
		c.t.Fatal(err)
	}
}
