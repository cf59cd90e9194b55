package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/chglog"
	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// goTarget is how Go names a Debian architecture.
type goTarget struct{ goarch, goarm string }

// goArch maps Debian's names to Go's. armhf is built for ARMv6 with
// hardware floating point: Raspberry Pi OS's armhf runs on the Pi Zero and
// Pi 1 too, and Debian's ARMv7 armhf runs ARMv6 code.
var goArch = map[string]goTarget{
	"amd64": {"amd64", ""},
	"arm64": {"arm64", ""},
	"armhf": {"arm", "6"},
}

// newestVersion reads the version of the changelog's newest entry.
func newestVersion(path string) (string, error) {
	entries, err := chglog.Parse(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(entries) == 0 {
		return "", fmt.Errorf("%s has no entry: give -version", path)
	}
	return entries[0].Semver, nil
}

// build makes one package and returns its path.
func build(root, work, out, version, debArch string, t goTarget) (string, error) {
	dir := filepath.Join(work, debArch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sesam-relay")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X main.version="+version, "-o", bin, "./cmd/sesam-relay")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the binary: %w", err)
	}
	mtime := sourceTime(root)
	man, err := gzipFile(filepath.Join(root, "packaging", "sesam-relay.8"), dir)
	if err != nil {
		return "", err
	}
	readme, err := gzipFile(filepath.Join(root, "README.md"), dir)
	if err != nil {
		return "", err
	}
	licenses, err := embeddedLicenses(root, bin, dir)
	if err != nil {
		return "", err
	}
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, MTime: mtime}}
	}
	info := &nfpm.Info{
		Name:        "sesam-relay",
		Arch:        debArch,
		Platform:    "linux",
		Version:     version,
		Release:     "1",
		Section:     "mail",
		Priority:    "optional",
		Maintainer:  "sesam-relay maintainers <maintainers@sesam-relay.fr>",
		Description: description,
		License:     "MIT",
		Changelog:   filepath.Join(root, "packaging", "changelog.yml"),
		MTime:       mtime,
		Overridables: nfpm.Overridables{
			// adduser makes the service's user. The systemd helpers are
			// used when present, and their absence (a container) is fine.
			Depends: []string{"adduser"},
			Contents: files.Contents{
				file(bin, "/usr/bin/sesam-relay", 0o755),
				{Source: filepath.Join(root, "packaging", "config.toml"), Destination: "/etc/sesam-relay/config.toml",
					Type: files.TypeConfig, FileInfo: &files.ContentFileInfo{Mode: 0o640, MTime: mtime}},
				file(filepath.Join(root, "systemd", "sesam-relay.service"), "/lib/systemd/system/sesam-relay.service", 0o644),
				file(filepath.Join(root, "systemd", "sesam-relay-backup.service"), "/lib/systemd/system/sesam-relay-backup.service", 0o644),
				file(filepath.Join(root, "systemd", "sesam-relay-backup.timer"), "/lib/systemd/system/sesam-relay-backup.timer", 0o644),
				file(man, "/usr/share/man/man8/sesam-relay.8.gz", 0o644),
				file(readme, "/usr/share/doc/sesam-relay/README.md.gz", 0o644),
				file(filepath.Join(root, "packaging", "copyright"), "/usr/share/doc/sesam-relay/copyright", 0o644),
				file(licenses, "/usr/share/doc/sesam-relay/embedded-modules.txt.gz", 0o644),
				file(filepath.Join(root, "packaging", "lintian-overrides"), "/usr/share/lintian/overrides/sesam-relay", 0o644),
				file(filepath.Join(root, "packaging", "prometheus", "sesam-relay.rules.yml"), "/usr/share/sesam-relay/prometheus/sesam-relay.rules.yml", 0o644),
			},
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(root, "packaging", "scripts", "postinst"),
				PreRemove:   filepath.Join(root, "packaging", "scripts", "prerm"),
				PostRemove:  filepath.Join(root, "packaging", "scripts", "postrm"),
			},
		},
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	path := filepath.Join(out, pkg.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("making the package: %w", err)
	}
	return path, f.Close()
}

const description = `mail relay for SESAM-Vitale teletransmission
 sesam-relay sits on a health practice's LAN between the billing software
 and the practitioners' mail provider. The billing software submits its
 lots of electronic care sheets to it by SMTP and collects the funds'
 acknowledgements and returns from it by POP3. It keeps everything on disk,
 relays mail upstream with retries, polls the provider's IMAP on a schedule,
 and tells which lot was acknowledged and which is stuck, so that an outage
 of the provider never stops the practice from billing.`

// sourceTime is the time of the last commit, so that two builds of the same
// source give the same files (SOURCE_DATE_EPOCH wins when set).
func sourceTime(root string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	cmd := exec.Command("git", "log", "-1", "--format=%ct")
	cmd.Dir = root
	if b, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Now().UTC()
}

// gzipFile compresses src into dir as Debian wants doc and man files: best
// compression, no name, no time stamp.
func gzipFile(src, dir string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(src)+".gz")
	return dst, os.WriteFile(dst, buf.Bytes(), 0o644)
}
