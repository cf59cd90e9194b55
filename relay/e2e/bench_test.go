package e2e_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// BenchmarkOutbound relays the same load through sesam-relay and through
// Postfix, on this machine, to the same smtp-sink, and reports accept rate,
// end-to-end rate, accept latency and peak memory. Run it with:
//
//	go test ./relay/e2e -run '^$' -bench Outbound -benchtime 1x
//
// BENCH_MAILS (default 2000) and BENCH_CLIENTS (default 10) change the load.
func BenchmarkOutbound(b *testing.B) {
	for _, tool := range []string{"smtp-sink", "postfix"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is not installed: apt-get install -y postfix (see .ci/run)", tool)
		}
	}
	n, clients := envInt("BENCH_MAILS", 2000), envInt("BENCH_CLIENTS", 10)
	sinkAddr := startSink(b)
	body := bytes.Repeat([]byte(strings.Repeat("x", 78)+"\r\n"), 20<<10/80)

	for _, accounts := range []int{1, clients} {
		b.Run(fmt.Sprintf("sesam-relay/%d-accounts", accounts), func(b *testing.B) {
			benchSesam(b, sinkAddr, n, clients, accounts, body)
		})
	}

	b.Run("postfix", func(b *testing.B) {
		dir := benchDir(b)
		port := freeAddr(b)
		pfx := startPostfix(b, dir, port, sinkAddr)
		log := filepath.Join(dir, "maillog")
		sent := func() int {
			data, _ := os.ReadFile(log)
			return bytes.Count(data, []byte("status=sent"))
		}
		runLoad(b, port, nil, n, clients, body, sent, pfx)
	})
}

// benchSesam runs the load through the real binary with `accounts`
// practitioners' accounts (one upstream connection each); client c submits
// as account c % accounts.
func benchSesam(b *testing.B, sinkAddr string, n, clients, accounts int, body []byte) {
	dir := benchDir(b)
	cfg := filepath.Join(dir, "config.toml")
	ctl := filepath.Join(dir, "control.sock")
	var accts strings.Builder
	for a := 0; a < accounts; a++ {
		fmt.Fprintf(&accts, "[[account]]\nname = \"%s%d\"\npassword_hash = %q\naddress = \"bench%d@provider.test\"\n  [account.upstream]\n  smtp = \"smtp://%s\"\n  insecure = true\n",
			login, a, passwordHash, a, sinkAddr)
	}
	os.WriteFile(cfg, []byte(fmt.Sprintf(`hostname = "bench.test"
state_dir = %q
min_free_space = 0
[listen]
smtp = ["127.0.0.1:0"]
control = %q
allow = ["127.0.0.0/8"]
allow_plaintext_auth = true
%s`, filepath.Join(dir, "state"), ctl, accts.String())), 0o600)
	cmd := exec.Command(binary, "--config", cfg, "serve")
	var logBuf safeBuffer
	cmd.Stderr = &logBuf
	defer func() {
		if b.Failed() {
			b.Log(logBuf.String()[max(0, len(logBuf.String())-3000):])
		}
	}()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var addr string
	waitForB(b, "sesam-relay to start", func() bool {
		var st control.Status
		if control.Call(ctl, control.Request{Cmd: "status"}, &st) != nil || len(st.Listeners) == 0 {
			return false
		}
		addr = strings.TrimPrefix(st.Listeners[0], "smtp://")
		return true
	})
	sent := func() int {
		var st control.Status
		control.Call(ctl, control.Request{Cmd: "status"}, &st)
		total := 0
		for _, a := range st.Accounts {
			total += a.Counts[store.Sent]
		}
		return total
	}
	runLoad(b, addr, func(c int) string { return fmt.Sprintf("%s%d", login, c%accounts) }, n, clients, body, sent, []int{cmd.Process.Pid})
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchDir is a folder the postfix user can traverse (t.TempDir is 0700).
func benchDir(b *testing.B) string {
	dir, err := os.MkdirTemp("", "sesam-bench-")
	if err != nil {
		b.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitForB(b *testing.B, what string, cond func() bool) {
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startSink(b *testing.B) string {
	addr := freeAddr(b)
	cmd := exec.Command("smtp-sink", "-u", "nobody", addr, "1000")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitForB(b, "smtp-sink", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// startPostfix runs a private Postfix instance (own config and queue, no
// chroot, log to a file) relaying everything to sink; it returns the
// master's PID. Postfix's defaults are kept otherwise.
func startPostfix(b *testing.B, dir, listen, sink string) []int {
	conf := filepath.Join(dir, "conf")
	for _, d := range []string{conf, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		os.MkdirAll(d, 0o755)
	}
	exec.Command("chown", "postfix", filepath.Join(dir, "data")).Run()
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(master), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
			if f[0] == "smtp" && f[1] == "inet" {
				f[0] = listen
			}
			f[4] = "n" // no chroot: the private queue has no /etc copy
			line = strings.Join(f, "  ")
		}
		out = append(out, line)
	}
	os.WriteFile(filepath.Join(conf, "master.cf"), []byte(strings.Join(out, "\n")), 0o644)
	os.WriteFile(filepath.Join(conf, "main.cf"), []byte(fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s/queue
data_directory = %s/data
myhostname = bench.test
mydestination =
relayhost = [%s]:%s
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file_prefixes = /tmp, /var
maillog_file = %s/maillog
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
alias_maps =
alias_database =
`, dir, dir, strings.Split(sink, ":")[0], strings.Split(sink, ":")[1], dir)), 0o644)
	if out, err := exec.Command("postfix", "-c", conf, "start").CombinedOutput(); err != nil {
		b.Fatalf("postfix start: %v %s", err, out)
	}
	var pid int
	waitForB(b, "postfix to listen", func() bool {
		p, _ := os.ReadFile(filepath.Join(dir, "queue", "pid", "master.pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(p)))
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return pid > 0 && err == nil
	})
	b.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			p.Signal(os.Interrupt)
		}
		time.Sleep(time.Second)
	})
	return []int{pid}
}

// runLoad submits n mails over `clients` connections (logging in as
// loginOf(client) when it is not nil) and waits until the relay reports them
// all delivered.
func runLoad(b *testing.B, addr string, loginOf func(client int) string, n, clients int, body []byte, sent func() int, pids []int) {
	var peak int64
	stopRSS := make(chan struct{})
	var rssWG sync.WaitGroup
	rssWG.Add(1)
	go func() {
		defer rssWG.Done()
		for {
			if r := treeRSS(pids); r > peak {
				peak = r
			}
			select {
			case <-stopRSS:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cl, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			if loginOf != nil {
				if err := cl.Auth(sasl.NewPlainClient("", loginOf(c), password)); err != nil {
					errs <- err
					return
				}
			}
			for i := c; i < n; i += clients {
				msg := append([]byte(fmt.Sprintf("From: <a@bench.test>\r\nTo: <b@sink.test>\r\nSubject: bench %d\r\nMessage-ID: <%d@bench.test>\r\n\r\n", i, i)), body...)
				t0 := time.Now()
				if err := cl.SendMail("a@bench.test", []string{"b@sink.test"}, bytes.NewReader(msg)); err != nil {
					errs <- fmt.Errorf("mail %d: %w", i, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}(c)
	}
	wg.Wait()
	accepted := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	waitForB(b, "every mail delivered to the sink", func() bool { return sent() >= n })
	e2e := time.Since(start)
	close(stopRSS)
	rssWG.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(n)/accepted.Seconds(), "accept-msg/s")
	b.ReportMetric(float64(n)/e2e.Seconds(), "e2e-msg/s")
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
}

// treeRSS sums the resident memory of the processes and all their descendants.
func treeRSS(roots []int) int64 {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	in := map[int]bool{}
	for _, r := range roots {
		in[r] = true
	}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if in[pp] && !in[pid] {
				in[pid], changed = true, true
			}
		}
	}
	var total int64
	for pid := range in {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				total += kb << 10
			}
		}
	}
	return total
}
