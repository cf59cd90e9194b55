package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/sesam-relay/sesam-relay/relay/auth"
	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/fetch"
	"github.com/sesam-relay/sesam-relay/relay/keys"
	"github.com/sesam-relay/sesam-relay/relay/pop3d"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// BenchmarkInbound fetches the same Dovecot mailbox (1,000 × 20 KB by
// default) with sesam-relay's poller into its store, with mbsync into a
// Maildir with FSync, and with getmail6 into a Maildir; then one client
// RETRs every message over POP3 from sesam-relay and from Dovecot. Run:
//
//	go test ./relay/e2e -run '^$' -bench Inbound -benchtime 1x
func BenchmarkInbound(b *testing.B) {
	for _, tool := range []string{"mbsync", "getmail"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is not installed: .ci/test installs isync and getmail6", tool)
		}
	}
	n := envInt("BENCH_MAILS", 1000)
	dv := startDovecot(b)
	dv.seed(n, func(i int) []byte { return arl(i, 20<<10) })
	host, port, _ := strings.Cut(dv.imap, ":")
	var st *store.Store

	b.Run("fetch/sesam-relay", func(b *testing.B) {
		dir := benchDir(b)
		// Sealed to a key, as the daemon's store is (issue 13).
		e, err := keys.New("bench")
		if err != nil {
			b.Fatal(err)
		}
		if st, err = store.OpenSealed(filepath.Join(dir, "state"), &store.Keys{Write: e, Read: openpgp.EntityList{e}}); err != nil {
			b.Fatal(err)
		}
		pw := filepath.Join(dir, "pw")
		os.WriteFile(pw, []byte("provider-pw\n"), 0o600)
		var u config.Upstream
		u.UnmarshalText([]byte("imap://" + dv.imap))
		acct := config.Account{Name: "dupont", Upstream: config.Provider{IMAP: u, Username: "jean.dupont", PasswordFile: pw, Insecure: true,
			Folders: []string{"INBOX"}, KeepUpstream: config.Keep{Forever: true}}}
		p := fetch.NewPoller(acct, config.Defaults().Delivery, st, slog.New(slog.DiscardHandler))
		start := time.Now()
		res, err := p.PollNow(context.Background())
		if err != nil || res.Fetched != n {
			b.Fatalf("%+v %v", res, err)
		}
		report(b, n, time.Since(start))
	})
	if st == nil {
		b.Fatal("the sesam-relay fetch did not run")
	}
	defer st.Close()

	b.Run("fetch/mbsync", func(b *testing.B) {
		dir := benchDir(b)
		os.MkdirAll(filepath.Join(dir, "mail"), 0o755) // mbsync creates the folders, not the store
		cfg := filepath.Join(dir, "mbsyncrc")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`FSync yes

IMAPAccount bench
Host %s
Port %s
User jean.dupont
Pass provider-pw
SSLType None
AuthMechs LOGIN

IMAPStore far
Account bench

MaildirStore near
Path %s/mail/
Inbox %s/mail/INBOX

Channel bench
Far :far:
Near :near:
Patterns INBOX
Sync Pull
Create Near
SyncState *
`, host, port, dir, dir)), 0o600)
		start := time.Now()
		if out, err := exec.Command("mbsync", "-c", cfg, "-q", "bench").CombinedOutput(); err != nil {
			b.Fatalf("mbsync: %v %s", err, out)
		}
		took := time.Since(start)
		if got := countFiles(filepath.Join(dir, "mail", "INBOX", "new"), filepath.Join(dir, "mail", "INBOX", "cur")); got != n {
			b.Fatalf("mbsync stored %d messages", got)
		}
		report(b, n, took)
	})

	b.Run("fetch/getmail6", func(b *testing.B) {
		dir := benchDir(b)
		md := filepath.Join(dir, "Maildir")
		for _, s := range []string{"new", "cur", "tmp"} {
			os.MkdirAll(filepath.Join(md, s), 0o755)
		}
		exec.Command("chown", "-R", "nobody:nogroup", md).Run() // getmail refuses to deliver as root
		rc := filepath.Join(dir, "getmailrc")
		os.WriteFile(rc, []byte(fmt.Sprintf(`[retriever]
type = SimpleIMAPRetriever
server = %s
port = %s
username = jean.dupont
password = provider-pw
mailboxes = ("INBOX",)

[destination]
type = Maildir
path = %s/
user = nobody

[options]
read_all = true
delete = false
verbose = 0
`, host, port, md)), 0o600)
		start := time.Now()
		if out, err := exec.Command("getmail", "--getmaildir", dir, "--rcfile", rc).CombinedOutput(); err != nil {
			b.Fatalf("getmail: %v %s", err, out)
		}
		took := time.Since(start)
		if got := countFiles(filepath.Join(md, "new"), filepath.Join(md, "cur")); got != n {
			b.Fatalf("getmail stored %d messages", got)
		}
		report(b, n, took)
	})

	b.Run("pop3-retr/sesam-relay", func(b *testing.B) {
		srv := pop3d.New(pop3d.Options{Hostname: "bench", AllowPlaintextAuth: auth.Allowlist{netip.MustParsePrefix("127.0.0.0/8")},
			Logins: auth.NewChecker(map[string]string{"dupont": passwordHash}), AccountOf: map[string]string{"dupont": "dupont"},
			Throttle: auth.NewThrottle(5, time.Minute, time.Second), Allow: auth.Allowlist{netip.MustParsePrefix("127.0.0.0/8")},
			Store: st, Log: slog.New(slog.DiscardHandler)})
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		go srv.Serve(l)
		defer srv.Close()
		retrAll(b, l.Addr().String(), "dupont", password, n)
	})

	b.Run("pop3-retr/dovecot", func(b *testing.B) {
		retrAll(b, dv.pop3, "jean.dupont", "provider-pw", n)
	})
}

func report(b *testing.B, n int, took time.Duration) {
	b.ReportMetric(took.Seconds()*1000, "ms/total")
	b.ReportMetric(float64(n)/took.Seconds(), "msg/s")
}

func countFiles(dirs ...string) int {
	n := 0
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		n += len(ents)
	}
	return n
}

// retrAll logs in and RETRs every message, the billing software's way,
// with the same minimal client against both servers; it times the whole
// session and checks the byte count.
func retrAll(b *testing.B, addr, user, pass string, want int) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r, w := bufio.NewReaderSize(c, 64<<10), bufio.NewWriter(c)
	line := func() string {
		l, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	cmd := func(s string) string {
		fmt.Fprintf(w, "%s\r\n", s)
		w.Flush()
		l := line()
		if !strings.HasPrefix(l, "+OK") {
			b.Fatalf("%s: %s", strings.Fields(s)[0], l)
		}
		return l
	}
	line()
	cmd("USER " + user)
	cmd("PASS " + pass)
	count, _ := strconv.Atoi(strings.Fields(cmd("STAT"))[1])
	if count != want {
		b.Fatalf("%d messages in the maildrop, want %d", count, want)
	}
	var bytes int64
	for i := 1; i <= count; i++ {
		cmd(fmt.Sprintf("RETR %d", i))
		for {
			l, err := r.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(l) == 3 && l[0] == '.' {
				break
			}
			bytes += int64(len(l))
		}
	}
	cmd("QUIT")
	took := time.Since(start)
	report(b, count, took)
	b.ReportMetric(float64(bytes)/took.Seconds()/(1<<20), "MB/s")
}
