package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The installer's and the IT provider's path, on a booted Debian 12 whose
// mail provider is Debian's Postfix and Dovecot (see installProvider): a
// signing key made once, the packages published into an APT repository
// folder; then every shell line of the README's "Install on a practice's
// Debian box", word for word as the installer "admin" types them (sudo, apt
// answered y, account add at a terminal): from the repository trusted by
// its key only, the account checked against the provider before it is
// written. Then the billing software's day: a lot relayed to the fund
// through the provider, its ARL collected and shown by POP3 and in lots.
// Then the IT provider's next version: unattended-upgrades would take it,
// the README's upgrade lines install it, the account is kept and relays.
// Last, an InRelease tampered with on the way is refused.
func TestInstallerFollowsTheREADMEFromASignedRepository(t *testing.T) {
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
	if err := publish(repo, []string{debs["amd64"]}, key, testRepoURL); err != nil {
		t.Fatal(err)
	}
	list := string(mustRead(t, filepath.Join(repo, "sesam-relay.list")))
	if want := "deb [signed-by=/usr/share/keyrings/sesam-relay-archive-keyring.asc] " + testRepoURL + " stable main\n"; list != want {
		t.Fatalf("sources line %q, want %q", list, want)
	}
	if readme := string(mustRead(t, "../README.md")); !strings.Contains(readme, strings.ReplaceAll(strings.TrimSpace(list), testRepoURL, readmeRepoURL)) {
		t.Errorf("the README does not show the source line the repository has:\n%s", list)
	}

	b := bootWith(t, func(c *chroot) {
		installProvider(t, c)
		// What the README's lines install, here before the boot (the
		// container has no network): apt finds them installed. Debian's
		// own sources are dropped, unreachable from the container.
		c.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "sudo", "curl", "unattended-upgrades")
		os.Remove(c.path("etc/apt/sources.list"))
		makeInstaller(c)
	})
	serve := func() { // the web server's copy of the repository folder
		os.RemoveAll(b.path("srv/repo"))
		if out, err := exec.Command("cp", "-a", repo, b.path("srv/repo")).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	serve()
	for _, unit := range []string{"postfix", "dovecot"} {
		if out, _ := b.in("systemctl", "is-active", unit); strings.TrimSpace(out) != "active" {
			t.Fatalf("the provider's %s is not running: %s\n%s", unit, out, b.must("journalctl", "-u", unit, "--no-pager", "-o", "cat"))
		}
	}

	run := func(line string) string {
		t.Helper()
		out, err := b.installer(line)
		if err != nil {
			t.Fatalf("README line %q: %v\n%s\njournal:\n%s", line, err, out, b.must("journalctl", "--no-pager", "-n", "30", "-o", "cat"))
		}
		return out
	}
	var upgrade []string
	for _, block := range readmeBlocks(t, "Install on a practice's Debian box") {
		if block[0] == "sudo apt update" && block[len(block)-1] == "sudo apt upgrade" {
			upgrade = block // run once the next version is published
			continue
		}
		for _, line := range block {
			switch {
			case line == "sudo sesam-relay account add dupont":
				accountAddAtTheKeyboard(t, b, line)
				continue
			case strings.Contains(line, "keys recovery --out /media/usb/"):
				// Step 7's prose: the USB stick and the NAS share are
				// there, and [backup] folder is set in the config.
				b.must("mkdir", "-p", "/media/usb", "/media/nas/sesam-relay")
				cfgPath := b.path("etc/sesam-relay/config.toml")
				cfg := string(mustRead(t, cfgPath))
				edited := strings.Replace(cfg, "#[backup]\n#folder       = \"/media/usb/sesam-relay\"", "[backup]\nfolder       = \"/media/nas/sesam-relay\"", 1)
				if edited == cfg {
					t.Fatal("the packaged config has no commented [backup] folder to set")
				}
				os.WriteFile(cfgPath, []byte(edited), 0o640)
			}
			out := run(line)
			switch line {
			case "sesam-relay status":
				if !strings.Contains(out, "running since") {
					t.Errorf("status as the installer:\n%s", out)
				}
			case "sudo apt install sesam-relay":
				if v := strings.TrimSpace(b.must("dpkg-query", "-W", "-f", "${Version}", "sesam-relay")); !strings.HasPrefix(v, version) {
					t.Fatalf("installed %q from the repository, want %s", v, version)
				}
			case "sudo sesam-relay check":
				if !strings.Contains(out, "provider.test") {
					t.Errorf("check does not name the provider it logged in to:\n%s", out)
				}
			}
		}
	}
	if upgrade == nil {
		t.Fatal("the README has no upgrade block (sudo apt update, sudo apt upgrade)")
	}
	if st := run("sesam-relay status"); !strings.Contains(st, "dupont") || !strings.Contains(st, "backup:     20") {
		t.Errorf("status after the README's steps (the account, the backup):\n%s", st)
	}
	if page := b.must("curl", "-sk", "https://127.0.0.1:8443/connexion"); !strings.Contains(page, "Identifiant") {
		t.Errorf("the practice's page does not answer on the packaged port 8443:\n%s", page)
	}
	billingSoftwareDay(t, b, "first")
	if lots := lotsOf(t, b); len(lots) == 0 || len(lots[0].Returns) == 0 {
		t.Errorf("the ARL collected from the provider is not shown with its lot: %+v", lots)
	}

	// The IT provider's next version. unattended-upgrades, set up as the
	// README says, would install it; the README's upgrade lines do.
	if err := publish(repo, []string{debs["newer"]}, key, testRepoURL); err != nil {
		t.Fatal(err)
	}
	serve()
	for _, line := range readmeBlocks(t, "For the IT provider")[1] {
		run(line)
	}
	run("sudo apt update")
	if out := run("sudo unattended-upgrade --dry-run --debug"); !strings.Contains(out, "sesam-relay") || !strings.Contains(out, "Packages that will be upgraded: sesam-relay") {
		t.Errorf("unattended-upgrades, set up as the README says, would not upgrade sesam-relay:\n%s", out)
	}
	for _, line := range upgrade {
		run(line)
	}
	if v := strings.TrimSpace(b.must("dpkg-query", "-W", "-f", "${Version}", "sesam-relay")); !strings.HasPrefix(v, newer) {
		t.Fatalf("after the README's upgrade: %q, want %s", v, newer)
	}
	if out := run("sesam-relay account list"); !strings.Contains(out, "dupont  "+providerAddr) {
		t.Fatalf("the account after the upgrade:\n%s", out)
	}
	billingSoftwareDay(t, b, "second")
	if pkgs := string(mustRead(t, filepath.Join(repo, "dists/stable/main/binary-amd64/Packages"))); strings.Count(pkgs, "Package: sesam-relay") != 2 {
		t.Fatalf("both versions stay listed:\n%s", pkgs)
	}

	// A tampered index is refused.
	in := filepath.Join(repo, "dists/stable/InRelease")
	os.WriteFile(in, []byte(strings.Replace(string(mustRead(t, in)), "Origin: sesam-relay", "Origin: sesam-re1ay", 1)), 0o644)
	os.Remove(filepath.Join(repo, "dists/stable/Release.gpg"))
	serve()
	out, err := b.installer("sudo apt-get update")
	if err == nil && !strings.Contains(out, "signature") {
		t.Fatalf("apt accepted a tampered InRelease:\n%s", out)
	}
	if !strings.Contains(out, "BADSIG") && !strings.Contains(out, "not signed") && !strings.Contains(out, "invalid") {
		t.Fatalf("apt's refusal does not name the signature:\n%s", out)
	}
}

// accountAddAtTheKeyboard types step 4's answers at a terminal: an address
// at a domain with no preset, so the provider's servers too.
func accountAddAtTheKeyboard(t *testing.T, b *booted, line string) {
	t.Helper()
	spec, _ := json.Marshal(map[string]any{
		"argv": []string{"nsenter", "-t", strconv.Itoa(b.pid1), "-m", "-u", "-i", "-n", "-p", "--", "runuser", "-l", "admin", "-c", line},
		"steps": [][2]string{
			{"Provider address of the practitioner", providerAddr},
			{"Sending server", "smtps://provider.test:4465"},
			{"Collecting server", "imaps://provider.test:993"},
			{"Provider password of " + providerAddr + " (not shown): ", providerPW},
			{"Password the billing software will give the relay for dupont (not shown): ", "billing-pw"},
			{"Again: ", "billing-pw"},
			{"Extra login for the practitioner's phone", ""},
		},
	})
	out, err := exec.Command("python3", "../relay/e2e/testdata/ptydrive.py", string(spec)).Output()
	if err != nil {
		t.Fatalf("ptydrive.py: %v\n%s", err, out)
	}
	var res struct {
		Transcript, Error string
		Code              int
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Error != "" || res.Code != 0 {
		t.Fatalf("account add at the terminal: %v %s (exit %d):\n%s\njournal:\n%s", err, res.Error, res.Code, res.Transcript, b.must("journalctl", "--no-pager", "-n", "30", "-o", "cat"))
	}
	for _, want := range []string{"account dupont written to /etc/sesam-relay/accounts.d/dupont.toml", "sealed as the systemd credential", "In the billing software"} {
		if !strings.Contains(res.Transcript, want) {
			t.Errorf("account add did not say %q:\n%s", want, res.Transcript)
		}
	}
	if strings.Contains(res.Transcript, providerPW) || strings.Contains(res.Transcript, "billing-pw") {
		t.Errorf("a password was echoed:\n%s", res.Transcript)
	}
}

// billingSoftwareDay is the billing software's session as step 6 sets it
// up: a lot submitted (smtplib, STARTTLS on 587, the login dupont) reaches
// the fund through the provider's Postfix; the fund's ARL, mailed back to
// the practitioner, is collected from the provider's Dovecot and read by
// POP3 (poplib, STLS on 110).
func billingSoftwareDay(t *testing.T, b *booted, which string) {
	t.Helper()
	before, _ := filepath.Glob(b.path(fundMaildir + "/*"))
	// Each day its own lot (its own stamp) and ARL: the same lot twice
	// would be held as a resubmission, the same ARL kept once.
	day := strings.NewReplacer("2026112408150000042", "20261124081500000"+map[string]string{"first": "42", "second": "43"}[which], "Message-ID: <", "Message-ID: <"+which+".")
	lot := day.Replace(string(mustRead(t, "../testdata/mail/lot-smime.eml")))
	if out, err := b.net("python3", "-c", fmt.Sprintf(`
import smtplib
s = smtplib.SMTP("127.0.0.1", 587, timeout=30)
s.starttls(); s.login("dupont", "billing-pw")
s.sendmail(%q, ["01422@422.01.rss.fr"], %q.encode())
s.quit()`, providerAddr, lot)); err != nil {
		t.Fatalf("submitting the %s lot: %v\n%s", which, err, out)
	}
	waitUntil(t, "the "+which+" lot to reach the fund's mailbox through the provider", func() bool {
		now, _ := filepath.Glob(b.path(fundMaildir + "/*"))
		return len(now) > len(before)
	})
	arl := b.path("root/arl-" + which + ".eml")
	os.WriteFile(arl, []byte(day.Replace(string(mustRead(t, "../testdata/mail/arl-positive.eml")))), 0o644)
	b.must("sh", "-c", "/usr/sbin/sendmail -f 01422@422.01.rss.fr "+providerAddr+" < /root/arl-"+which+".eml")
	deadline := time.Now().Add(60 * time.Second)
	for {
		b.installer("sesam-relay fetch dupont")
		out, _ := b.net("python3", "-c", `
import poplib
p = poplib.POP3("127.0.0.1", 110, timeout=30)
p.stls(); p.user("dupont"); p.pass_("billing-pw")
print(len(p.list()[1]))
p.quit()`)
		if n, _ := strconv.Atoi(strings.TrimSpace(out)); (which == "first" && n >= 1) || (which == "second" && n >= 2) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s ARL mailed to the provider never reached POP3: %s\n%s\n%s", which, out, b.must("sesam-relay", "status"), b.must("journalctl", "--no-pager", "-n", "60", "-o", "cat"))
		}
		time.Sleep(time.Second)
	}
}
