package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// embeddedLicenses writes, gzipped into dir, the license of every Go module
// compiled into bin: a static binary carries their code, so the package
// carries their terms. It fails if a module has no license file, rather
// than ship a package that says nothing of it.
func embeddedLicenses(root, bin, dir string) (string, error) {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return "", fmt.Errorf("listing the modules in the binary: %w", err)
	}
	var mods [][2]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "dep" {
			mods = append(mods, [2]string{f[1], f[2]})
		}
	}
	list := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Version}} {{.Dir}}", "all")
	list.Dir = root
	out, err = list.Output()
	if err != nil {
		return "", fmt.Errorf("finding the modules' folders: %w", err)
	}
	dirs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			dirs[f[0]+" "+f[1]] = f[2]
		}
	}
	var text bytes.Buffer
	text.WriteString("Go modules compiled into /usr/bin/sesam-relay, and their licenses.\n")
	for _, m := range mods {
		d := dirs[m[0]+" "+m[1]]
		lic := ""
		for _, name := range []string{"LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING", "COPYING.md"} {
			if b, err := os.ReadFile(filepath.Join(d, name)); err == nil {
				lic = string(b)
				break
			}
		}
		if d == "" || lic == "" {
			return "", fmt.Errorf("no license file found for %s %s (in %q)", m[0], m[1], d)
		}
		fmt.Fprintf(&text, "\n========== %s %s ==========\n\n%s", m[0], m[1], lic)
	}
	src := filepath.Join(dir, "embedded-modules.txt")
	if err := os.WriteFile(src, text.Bytes(), 0o644); err != nil {
		return "", err
	}
	return gzipFile(src, dir)
}
