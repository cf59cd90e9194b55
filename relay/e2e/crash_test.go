package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestKillsWithAResubmittingClientQueueAndSendNothingTwice kills the relay
// twenty times during a 600-mail burst from a client that, like billing
// software after a dropped connection, sends again each mail whose 250 it
// did not see. A mail made durable just before a kill, whose 250 never left,
// comes back as a resubmission: it must be answered 250 and not queued
// again. Every mail must end delivered once or held as uncertain.
func TestKillsWithAResubmittingClientQueueAndSendNothingTwice(t *testing.T) {
	prov := newProvider(t)
	prov.SetReplyDelay(3 * time.Millisecond)
	r := newRelay(t, prov, opts{})
	addrFile := filepath.Join(t.TempDir(), "addr")
	setAddr := func() {
		os.WriteFile(addrFile+".new", []byte(r.smtp), 0o600)
		os.Rename(addrFile+".new", addrFile) // the client reads it at each connection
	}
	setAddr()
	const count = 600
	args, _ := json.Marshal(pyArgs{"host": "-", "port": "-", "addrfile": addrFile, "mode": "starttls", "user": login, "password": password,
		"from": sender, "to": other, "count": count, "threads": 10, "size": 20000, "prefix": "rs", "resubmit": 400})
	cmd := exec.Command("python3", "testdata/smtpclient.py", string(args))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	accepted, resubmitted, kills := map[string]bool{}, 0, 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var x struct {
			result
			Tries int `json:"tries"`
		}
		if json.Unmarshal(sc.Bytes(), &x) != nil {
			continue
		}
		if x.Code != 250 {
			t.Errorf("mail %d: %+v", x.I, x)
			continue
		}
		accepted["<rs-"+itoa(int64(x.I))+"@billing.test>"] = true
		if x.Tries > 1 {
			resubmitted++
		}
		if len(accepted)%25 == 0 && kills < 20 {
			r.kill() // mid-burst, mid-delivery
			r.start()
			setAddr()
			kills++
		}
	}
	cmd.Wait()
	if len(accepted) != count || kills != 20 {
		t.Fatalf("%d of %d mails accepted, %d kills", len(accepted), count, kills)
	}
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
	queued, held := map[string]int{}, map[string]bool{}
	for _, m := range r.queue() {
		queued[m.MessageID]++
		if m.State == store.Held {
			held[m.MessageID] = true
		}
	}
	twice := 0
	for id := range accepted {
		if got[id] > 1 || queued[id] > 1 {
			twice++
			t.Errorf("%s queued %d times, reached the provider %d times", id, queued[id], got[id])
		}
		if got[id] == 0 && !held[id] {
			t.Errorf("%s was answered 250 and is neither delivered nor held", id)
		}
	}
	t.Logf("20 kills: %d mails accepted (%d after a resubmission), %d delivered, %d held as uncertain, %d queued or sent twice; relay log: %d resubmissions recognised",
		len(accepted), resubmitted, len(got), len(held), twice, strings.Count(r.Log(), "resubmission of a mail already accepted"))
}
