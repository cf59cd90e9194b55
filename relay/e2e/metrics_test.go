package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const rulesDir = "../../packaging/prometheus"

// The shipped alert rules are valid for Prometheus (promtool check rules)
// and each alert fires on the series it is made for, and not before
// (promtool test rules, on the cases of sesam-relay.rules.test.yml).
func TestShippedAlertRulesPassPromtool(t *testing.T) {
	needTools(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "sesam-relay.rules.yml"},
		{"test", "rules", "sesam-relay.rules.test.yml"},
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = rulesDir
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// prometheus is Debian's Prometheus server, on loopback, scraping one
// target every second with the shipped rules loaded.
type prometheus struct {
	t    *testing.T
	addr string
}

func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	needTools(t, "prometheus")
	dir := t.TempDir()
	rules, _ := filepath.Abs(filepath.Join(rulesDir, "sesam-relay.rules.yml"))
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: sesam-relay
    static_configs:
      - targets: [%q]
`, rules, target)
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644)
	p := &prometheus{t: t, addr: freeTCP(t)}
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	log, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	waitFor(t, 30*time.Second, "prometheus to answer", func() bool {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// value is the single value of an instant query; ok false when the
// query selects nothing.
func (p *prometheus) value(query string) (float64, bool) {
	p.t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		p.t.Fatalf("query %s: %v %+v", query, err, r)
	}
	if len(r.Data.Result) != 1 {
		return 0, false
	}
	v, _ := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
	return v, true
}

func (p *prometheus) waitValue(query string, want float64) {
	p.t.Helper()
	waitFor(p.t, 30*time.Second, fmt.Sprintf("%s == %v in Prometheus", query, want), func() bool {
		v, ok := p.value(query)
		return ok && v == want
	})
}

func needTools(t *testing.T, tools ...string) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: .ci/test installs it (apt-get install -y prometheus)", tool)
		}
	}
}

func getMetrics(t *testing.T, addr, accept string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// A real Prometheus scrapes the real binary: the delivery of a lot is
// counted, collection is "ok"; then the provider's IMAP (Dovecot) goes
// away and the "collection failing" series change, as the alert reads
// them. The names pass promtool's lint, and the answer is OpenMetrics.
func TestPrometheusScrapesTheRelayAndSeesCollectionFail(t *testing.T) {
	dv := startDovecot(t)
	r := newRelay(t, newProvider(t), opts{imap: dv.imap, top: "[metrics]\nlisten = [\"127.0.0.1:0\"]\n"})
	if r.metrics == "" {
		t.Fatalf("status does not list the metrics listener")
	}
	code, ctype, body := getMetrics(t, r.metrics, "application/openmetrics-text; version=1.0.0")
	if code != 200 || !strings.HasPrefix(ctype, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("GET /metrics for OpenMetrics: %d %s\n%s", code, ctype, body)
	}
	_, _, text := getMetrics(t, r.metrics, "text/plain")
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = strings.NewReader(text)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
	for _, want := range []string{
		`sesam_relay_build_info{`,
		`sesam_relay_queue_messages{account="dupont",state="queued"} 0`,
		`sesam_relay_lots{account="dupont",state="acknowledged"} 0`,
		`sesam_relay_upstream_state{account="dupont",link="imap",state="ok"} 1`,
		`sesam_relay_last_backup_timestamp_seconds 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, text)
		}
	}

	p := startPrometheus(t, r.metrics)
	p.waitValue(`up{job="sesam-relay"}`, 1)
	if res := r.python(pyArgs{}); len(res) != 1 || res[0].Code != 250 {
		t.Fatalf("submitting: %+v", res)
	}
	p.waitValue(`sesam_relay_delivery_attempts_total{account="dupont",result="sent"}`, 1)
	p.waitValue(`sesam_relay_queue_messages{account="dupont",state="queued"}`, 0)
	p.waitValue(`sesam_relay_upstream_state{account="dupont",link="imap",state="ok"}`, 1)
	if v, ok := p.value(`sesam_relay_upstream_failing_seconds{account="dupont",link="imap"}`); !ok || v != 0 {
		t.Fatalf("collection failing before the provider went away: %v %v", v, ok)
	}
	// The backup alert, of the shipped rules, fires: no backup was ever made.
	p.waitValue(`count(ALERTS{alertname="SesamRelayBackupTooOld",alertstate="firing"})`, 1)

	dv.stop()
	// Refused on the IMAP port while SMTP works: the relay calls it access
	// closed (laposte.net's 2022 outage), and so does /metrics.
	if out, _ := r.cli("fetch", "dupont"); !strings.Contains(out, "closed IMAP access") {
		t.Errorf("fetch with Dovecot gone: %s", out)
	}
	p.waitValue(`sesam_relay_upstream_state{account="dupont",link="imap",state="access_closed"}`, 1)
	p.waitValue(`sesam_relay_upstream_state{account="dupont",link="imap",state="ok"}`, 0)
	waitFor(t, 30*time.Second, "collection failing to grow in Prometheus", func() bool {
		v, ok := p.value(`sesam_relay_upstream_failing_seconds{account="dupont",link="imap"}`)
		return ok && v > 0
	})
}

// /metrics answers only the hosts of [metrics] allow: from elsewhere the
// connection is closed before any HTTP; and it is off unless listen is set.
func TestMetricsRefuseHostsOutsideTheirAllowlist(t *testing.T) {
	r := newRelay(t, newProvider(t), opts{top: "[metrics]\nlisten = [\"127.0.0.1:0\"]\nallow = [\"10.0.0.1\"]\n"})
	out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://"+r.metrics+"/metrics").CombinedOutput()
	if err == nil || strings.Contains(string(out), "200") {
		t.Fatalf("curl from outside [metrics] allow got an answer: %v %s", err, out)
	}
	if !strings.Contains(r.Log(), "connection refused: address not in [metrics] allow") {
		t.Errorf("the refusal is not logged:\n%s", r.Log())
	}
	plain := newRelay(t, newProvider(t), opts{})
	for _, l := range plain.status().Listeners {
		if strings.HasPrefix(l, "metrics://") {
			t.Fatalf("metrics listen by default: %v", plain.status().Listeners)
		}
	}
}
