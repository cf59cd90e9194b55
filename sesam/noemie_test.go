package sesam_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// twelveInvoices is lot 042 of 12 invoices (409…420), each claimed 23.50 €;
// the fund pays all but invoice 417, which rejects carry.
func twelveInvoices(rejects ...sesam.Reject) sesam.NoemieFile {
	f := sesam.NoemieFile{Emitter: "01422000000000", Recipient: "12345678901234", FileID: "000042", FileDate: "261128",
		Lots: []sesam.NoemieLotRef{{Date: "261124", Number: "042"}}}
	for i := range 12 {
		inv := sesam.NoemieInvoice{Number: fmt.Sprint(409 + i), Lot: "042", LotDate: "261124", BillingDate: "261121", Claimed: 2350, Paid: 2350}
		if inv.Number == "417" {
			inv.Rejects, inv.Paid = rejects, 0
		}
		f.Invoices = append(f.Invoices, inv)
	}
	return f
}

func TestTrailerLotCountIsReadAtOffset82AfterExchangeTypeAndFileID(t *testing.T) {
	// The trailer by DOMAIN.md's widths, written out by hand (not by the
	// generator under test): routing fields of 000 up to and including
	// exchange type and file id, record count, flow type, blank, lot count.
	routing := "999" + "CP" + "01422000000000" + "NOEMIE" + "PS" + "12345678901234" + "LOGPS " + "01" + "000042"
	if len(routing) != 55 {
		t.Fatalf("routing fields are %d characters, DOMAIN.md says 55", len(routing))
	}
	trailer := routing + "00000010" + "R" + strings.Repeat(" ", 18) + "007" + "00000000000+"
	if got := trailer[82:85]; got != "007" {
		t.Fatalf("lot count at offset 82 is %q", got)
	}
	trailer += strings.Repeat(" ", 128-len(trailer))
	header := string(sesam.NoemieFile{FileID: "000042"}.Bytes()[:128])
	n, err := sesam.ParseNoemie([]byte(header + "\r\n08001261124042@\r\n" + trailer + "\r\n"))
	if err != nil || n.LotCount != 7 {
		t.Fatalf("LotCount %d, err %v: want 7, read at offset 82", n.LotCount, err)
	}

	// The generator writes its trailer the same way.
	f := twelveInvoices()
	f.Lots = append(f.Lots, sesam.NoemieLotRef{Date: "261124", Number: "043"})
	raw := string(f.Bytes())
	gen := raw[strings.LastIndex(raw, "\r\n999")+2:]
	if len(gen) != 128+2 || gen[:55] != "999"+string(f.Bytes()[3:55]) || gen[82:85] != "002" {
		t.Fatalf("generated trailer %q", gen)
	}
	if n, _ := sesam.ParseNoemie([]byte(raw)); n.LotCount != 2 {
		t.Fatalf("generated file: LotCount %d, want 2", n.LotCount)
	}
}

func TestRejectOfOneInvoiceIsNotTheWholeLot(t *testing.T) {
	raw := twelveInvoices(sesam.Reject{Entity: "294", Code: "R417", Label: "ACTE NON REMBOURSABLE"}).Bytes()
	n, err := sesam.ParseNoemie(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Invoices) != 12 || len(n.LotRejects) != 0 || len(n.Rejects) != 1 {
		t.Fatalf("%d invoices, lot rejects %+v, rejects %+v", len(n.Invoices), n.LotRejects, n.Rejects)
	}
	for _, inv := range n.Invoices {
		if inv.Lot != "042" || inv.LotDate != "261124" || inv.BillingDate != "261121" || inv.Claimed != 2350 {
			t.Errorf("invoice %+v", inv)
		}
		switch {
		case inv.Number == "417" && (len(inv.Rejects) != 1 || inv.Rejects[0].Kind != sesam.RejectRefused || inv.Rejects[0].Code != "R417" || inv.Paid != 0):
			t.Errorf("invoice 417: %+v", inv)
		case inv.Number != "417" && (len(inv.Rejects) != 0 || inv.Paid != 2350):
			t.Errorf("invoice %s has what is about 417: %+v", inv.Number, inv)
		}
	}
}

func TestRejectBeforeAnyInvoiceOrAfterALotIsAboutTheLot(t *testing.T) {
	f := twelveInvoices()
	f.Invoices = f.Invoices[:1]
	f.LotRejects = []sesam.Reject{{Entity: "290", Code: "L1", Label: "LOT REJETE"}}
	// A second lot after the invoice: the reject right after it is the lot's.
	f.Extra = "08001261125043@" + "29003" + "01" + fmt.Sprintf("%-10s%-80s", "L2", "FICHIER REFUSE") + "@"
	n, err := sesam.ParseNoemie(f.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(n.LotRejects) != 2 || n.LotRejects[0].Code != "L1" || n.LotRejects[1].Code != "L2" || len(n.Invoices[0].Rejects) != 0 || len(n.Rejects) != 2 {
		t.Fatalf("lot rejects %+v, invoice %+v", n.LotRejects, n.Invoices[0])
	}
	if len(n.Lots) != 2 || n.Lots[1].Number != "043" {
		t.Fatalf("lots %+v", n.Lots)
	}
}

func TestInvoiceWithoutLotFieldsTakesItsLotEntitys(t *testing.T) {
	f := twelveInvoices()
	f.Invoices = f.Invoices[:1]
	f.Invoices[0].Lot, f.Invoices[0].LotDate = "", ""
	n, _ := sesam.ParseNoemie(f.Bytes())
	if inv := n.Invoices[0]; inv.Lot != "042" || inv.LotDate != "261124" {
		t.Fatalf("invoice %+v", inv)
	}
}

func TestEntitiesBetweenAnInvoiceAndItsRejectDoNotDetachIt(t *testing.T) {
	// 110 stands for the patient entities this parser skips (and never keeps).
	f := twelveInvoices()
	f.Invoices = f.Invoices[:1]
	f.Extra = "11002SOMEONE           @" + "29403R999" + fmt.Sprintf("%-86s", "DOUBLON DE FSE") + "@"
	n, _ := sesam.ParseNoemie(f.Bytes())
	if r := n.Invoices[0].Rejects; len(r) != 1 || r[0].Kind != sesam.RejectDuplicate || n.Skipped != 1 || len(n.LotRejects) != 0 {
		t.Fatalf("invoice %+v, skipped %d", n.Invoices[0], n.Skipped)
	}
}

func TestAmountsAreCentsAbsentWhenMissingOrUnreadable(t *testing.T) {
	f := twelveInvoices()
	f.Invoices = f.Invoices[:3]
	f.Invoices[0].Claimed, f.Invoices[0].Paid = -1, -1
	f.Invoices[1].Paid = -1
	f.Invoices[2].Claimed, f.Invoices[2].Paid = 123, 99999999
	f.Extra = "19903ABCDEFGH@" + "19903    7   @" + "19903 1@"
	n, _ := sesam.ParseNoemie(f.Bytes())
	got := [][2]int64{}
	for _, inv := range n.Invoices {
		got = append(got, [2]int64{inv.Claimed, inv.Paid})
	}
	// The last invoice: its own 199, an unreadable one, then 7 and 1 cents more.
	if want := [][2]int64{{-1, -1}, {2350, -1}, {123, 99999999 + 7 + 1}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("amounts %v, want %v", got, want)
	}
}

func TestRejectKindIsReadFromTheLabelWithoutGuessing(t *testing.T) {
	for _, c := range []struct {
		entity, label string
		want          sesam.RejectKind
	}{
		{"290", "FACTURE EN DOUBLON", sesam.RejectDuplicate},
		{"290", "facture en doublon", sesam.RejectDuplicate},
		{"294", "DOUBLON DE FSE", sesam.RejectDuplicate},
		{"290", "REJET DOUBLON", sesam.RejectDuplicate},
		{"290", "Facture rejetée", sesam.RejectRefused},
		{"290", "FACTURE REJET\xc9E", sesam.RejectRefused}, // Latin-1
		{"290", "PRESTATION REFUSÉE", sesam.RejectRefused},
		{"290", "ACTE NON REMBOURSABLE", sesam.RejectRefused},
		{"290", "ACTE NON-REMBOURSABLE", sesam.RejectRefused},
		{"290", "BÉNÉFICIAIRE INCONNU", sesam.RejectRefused},
		{"290", "SIGNALEMENT : TAUX MODIFIE", sesam.RejectSignal},
		{"290", "Information : date de soins", sesam.RejectSignal},
		{"290", "AVERTISSEMENT", sesam.RejectSignal},
		{"290", "alerte", sesam.RejectSignal},
		{"290", "SIGNALEMENT : ACTE REJETE", sesam.RejectUnclear}, // both ways
		{"290", "MONTANT MODIFIE", sesam.RejectUnclear},
		{"290", "PROJET DE SOINS", sesam.RejectUnclear}, // REJET only at a word's start
		{"290", "", sesam.RejectUnclear},
		{"294", "ACTE NON REMBOURSABLE", sesam.RejectRefused},
		{"294", "INFORMATION", sesam.RejectRefused}, // a reject line is a reject
		{"294", "", sesam.RejectRefused},
		{"294", "FACTURE DEJA PAYEE", sesam.RejectDuplicate}, // billing it again would be a second billing
		{"294", "FSE DÉJÀ TRANSMISE", sesam.RejectDuplicate},
		{"290", "FACTURE EN DOUBLE", sesam.RejectDuplicate},
	} {
		if got := sesam.RejectKindOf(c.entity, c.label); got != c.want {
			t.Errorf("%s %q: %s, want %s", c.entity, c.label, got, c.want)
		}
	}
	// The parser gives each reject its kind.
	n, _ := sesam.ParseNoemie(twelveInvoices(sesam.Reject{Entity: "290", Code: "D1", Label: "FACTURE EN DOUBLON"},
		sesam.Reject{Entity: "290", Code: "X1", Label: "CODE 42"}).Bytes())
	if r := n.Invoices[8].Rejects; len(r) != 2 || r[0].Kind != sesam.RejectDuplicate || r[1].Kind != sesam.RejectUnclear {
		t.Fatalf("invoice 417's rejects %+v", r)
	}
}

func TestPaperAndLumpSumReturnsBelongToNoLot(t *testing.T) {
	for _, c := range []struct {
		types []string
		extra string
		want  bool
	}{
		{[]string{"02"}, "", true},
		{[]string{"03"}, "", true},
		{[]string{"02", "03"}, "", true},
		{[]string{"01"}, "", false},
		{[]string{"01", "02"}, "", false},
		{[]string{"01"}, "26101@", true},
		{nil, "", false},
	} {
		raw := string(sesam.NoemieFile{}.Bytes()[:128]) + "\r\n"
		for _, ty := range c.types {
			raw += "08101" + ty + strings.Repeat(" ", 14) + "@"
		}
		n, err := sesam.ParseNoemie([]byte(raw + c.extra))
		if err != nil || n.LotLess() != c.want || len(n.ReturnTypes) != len(c.types) {
			t.Errorf("081 %v %q: LotLess %v, %v", c.types, c.extra, n.LotLess(), err)
		}
	}
	// The generator's lump sum is a 081 03 and a 261.
	if n, _ := sesam.ParseNoemie(sesam.NoemieFile{ReturnType: "03"}.Bytes()); !n.LumpSum || !n.LotLess() {
		t.Fatalf("lump sum: %+v", n)
	}
}

func TestShortHeaderLineDoesNotEatTheFirstEntity(t *testing.T) {
	header := strings.TrimRight(string(sesam.NoemieFile{Recipient: "12345678901234"}.Bytes()[:128]), " ")
	n, err := sesam.ParseNoemie([]byte(header + "\r\n08001261124042@"))
	if err != nil || len(n.Lots) != 1 || n.Lots[0].Number != "042" || n.Recipient != "12345678901234" {
		t.Fatalf("%+v %v", n, err)
	}
}

func TestUnclosedEntityErrorDoesNotQuoteTheFile(t *testing.T) {
	raw := string(sesam.NoemieFile{}.Bytes()[:128]) + "\r\n08001261124042@11002DUPONT JEAN 1750599123456"
	n, err := sesam.ParseNoemie([]byte(raw))
	if err == nil || strings.Contains(err.Error(), "DUPONT") || strings.Contains(err.Error(), "1750") || len(n.Lots) != 1 {
		t.Fatalf("err %v, %+v", err, n)
	}
}

// tinyEntities is a file of count 4-byte 290 entities, the cheapest to
// write and the dearest to keep.
func tinyEntities(count int) []byte {
	return append(sesam.NoemieFile{}.Bytes()[:128], bytes.Repeat([]byte("290@"), count)...)
}

func TestKeptEntitiesAreCappedAndTheRestCounted(t *testing.T) {
	n, err := sesam.ParseNoemie(tinyEntities(sesam.MaxNoemieEntities + 5))
	if err != nil || len(n.Rejects) != sesam.MaxNoemieEntities || n.Skipped != 5 || !n.Truncated {
		t.Fatalf("%d rejects, %d skipped, truncated %v, %v", len(n.Rejects), n.Skipped, n.Truncated, err)
	}
	if n, _ := sesam.ParseNoemie(tinyEntities(10)); n.Truncated || n.Skipped != 0 {
		t.Fatalf("a small file is not truncated: %+v", n)
	}
}

func TestParsingAFullBudgetOfTinyEntitiesCostsLessThanItsInput(t *testing.T) {
	raw := tinyEntities(sesam.EDIBudget / 4)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, _ := sesam.ParseNoemie(raw)
	runtime.ReadMemStats(&after)
	// The cap keeps MaxNoemieEntities rejects (each in two lists); the
	// input itself is not copied.
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(len(raw)/2) || !n.Truncated {
		t.Fatalf("parsing %d bytes allocated %d", len(raw), got)
	}
}

func FuzzParseNoemieRoundTrip(f *testing.F) {
	f.Add("417", "294", "R1", "ACTE NON REMBOURSABLE", int64(2350), int64(0))
	f.Add("1", "290", "D", "FACTURE EN DOUBLON", int64(-1), int64(99999999))
	f.Fuzz(func(t *testing.T, number, entity, code, label string, claimed, paid int64) {
		// What the generator writes, the parser reads back, whatever the
		// fields (cut to their width, made printable).
		clean := func(s string, n int) string {
			s = strings.Map(func(r rune) rune {
				if r < '!' || r > '~' || r == '@' {
					return 'X'
				}
				return r
			}, s)
			return s[:min(n, len(s))]
		}
		if entity != "294" {
			entity = "290"
		}
		number, code, label = clean(number, 9), clean(code, 4), clean(label, 80)
		claimed, paid = max(claimed%1e8, -1), max(paid%1e8, -1)
		inv := sesam.NoemieInvoice{Number: number, Lot: "042", LotDate: "261124", Claimed: claimed, Paid: paid,
			Rejects: []sesam.Reject{{Entity: entity, Code: code, Label: label}}}
		n, err := sesam.ParseNoemie(sesam.NoemieFile{Lots: []sesam.NoemieLotRef{{Date: "261124", Number: "042"}}, Invoices: []sesam.NoemieInvoice{inv}}.Bytes())
		if err != nil || len(n.Invoices) != 1 || n.LotCount != 1 {
			t.Fatalf("%+v %v", n, err)
		}
		got := n.Invoices[0]
		if got.Number != number || got.Claimed != claimed || got.Paid != paid || len(got.Rejects) != 1 ||
			got.Rejects[0] != (sesam.Reject{Entity: entity, Code: code, Label: label, Kind: sesam.RejectKindOf(entity, label)}) {
			t.Fatalf("wrote %+v, read %+v", inv, got)
		}
	})
}
