package sesam_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// sampleNoemie reads a testdata/mail sample's NOEMIE payload as the relay
// does: its EDI parts, decoded, the first that parses.
func sampleNoemie(t *testing.T, name string) (sesam.Noemie, sesam.Payload) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("../testdata/mail", name))
	if err != nil {
		t.Fatalf("%v (run go test ./sesam -run TestSamples -update)", err)
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("%s: a line does not end in CRLF", name)
	}
	ps, err := payloads(raw)
	if err != nil || len(ps) != 1 || ps[0].Err != nil {
		t.Fatalf("%s: payloads %+v, %v", name, ps, err)
	}
	n, err := sesam.ParseNoemie(ps[0].Data)
	if err != nil && !strings.HasPrefix(name, "arl-") {
		t.Fatalf("%s: %v", name, err)
	}
	return n, ps[0]
}

func TestSampleInvoiceRejectRefusesInvoice417Only(t *testing.T) {
	n, p := sampleNoemie(t, "noemie-invoice-reject.eml")
	if !p.Gzipped || p.Description != "NOEMIE RSP 576" || len(n.Invoices) != 12 || len(n.LotRejects) != 0 || n.LotLess() || n.LotCount != 1 {
		t.Fatalf("%+v", n)
	}
	for _, inv := range n.Invoices {
		refused := len(inv.Rejects) == 1 && inv.Rejects[0].Kind == sesam.RejectRefused && inv.Rejects[0].Label == "ACTE NON REMBOURSABLE"
		if (inv.Number == "417") != refused || inv.Lot != "042" || inv.LotDate != "261124" {
			t.Errorf("invoice %+v", inv)
		}
	}
}

func TestSampleDoublonSaysTheFundHasTheInvoice(t *testing.T) {
	n, p := sampleNoemie(t, "noemie-doublon.eml")
	if p.Gzipped || len(n.Invoices) != 3 || len(n.Rejects) != 1 || len(n.LotRejects) != 0 {
		t.Fatalf("%+v", n)
	}
	if inv := n.Invoices[1]; inv.Number != "417" || len(inv.Rejects) != 1 || inv.Rejects[0].Entity != "290" || inv.Rejects[0].Kind != sesam.RejectDuplicate {
		t.Fatalf("invoice %+v", inv)
	}
}

func TestPaperAndLumpSumSamplesBelongToNoLot(t *testing.T) {
	for name, lump := range map[string]bool{"noemie-lump-sum.eml": true, "noemie-paper.eml": false} {
		n, _ := sampleNoemie(t, name)
		if !n.LotLess() || n.LumpSum != lump || len(n.Lots) != 0 || len(n.Invoices) != 0 {
			t.Errorf("%s: %+v", name, n)
		}
	}
	if n, _ := sampleNoemie(t, "noemie-invoice-reject.eml"); n.LotLess() {
		t.Error("an electronic return read as lot-less")
	}
}

func TestSampleARLPayloadsStateTheirOutcome(t *testing.T) {
	for name, want := range map[string]string{
		"arl-payload-negative.eml": "ARL NEGATIF : LOT 2026112408150000042 REJETE : SIGNATURE INVERIFIABLE",
		"arl-positive.eml":         "ARL POSITIF : LOT 2026112408150000042 RECU ET CONFORME",
	} {
		_, p := sampleNoemie(t, name)
		if p.Description != "ARL" || strings.TrimSpace(string(p.Data)) != want {
			t.Errorf("%s: %q %q", name, p.Description, p.Data)
		}
	}
	raw, _ := os.ReadFile("../testdata/mail/arl-payload-negative.eml")
	if h := sesam.ReadHeaders(raw); h.Subject != "ARL" {
		t.Errorf("negative ARL's Subject %q: want just ARL (the payload tells the outcome)", h.Subject)
	}
}

func TestReturnMailBuildersMakeStableCRLFMail(t *testing.T) {
	f := twelveInvoices().Bytes()
	m := sesam.NoemieMail{Description: "NOEMIE RSP 578", Gzip: true, Payload: f}
	a, b := m.Mail(), m.Mail()
	if !bytes.Equal(a, b) {
		t.Fatal("the same description made two mails")
	}
	h := sesam.ReadHeaders(a)
	if !strings.Contains(h.From, ".test") || h.MessageID == "" || !bytes.Contains(a, []byte("\r\nContent-Type: multipart/mixed")) {
		t.Fatalf("headers %+v", h)
	}
	ps, err := payloads(a)
	if err != nil || len(ps) != 1 || !ps[0].Gzipped || ps[0].Description != "NOEMIE RSP 578" || !bytes.Equal(ps[0].Data, f) {
		t.Fatalf("payloads %+v %v", ps, err)
	}
	if ps, _ := payloads(sesam.ARLMail{Subject: "ARL", Stamp: "1"}.Mail()); len(ps) != 0 {
		t.Fatalf("an ARL without outcome has a payload: %+v", ps)
	}
}
