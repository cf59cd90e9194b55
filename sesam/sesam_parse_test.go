package sesam_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

func TestLotSubjectIsReadLeniently(t *testing.T) {
	good := map[string]sesam.LotSubject{
		"IR/12345678901234/2026112408150012345/00003":         {Prefix: "IR", Emitter: "12345678901234", Invoices: 3},
		"IR000123/12345678901234/2026112408150012345/00012":   {Prefix: "IR000123", Emitter: "12345678901234", Invoices: 12},
		" ir / 12345678901234 / 2026112408150012345 / 00001 ": {Prefix: "IR", Emitter: "12345678901234", Invoices: 1},
		"IR/ABCD5678901234/20261124081500/7":                  {Prefix: "IR", Emitter: "ABCD5678901234", Invoices: 7},
	}
	for in, want := range good {
		got, err := sesam.ParseLotSubject(in)
		if err != nil || got.Prefix != want.Prefix || got.Emitter != want.Emitter || got.Invoices != want.Invoices {
			t.Errorf("%q: %+v %v", in, got, err)
		}
		if got.At.Year() != 2026 || got.At.Hour() != 8 || got.At.Minute() != 15 {
			t.Errorf("%q: stamp %v", in, got.At)
		}
	}
	for _, bad := range []string{"", "Re: IR/1/2/3", "IR/x/2026/1", "XR/12345678901234/2026112408150012345/00003",
		"IR/12345678901234/2026133108150012345/00003", "IR/12345678901234/2026112408150012345/-1", "IR/123456789012345/2026112408150012345/1"} {
		if _, err := sesam.ParseLotSubject(bad); err == nil {
			t.Errorf("%q taken for a lot subject", bad)
		}
	}
}

func TestFundAddressMustAgreeWithItself(t *testing.T) {
	for in, want := range map[string]string{"01422@422.01.rss.fr": "01422", "<02996@996.02.RSS.FR>": "02996"} {
		f, ok := sesam.ParseFundAddress(in)
		if !ok || f.String() != want {
			t.Errorf("%q: %v %v", in, f, ok)
		}
	}
	if f, _ := sesam.ParseFundAddress("02996@996.02.rss.fr"); !f.Test() {
		t.Error("caisse 996 is a test fund")
	}
	for _, bad := range []string{"01422@423.01.rss.fr", "01422@422.02.rss.fr", "1422@422.01.rss.fr", "01422@422.01.rss.com", "jean@laposte.net"} {
		if _, ok := sesam.ParseFundAddress(bad); ok {
			t.Errorf("%q taken for a fund", bad)
		}
	}
}

// clearLot is a lot whose B2 file is attached without S/MIME.
func clearLot() []byte {
	return []byte("From: <jean.dupont@laposte.net>\r\nTo: <01422@422.01.rss.fr>\r\nSubject: IR/12345678901234/2026112408150012345/00003\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/EDI-consent\r\n" +
		"Content-Description: IRIS/B2/Z\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n")
}

func TestInspectOutboundTellsEncryptedFromClear(t *testing.T) {
	lot := sesam.SampleLot{From: "jean.dupont@laposte.net", Fund: "01422@422.01.rss.fr", Emitter: "12345678901234", Invoices: 3, At: time.Now(), Seq: 1}
	o := sesam.InspectOutbound(lot.Mail(), []string{lot.Fund})
	if !o.Lot || !o.Encrypted || o.Clear || o.Fund.String() != "01422" || !o.SubjectOK || o.Subject.Invoices != 3 || o.Test {
		t.Fatalf("S/MIME lot: %+v", o)
	}
	o = sesam.InspectOutbound(clearLot(), []string{"01422@422.01.rss.fr"})
	if !o.Lot || !o.Clear || !strings.Contains(o.ClearWhy, "application/edi-consent") {
		t.Fatalf("clear lot: %+v", o)
	}
	// Some senders put the description on the top-level header of an S/MIME mail.
	top := bytes.Replace(lot.Mail(), []byte("MIME-Version: 1.0\r\n"), []byte("MIME-Version: 1.0\r\nContent-Description: IRISTEST/B2\r\n"), 1)
	if o := sesam.InspectOutbound(top, []string{lot.Fund}); o.Clear || !o.Test {
		t.Fatalf("top-level IRISTEST on S/MIME: %+v", o)
	}
	plain := []byte("Subject: hello\r\n\r\nnot a lot\r\n")
	if o := sesam.InspectOutbound(plain, []string{"someone@laposte.net"}); o.Lot || o.Clear {
		t.Fatalf("ordinary mail: %+v", o)
	}
	if o := sesam.InspectOutbound(plain, []string{"01422@422.01.rss.fr"}); !o.Clear || !strings.Contains(o.ClearWhy, "no S/MIME") {
		t.Fatalf("unencrypted mail to a fund: %+v", o)
	}
}

// noemieFile is the project's generator (sesam.NoemieFile) with the header
// fields the tests use: lots of {date, number}, lot-level 290s of these
// codes (a warning: "SIGNALEMENT ORDONNANCE A FOURNIR"), extra raw entities before the trailer.
func noemieFile(lots [][2]string, rejects []string, extra string) string {
	f := sesam.NoemieFile{Emitter: "01422000000000", Recipient: "12345678901234", FileID: "000042", FileDate: "261124", Extra: extra}
	for _, l := range lots {
		f.Lots = append(f.Lots, sesam.NoemieLotRef{Date: l[0], Number: l[1]})
	}
	for _, r := range rejects {
		f.LotRejects = append(f.LotRejects, sesam.Reject{Entity: "290", Code: r, Label: "SIGNALEMENT ORDONNANCE A FOURNIR"})
	}
	return string(f.Bytes())
}

func TestNoemieReturnIsReadAndUnknownEntitiesSkipped(t *testing.T) {
	f := noemieFile([][2]string{{"261124", "017"}, {"261124", "018"}}, []string{"R123"}, "77701SOMETHING NEW@")
	n, err := sesam.ParseNoemie([]byte(f))
	if err != nil {
		t.Fatal(err)
	}
	if n.EmitterType != "CP" || n.Recipient != "12345678901234" || n.FileDate != "261124" || n.Demo {
		t.Fatalf("header %+v", n)
	}
	if len(n.Lots) != 2 || n.Lots[1].Number != "018" || n.LotCount != 2 || n.Skipped != 1 {
		t.Fatalf("entities %+v", n)
	}
	if len(n.Rejects) != 1 || n.Rejects[0].Code != "R123" || n.Rejects[0].Label != "SIGNALEMENT ORDONNANCE A FOURNIR" || n.Rejects[0].Kind != sesam.RejectSignal {
		t.Fatalf("rejects %+v", n.Rejects)
	}
	if _, err := sesam.ParseNoemie([]byte("hello")); err == nil {
		t.Fatal("junk read as NOEMIE")
	}
	// A file cut before its trailer still gives what it holds.
	cut := f[:strings.Index(f, "081")]
	if n, _ := sesam.ParseNoemie([]byte(cut)); len(n.Lots) != 2 || n.LotCount != -1 {
		t.Fatalf("cut file: %+v", n)
	}
}

func ediMail(desc string, payload []byte, gz bool) []byte {
	if gz {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(payload)
		w.Close()
		payload = b.Bytes()
	}
	return []byte("From: <noemie@cpam.fr>\r\nSubject: retour\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n" +
		"Content-Type: text/plain\r\n\r\nRetour NOEMIE\r\n--z\r\nContent-Type: Application/EDI-Consent\r\nContent-Description: " + desc +
		"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(payload) + "\r\n--z--\r\n")
}

func TestEDIPayloadsAreDecodedGzippedOrNot(t *testing.T) {
	f := noemieFile([][2]string{{"261124", "017"}}, nil, "")
	for _, gz := range []bool{false, true} {
		ps, err := payloads(ediMail("NOEMIE RSP", []byte(f), gz))
		if err != nil || len(ps) != 1 || ps[0].Err != nil || ps[0].Gzipped != gz || string(ps[0].Data) != f || ps[0].Description != "NOEMIE RSP" {
			t.Fatalf("gzip %v: %+v", gz, ps)
		}
	}
}

func TestGzipBombIsCappedNotInflated(t *testing.T) {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	zero := make([]byte, 1<<20)
	for i := 0; i < 100; i++ { // 100 MiB of zeros, about 100 KiB compressed
		w.Write(zero)
	}
	w.Close()
	ps, err := payloads(ediMail("NOEMIE", b.Bytes(), false))
	if len(ps) != 0 || !errors.Is(err, sesam.ErrOverBudget) {
		t.Fatalf("bomb: err %v, %d payloads", err, len(ps))
	}
}

// payloads collects a mail's EDI payloads, copied.
func payloads(raw []byte) ([]sesam.Payload, error) {
	var ps []sesam.Payload
	err := sesam.EachEDIPayload(raw, func(p sesam.Payload) bool {
		p.Data = bytes.Clone(p.Data)
		ps = append(ps, p)
		return true
	})
	return ps, err
}

func FuzzParseLotSubject(f *testing.F) {
	f.Add("IR/12345678901234/2026112408150012345/00003")
	f.Add("IR000123/x/99999999999999/00")
	f.Fuzz(func(t *testing.T, s string) { sesam.ParseLotSubject(s) })
}

func FuzzParseFundAddress(f *testing.F) {
	f.Add("01422@422.01.rss.fr")
	f.Fuzz(func(t *testing.T, s string) { sesam.ParseFundAddress(s) })
}

func FuzzParseNoemie(f *testing.F) {
	f.Add([]byte(noemieFile([][2]string{{"261124", "017"}}, []string{"R1"}, "12301x@")))
	f.Add(twelveInvoices(sesam.Reject{Entity: "294", Code: "R417", Label: "ACTE NON REMBOURSABLE"}).Bytes())
	f.Add(sesam.NoemieFile{ReturnType: "03"}.Bytes())
	f.Add(tinyEntities(50))
	f.Add([]byte("000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Whatever the input, parsing it costs a bounded multiple of its
		// size (the struct of each entity kept, never a copy of the whole).
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n, _ := sesam.ParseNoemie(b)
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(64*len(b)+4<<10); got > limit {
			t.Fatalf("parsing %d bytes allocated %d bytes, over %d", len(b), got, limit)
		}
		kept := len(n.Lots) + len(n.ReturnTypes) + len(n.Invoices) + len(n.Rejects)
		if kept > sesam.MaxNoemieEntities || len(n.LotRejects) > len(n.Rejects) {
			t.Fatalf("kept %d entities, %d lot rejects of %d", kept, len(n.LotRejects), len(n.Rejects))
		}
	})
}

func FuzzInspect(f *testing.F) {
	f.Add(clearLot())
	f.Add(ediMail("NOEMIE", []byte("000x"), true))
	f.Add(testLot(sesam.LotSinglePart).Mail())
	f.Add(testLot(sesam.LotSignedOnly).Mail())
	f.Fuzz(func(t *testing.T, b []byte) {
		sesam.InspectOutbound(b, []string{"01422@422.01.rss.fr"})
		total := 0
		sesam.EachEDIPayload(b, func(p sesam.Payload) bool {
			if total += len(p.Data); total > sesam.EDIBudget {
				t.Fatal("over the budget")
			}
			return true
		})
	})
}
