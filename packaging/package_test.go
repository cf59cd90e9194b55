package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// These tests build the real packages with the same code as `go run .`,
// then check them the way Debian and an installer would. Every tool they
// need is installed by .ci/run; a missing one fails the test.

const (
	version = "0.1.0"
	newer   = "0.1.1" // for the upgrade test
)

var debs = map[string]string{} // "amd64", "arm64", "armhf", "newer" -> .deb path

func TestMain(m *testing.M) {
	out, err := os.MkdirTemp("", "sesam-relay-debs-")
	if err != nil {
		panic(err)
	}
	work, _ := os.MkdirTemp("", "sesam-relay-packaging-")
	root, _ := filepath.Abs("..")
	code := func() int {
		for _, a := range []string{"amd64", "arm64", "armhf"} {
			if debs[a], err = build(root, work, out, version, a, goArch[a]); err != nil {
				fmt.Fprintf(os.Stderr, "building the %s package: %v\n", a, err)
				return 1
			}
		}
		newerDir := filepath.Join(out, "newer")
		os.MkdirAll(newerDir, 0o755)
		if debs["newer"], err = build(root, work, newerDir, newer, "amd64", goArch["amd64"]); err != nil {
			fmt.Fprintf(os.Stderr, "building the newer package: %v\n", err)
			return 1
		}
		return m.Run()
	}()
	os.RemoveAll(out)
	os.RemoveAll(work)
	os.Exit(code)
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: .ci/run installs it (apt-get install -y lintian qemu-user-static debootstrap systemd systemd-container)", tool)
		}
	}
}

// run runs a command and returns its output; any failure fails the test.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extract unpacks a package's files into a new folder.
func extract(t *testing.T, deb string) string {
	dir := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, dir)
	return dir
}

func TestPackagesPassLintian(t *testing.T) {
	need(t, "lintian")
	for _, a := range []string{"amd64", "arm64", "armhf"} {
		// lintian refuses nothing by itself on a warning: --fail-on does.
		cmd := exec.Command("lintian", "--fail-on", "error,warning", "--allow-root", debs[a])
		out, err := cmd.CombinedOutput()
		if err != nil || regexp.MustCompile(`(?m)^[EW]: `).Match(out) {
			t.Errorf("lintian on the %s package: %v\n%s", a, err, out)
		}
	}
}

func TestPackageHoldsTheFilesAnInstallerExpects(t *testing.T) {
	out := run(t, "dpkg-deb", "-c", debs["amd64"])
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/bin/sesam-relay",
		"-rw-r----- root/root .* ./etc/sesam-relay/config.toml",
		"./lib/systemd/system/sesam-relay.service",
		"./lib/systemd/system/sesam-relay-backup.service",
		"./lib/systemd/system/sesam-relay-backup.timer",
		"./usr/share/man/man8/sesam-relay.8.gz",
		"./usr/share/doc/sesam-relay/copyright",
		"./usr/share/doc/sesam-relay/changelog.Debian.gz",
		"./usr/share/doc/sesam-relay/embedded-modules.txt.gz",
		"./usr/share/sesam-relay/prometheus/sesam-relay.rules.yml",
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the package lacks %s:\n%s", want, out)
		}
	}
	if c := run(t, "dpkg-deb", "-f", debs["amd64"], "Depends"); !strings.Contains(c, "adduser") {
		t.Errorf("Depends: %q", c)
	}
	info := run(t, "dpkg-deb", "--info", debs["amd64"], "conffiles")
	if strings.TrimSpace(info) != "/etc/sesam-relay/config.toml" {
		t.Errorf("conffiles: %q (an upgrade would overwrite the practice's config)", info)
	}
}

// The unit as packaged, with the packaged binary: systemd-analyze needs
// ExecStart's binary to exist, so both go into a root folder beside the
// system's own units.
func TestUnitPassesSystemdAnalyze(t *testing.T) {
	need(t, "systemd-analyze")
	root := extract(t, debs["amd64"])
	run(t, "cp", "-rn", "/lib/systemd/system/.", filepath.Join(root, "lib/systemd/system"))
	unit := filepath.Join(root, "lib/systemd/system/sesam-relay.service")
	for _, u := range []string{unit, filepath.Join(root, "lib/systemd/system/sesam-relay-backup.timer")} {
		out := run(t, "systemd-analyze", "verify", "--man=no", "--root="+root, u)
		if strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify %s is not clean:\n%s", filepath.Base(u), out)
		}
	}
	out := run(t, "systemd-analyze", "security", "--offline=yes", "--no-pager", "--root="+root, unit)
	m := regexp.MustCompile(`Overall exposure level for sesam-relay.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f", level)
	if level > 2.0 {
		t.Errorf("exposure %.1f is above 2.0:\n%s", level, out)
	}
}

// A LAN host must not make the relay take a Raspberry Pi's memory, threads
// or file descriptors: the packaged unit bounds all four.
func TestUnitLimitsResources(t *testing.T) {
	root := extract(t, debs["amd64"])
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/sesam-relay.service"))
	if err != nil {
		t.Fatal(err)
	}
	for key, max := range map[string]int64{"MemoryHigh": 512 << 20, "MemoryMax": 768 << 20, "TasksMax": 512, "LimitNOFILE": 65536} {
		m := regexp.MustCompile(`(?m)^` + key + `=(\d+)([KMG]?)$`).FindStringSubmatch(string(unit))
		if m == nil {
			t.Errorf("the unit sets no %s= (a number)", key)
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		n <<= map[string]int{"": 0, "K": 10, "M": 20, "G": 30}[m[2]]
		if n <= 0 || n > max {
			t.Errorf("%s=%s%s: want above 0 and at most %d", key, m[1], m[2], max)
		}
	}
	high := regexp.MustCompile(`(?m)^MemoryHigh=(\d+)M$`).FindStringSubmatch(string(unit))
	hard := regexp.MustCompile(`(?m)^MemoryMax=(\d+)M$`).FindStringSubmatch(string(unit))
	if high == nil || hard == nil {
		t.Fatal("MemoryHigh and MemoryMax must be in M")
	}
	if h, m := atoi(high[1]), atoi(hard[1]); h >= m || h < 128 {
		t.Errorf("MemoryHigh=%dM must be below MemoryMax=%dM and above the measured peak (115 MB)", h, m)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func TestArmBinariesStartUnderQemu(t *testing.T) {
	need(t, "qemu-aarch64-static", "qemu-arm-static")
	for _, c := range []struct{ arch, qemu string }{{"arm64", "qemu-aarch64-static"}, {"armhf", "qemu-arm-static"}} {
		bin := filepath.Join(extract(t, debs[c.arch]), "usr/bin/sesam-relay")
		file := run(t, "file", "-b", bin)
		if !strings.Contains(file, map[string]string{"arm64": "ARM aarch64", "armhf": "ARM, EABI5"}[c.arch]) || !strings.Contains(file, "statically linked") {
			t.Errorf("%s binary: %s", c.arch, file)
		}
		if out := run(t, c.qemu, bin, "version"); strings.TrimSpace(out) != "sesam-relay "+version {
			t.Errorf("%s binary under %s printed %q", c.arch, c.qemu, out)
		}
	}
}
