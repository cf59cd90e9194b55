package e2e_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/demo"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// The billing software learns of a refused lot the way it would from the
// provider: the DSN waits in its POP3 maildrop.
func TestBounceIsCollectedByPoplibOverSTLS(t *testing.T) {
	prov := newProvider(t)
	prov.SetMode(demo.PermFail)
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a bounce", func() bool { return only(t, r).State == store.Bounced })
	res := r.poplib(pyArgs{"mode": "stls", "dele": true})
	if res.Stat[0] != 1 || len(res.Messages) != 1 || !strings.HasPrefix(res.Quit, "+OK") {
		t.Fatalf("%+v", res)
	}
	_, human, _ := dsnParts(t, res.Messages[0].Raw)
	if !strings.Contains(human, "n'a pas pu être remis") {
		t.Fatalf("the DSN's French text is missing:\n%s", human)
	}
	if res.Stat[1] != res.Messages[0].Octets {
		t.Fatalf("STAT announced %d octets, RETR sent %d", res.Stat[1], res.Messages[0].Octets)
	}
	// Deleted for the billing software, still there for the phone.
	if again := r.poplib(pyArgs{"mode": "ssl"}); again.Stat[0] != 0 {
		t.Fatalf("deleted message still served: %+v", again.Stat)
	}
	phone := r.poplib(pyArgs{"mode": "ssl", "user": "dupont-mobile"})
	if phone.Stat[0] != 1 || phone.UIDL[0] != res.UIDL[0] {
		t.Fatalf("the other login's view: %+v (uidl %v vs %v)", phone.Stat, phone.UIDL, res.UIDL)
	}
}

func TestCurlCollectsOverPOP3SAndSTLS(t *testing.T) {
	need(t, "curl")
	prov := newProvider(t)
	prov.SetMode(demo.PermFail)
	r := newRelay(t, prov, opts{})
	submitOne(t, r)
	waitFor(t, 10*time.Second, "a bounce", func() bool { return only(t, r).State == store.Bounced })
	for _, url := range []string{"pop3s://" + r.pop3s + "/1", "pop3://" + r.pop3 + "/1"} {
		out, err := exec.Command("curl", "-sS", "-k", "--ssl-reqd", "--user", login+":"+password, url).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("multipart/report")) {
			t.Fatalf("curl %s: %v\n%s", url, err, out)
		}
	}
	out, err := exec.Command("curl", "-sS", "-k", "--ssl-reqd", "--user", login+":"+password, "pop3://"+r.pop3+"/").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "1 ") {
		t.Fatalf("curl LIST: %v\n%s", err, out)
	}
}
