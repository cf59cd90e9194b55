package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// booted is a Debian 12 with systemd as its init, booted in systemd-nspawn
// with a network of its own (loopback only): what the postinst, the unit,
// Type=notify, reload and the journal do on a real box.
type booted struct {
	*chroot
	nspawn *exec.Cmd
	pid1   int
}

func boot(t *testing.T) *booted { return bootWith(t, nil) }

// bootWith boots the chroot once prepare has installed and configured what
// else the test needs (the container has no network to fetch it later).
func bootWith(t *testing.T, prepare func(*chroot)) *booted {
	need(t, "systemd-nspawn", "nsenter", "pgrep")
	c := newChroot(t)
	c.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "systemd")
	if prepare != nil {
		prepare(c)
	}
	b := &booted{chroot: c}
	b.nspawn = exec.Command("systemd-nspawn", "-D", c.root, "--register=no", "--keep-unit", "--private-network", "-b", "--console=pipe")
	if err := b.nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.nspawn.Process.Signal(syscall.SIGTERM) // nspawn shuts the container down
		done := make(chan struct{})
		go func() { b.nspawn.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.nspawn.Process.Kill()
			<-done
		}
	})
	waitUntil(t, "systemd to boot in the container", func() bool {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(b.nspawn.Process.Pid)).Output()
		b.pid1, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		if b.pid1 == 0 {
			return false
		}
		state, _ := b.in("systemctl", "is-system-running")
		return strings.Contains(state, "running") || strings.Contains(state, "degraded")
	})
	return b
}

// in runs a command inside the booted container.
func (b *booted) in(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(b.pid1), "-m", "-u", "-i", "-n", "-p", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C", "SYSTEMD_PAGER="}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (b *booted) must(args ...string) string {
	b.t.Helper()
	out, err := b.in(args...)
	if err != nil {
		b.t.Fatalf("in the container, %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (b *booted) journal() string {
	return b.must("journalctl", "-u", "sesam-relay", "--no-pager", "-o", "cat")
}

func TestServiceStartsReloadsAndStopsUnderSystemd(t *testing.T) {
	b := boot(t)
	// nspawn gives the container its own /tmp: the package goes in /root.
	os.WriteFile(filepath.Join(b.root, "root/sesam-relay.deb"), mustRead(t, debs["amd64"]), 0o644)
	b.must("apt-get", "install", "-y", "/root/sesam-relay.deb")

	// Type=notify: "active" only once READY=1 came, after every listener.
	if out, _ := b.in("systemctl", "is-active", "sesam-relay"); strings.TrimSpace(out) != "active" {
		t.Fatalf("the service is not active after the install: %s\n%s", out, b.journal())
	}
	if out := b.must("systemctl", "is-enabled", "sesam-relay"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("is-enabled: %s", out)
	}
	show := b.must("systemctl", "show", "sesam-relay", "-p", "Type,WatchdogUSec,User,StatusErrno,NRestarts")
	for _, want := range []string{"Type=notify", "WatchdogUSec=1min", "User=sesam-relay", "NRestarts=0"} {
		if !strings.Contains(show, want) {
			t.Errorf("systemctl show lacks %s:\n%s", want, show)
		}
	}
	j := b.journal()
	if !strings.Contains(j, "sesam-relay ready") || strings.Contains(j, "time=") {
		t.Errorf("the journal should hold the relay's lines, without a time stamp of their own:\n%s", j)
	}
	if out := b.must("systemd-analyze", "security", "sesam-relay"); !strings.Contains(out, "Overall exposure level for sesam-relay.service: 1.") {
		t.Errorf("exposure on the running system:\n%s", out)
	}

	// A technician of group sesam-relay reads the status without sudo.
	b.must("useradd", "--no-create-home", "--groups", "sesam-relay", "tech")
	if out, err := b.in("runuser", "-u", "tech", "--", "sesam-relay", "status"); err != nil || !strings.Contains(out, "running since") {
		t.Errorf("status as tech: %v\n%s", err, out)
	} else if !strings.Contains(out, "store key:  the systemd credential") || strings.Contains(out, "plain file") {
		t.Errorf("the store key should be a systemd credential where systemd runs:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(b.root, "etc/sesam-relay/keys/store-key")); err == nil {
		t.Errorf("the plain store key is still there beside its credential")
	}

	// systemctl reload: a good config is applied, a broken one refused
	// with its line, and the service stays up through both.
	pid := b.must("systemctl", "show", "sesam-relay", "-p", "MainPID")
	// ExecReload waits for the verdict: once systemctl returns, it is in.
	b.must("systemctl", "reload", "sesam-relay")
	if !strings.Contains(b.journal(), "config reloaded") {
		t.Errorf("systemctl reload returned before the relay reloaded:\n%s", b.journal())
	}
	cfg := filepath.Join(b.root, "etc/sesam-relay/config.toml")
	good := mustRead(t, cfg)
	os.WriteFile(cfg, append([]byte("retension = \"90d\"\n"), good...), 0o640)
	if out, err := b.in("systemctl", "reload", "sesam-relay"); err == nil {
		t.Errorf("systemctl reload of a broken config should fail, so that the technician sees it:\n%s", out)
	}
	if out := b.must("journalctl", "-u", "sesam-relay", "-p", "err", "--no-pager", "-o", "cat"); !strings.Contains(out, "retension") || strings.Contains(out, "sesam-relay ready") {
		t.Errorf("journalctl -p err should show the refused reload naming the key, and only errors:\n%s", out)
	}
	if out, _ := b.in("systemctl", "is-active", "sesam-relay"); strings.TrimSpace(out) != "active" {
		t.Errorf("after a refused reload: %s", out)
	}
	if now := b.must("systemctl", "show", "sesam-relay", "-p", "MainPID"); now != pid {
		t.Errorf("reloading restarted the process: %s then %s", pid, now)
	}
	os.WriteFile(cfg, good, 0o640)

	// Remove stops it; purge leaves no unit state behind.
	b.must("apt-get", "remove", "-y", "sesam-relay")
	if out, _ := b.in("systemctl", "is-active", "sesam-relay"); strings.TrimSpace(out) == "active" {
		t.Errorf("still active after remove")
	}
	b.must("apt-get", "purge", "-y", "sesam-relay")
	if out, _ := b.in("systemctl", "list-unit-files", "sesam-relay.service", "--no-legend"); strings.TrimSpace(out) != "" {
		t.Errorf("after purge, systemd still knows the unit: %s", out)
	}
}
