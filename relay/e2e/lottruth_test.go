package e2e_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// lotTruthConfig counts delays in calendar time (a test cannot wait for
// Monday) with a 2 s acknowledgement delay, and no daily summary.
const lotTruthConfig = "[sesam]\nack_delay = \"2s\"\ncount = \"calendar\"\ndaily_summary = \"off\""

// submitLot gives the relay a lot by smtplib and waits until it is sent
// (the queue also sends the notices); it returns the lot's stamp.
func submitLot(t *testing.T, r *relay, lot sesam.SampleLot) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lot.eml")
	os.WriteFile(p, lot.Mail(), 0o600)
	if res := r.python(pyArgs{"file": p, "to": fund}); res[0].Code != 250 {
		t.Fatalf("%+v", res)
	}
	stamp := strings.Split(lot.Subject(), "/")[2]
	waitFor(t, 10*time.Second, "the lot sent", func() bool {
		for _, l := range r.lots().Lots {
			if l.Stamp == stamp && l.State == "delivered" {
				return true
			}
		}
		return false
	})
	return stamp
}

// phoneNotice waits for a notice whose Subject holds subject in the
// practitioner's phone login, by POP3, and returns its text.
func phoneNotice(t *testing.T, r *relay, subject string) string {
	t.Helper()
	var body string
	waitFor(t, 10*time.Second, "the notice "+subject, func() bool {
		for _, m := range r.poplib(pyArgs{"user": "dupont-mobile"}).Messages {
			if s, b := readNotice(t, m.Raw); strings.Contains(s, subject) {
				body = b
				return true
			}
		}
		return false
	})
	return body
}

type lotsJSON struct {
	Lots []struct {
		ID               int64  `json:"id"`
		Stamp            string `json:"stamp"`
		State            string `json:"state"`
		Safe             bool   `json:"safe"`
		RejectedInvoices []struct {
			Number, Code, Label string
		} `json:"rejected_invoices"`
	} `json:"lots"`
}

func (r *relay) lots() lotsJSON {
	r.t.Helper()
	var l lotsJSON
	out, _ := r.cli("lots", "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		r.t.Fatalf("lots --json: %v\n%s", err, out)
	}
	return l
}

// With Dovecot as the provider's IMAP: a negative ARL that says so only in
// its payload, an invoice refused in a NOEMIE return, the mailbox closed
// (password changed at the provider) and opened again.
func TestDovecotLotTruthFromReturnToNotice(t *testing.T) {
	dv := startDovecot(t)
	prov := newProvider(t)
	r := newRelay(t, prov, opts{imap: dv.imap, top: lotTruthConfig})
	now := time.Now()

	// 1. Lot 1 rejected by its payload only: REJECTED, never safe, and the
	// practitioner's phone is told in French.
	stamp1 := submitLot(t, r, sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 3, At: now.Add(-48 * time.Hour), Seq: 1})
	dv.save("INBOX", sesam.ARLMail{Subject: "ARL", To: sender, Stamp: stamp1, Outcome: sesam.ARLNegativeText(stamp1, "SIGNATURE INVERIFIABLE")}.Mail())
	r.cli("fetch", "dupont")
	if l := r.lots().Lots; len(l) != 1 || l[0].State != "rejected" || l[0].Safe {
		t.Fatalf("lot 1: %+v", l)
	}
	// The lot's date is the stamp's, as the billing software wrote it in
	// Paris time, whatever the box's clock (UTC here).
	if out, _ := r.cli("lots"); !strings.Contains(out, stamp1[:4]+"-"+stamp1[4:6]+"-"+stamp1[6:8]+" "+stamp1[8:10]+":"+stamp1[10:12]) {
		t.Errorf("lots does not show the stamp's own time %s:\n%s", stamp1, out)
	}
	body := phoneNotice(t, r, "Lot rejeté par la caisse")
	for _, want := range []string{"SIGNATURE INVERIFIABLE", "Réémettez-le", "3 jours ouvrés"} {
		if !strings.Contains(body, want) {
			t.Errorf("the rejection notice lacks %q:\n%s", want, body)
		}
	}
	// The same notice was mailed to the practitioner's own address through
	// the provider; its copy that comes back is kept from the billing software.
	var copyBack []byte
	for _, m := range prov.Mails() {
		if len(m.To) == 1 && m.To[0] == sender && bytes.Contains(m.Data, []byte(".notice@relais.test>")) {
			copyBack = m.Data
		}
	}
	if copyBack == nil {
		t.Fatal("the notice was not mailed to the practitioner's address")
	}
	dv.save("INBOX", copyBack)
	r.cli("fetch", "dupont")
	for _, m := range r.poplib(pyArgs{}).Messages {
		if bytes.Contains(m.Raw, []byte(".notice@relais.test>")) {
			t.Fatal("the billing software was served the relay's own notice")
		}
	}

	// 2. Lot 2 acknowledged, then invoice 417 refused: the lot stays
	// acknowledged, and the phone is asked to bill that invoice again.
	stamp2 := submitLot(t, r, sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 12, At: now.Add(-24 * time.Hour), Seq: 2})
	dv.save("INBOX", sesam.ARLMail{Subject: "ARL positif", To: sender, Stamp: stamp2, Outcome: sesam.ARLPositiveText(stamp2)}.Mail())
	dv.save("INBOX", sesam.NoemieMail{To: sender, Gzip: true, Payload: sesam.NoemieFile{Recipient: "12345678901234", FileDate: stamp2[2:8],
		Lots:     []sesam.NoemieLotRef{{Date: stamp2[2:8], Number: "002"}},
		Invoices: []sesam.NoemieInvoice{{Number: "000000417", Rejects: []sesam.Reject{{Entity: "294", Code: "R042", Label: "ACTE NON REMBOURSABLE"}}, Claimed: 2500, Paid: 0}},
	}.Bytes()}.Mail())
	r.cli("fetch", "dupont")
	l := r.lots().Lots
	if len(l) != 2 || l[1].State != "acknowledged" || !l[1].Safe || len(l[1].RejectedInvoices) != 1 || l[1].RejectedInvoices[0].Label != "ACTE NON REMBOURSABLE" {
		t.Fatalf("lot 2: %+v", l)
	}
	body = phoneNotice(t, r, "1 facture rejetée : à refacturer")
	for _, want := range []string{"n° 417", "Les 11 autres ne sont pas concernées", "ne renvoyez pas le lot"} {
		if !strings.Contains(body, want) {
			t.Errorf("the re-bill notice lacks %q:\n%s", want, body)
		}
	}
	if out, _ := r.cli("lots", "show", itoa(l[1].ID)); !strings.Contains(out, "ACKNOWLEDGED") || !strings.Contains(out, "invoice 000000417: R042 ACTE NON REMBOURSABLE") {
		t.Fatalf("lots show:\n%s", out)
	}

	// 3. The provider closes the mailbox (the password was changed there):
	// one outage notice, and no "no acknowledgement" notice for lot 3,
	// sent meanwhile, however long the delay has run.
	dv.setPassword("changed-after-an-attack")
	r.stop()
	r.start()
	submitLot(t, r, sesam.SampleLot{From: sender, Fund: fund, Emitter: "12345678901234", Invoices: 5, At: now, Seq: 3})
	body = phoneNotice(t, r, "Relève des retours bloquée par laposte.net")
	for _, want := range []string{"Vos lots partent quand même", "webmail", "mot de passe"} {
		if !strings.Contains(body, want) {
			t.Errorf("the outage notice lacks %q:\n%s", want, body)
		}
	}
	if out, _ := r.cli("status"); !strings.Contains(out, "collection from the provider is failing since") || strings.Contains(out, "lots show 0") {
		t.Errorf("status on the outage:\n%s", out)
	}
	time.Sleep(4 * time.Second) // the 2 s acknowledgement delay runs out
	r.cli("fetch", "dupont")
	time.Sleep(time.Second)
	kinds := map[string]int{}
	for _, m := range r.poplib(pyArgs{"user": "dupont-mobile"}).Messages {
		s, _ := readNotice(t, m.Raw)
		kinds[s]++
	}
	if kinds["Relève des retours bloquée par laposte.net"] != 1 {
		t.Errorf("want one outage notice: %v", kinds)
	}
	for s := range kinds {
		if strings.Contains(s, "Pas d'accusé de réception") {
			t.Errorf("a missing-ARL notice during the outage: %v", kinds)
		}
	}

	// 4. The password given back: collection is back, and said so.
	dv.setPassword("provider-pw")
	waitFor(t, 20*time.Second, "a poll that works again", func() bool {
		out, code := r.cli("fetch", "dupont")
		return code == 0 && !strings.Contains(out, "rejected")
	})
	body = phoneNotice(t, r, "Relève des retours rétablie")
	if !strings.Contains(body, "laposte.net") {
		t.Errorf("the recovery notice:\n%s", body)
	}
}
