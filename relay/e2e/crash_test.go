package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/mail"
	"os/exec"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// TestKillDuringBurstLosesNothingAndSendsNothingTwice kills the relay with
// SIGKILL while ten clients submit and the worker delivers, three times over,
// then restarts it and counts: every mail answered 250 is delivered exactly
// once, or held as uncertain; no mail reaches the provider twice.
func TestKillDuringBurstLosesNothingAndSendsNothingTwice(t *testing.T) {
	prov := newProvider(t)
	prov.SetReplyDelay(3 * time.Millisecond)
	r := newRelay(t, prov, opts{})
	accepted := map[string]bool{}
	for round := 0; round < 3; round++ {
		host, port := r.hostPort(false)
		args, _ := json.Marshal(pyArgs{"host": host, "port": port, "mode": "starttls", "user": login, "password": password,
			"from": sender, "to": other, "count": 200, "threads": 10, "size": 20000, "prefix": "r" + itoa(int64(round))})
		cmd := exec.Command("python3", "testdata/smtpclient.py", string(args))
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			var x result
			if json.Unmarshal(sc.Bytes(), &x) != nil {
				continue
			}
			if x.Code == 250 {
				accepted["<r"+itoa(int64(round))+"-"+itoa(int64(x.I))+"@billing.test>"] = true
				n++
			}
			if n == 60+20*round && r.cmd != nil {
				r.kill() // mid-burst, mid-delivery
			}
		}
		cmd.Wait()
		if r.cmd != nil {
			t.Fatalf("round %d: the burst ended before the kill (%d accepted)", round, n)
		}
		r.start()
	}
	// Let the restarted relay deliver everything that is not held.
	waitFor(t, 60*time.Second, "the queue to drain", func() bool {
		s := r.states()
		return s[store.Queued]+s[store.Deferred]+s[store.Sending] == 0
	})
	got := map[string]int{}
	for _, m := range prov.Mails() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		got[msg.Header.Get("Message-Id")]++
	}
	held := map[string]bool{}
	for _, m := range r.queue() {
		if m.State == store.Held {
			held[m.MessageID] = true
		}
	}
	for id, n := range got {
		if n > 1 {
			t.Errorf("%s reached the provider %d times", id, n)
		}
	}
	lost := 0
	for id := range accepted {
		if got[id] == 0 && !held[id] {
			lost++
			t.Errorf("%s was answered 250 and is neither delivered nor held", id)
		}
	}
	t.Logf("3 kills: %d mails answered 250, %d delivered, %d held as uncertain, %d lost, 0 twice", len(accepted), len(got), len(held), lost)
	if len(accepted) < 150 {
		t.Fatalf("only %d mails accepted: the test did not exercise much", len(accepted))
	}
}
