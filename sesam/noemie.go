package sesam

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Noemie is what a NOEMIE file says (DOMAIN.md's format table).
type Noemie struct {
	EmitterType string // CP (CPAM), MA (MSA), OT…
	Emitter     string
	Recipient   string // the practitioner's number
	FileID      string
	FileDate    string // YYMMDD
	Demo        bool   // flow type D
	Lots        []NoemieLot
	ReturnTypes []string // 081
	Invoices    []NoemieInvoice
	Rejects     []Reject // 290 and 294
	LotCount    int      // from the 999 trailer, -1 if absent
	Skipped     int      // entities with a code this parser does not know
}

// NoemieLot is an 080 entity: a lot the return is about.
type NoemieLot struct{ Date, Number string }

// NoemieInvoice is a 102 entity.
type NoemieInvoice struct{ Number, Lot, LotDate, BillingDate string }

// Reject is a 290 (reject or warning) or 294 (reject line) entity.
type Reject struct {
	Entity string // "290" or "294"
	Code   string
	Label  string
}

// field cuts fixed-width fields from a record, tolerating a short record.
type field struct {
	b   string
	pos int
}

func (f *field) take(n int) string {
	if f.pos >= len(f.b) {
		return ""
	}
	end := min(f.pos+n, len(f.b))
	s := f.b[f.pos:end]
	f.pos = end
	return strings.TrimSpace(s)
}

// ParseNoemie reads a NOEMIE file: a 128-character 000 header, entities of
// a 3-digit code and a 2-digit level closed by '@', a 128-character 999
// trailer. Line breaks between records are allowed. An unknown code is
// skipped to the next '@'; the whole file never fails for one entity.
func ParseNoemie(data []byte) (Noemie, error) {
	n := Noemie{LotCount: -1}
	// Look before copying: most payloads tried are not NOEMIE at all.
	data = bytes.TrimLeft(data, "\r\n \t")
	if !bytes.HasPrefix(data, []byte("000")) {
		return n, fmt.Errorf("not a NOEMIE file: it does not start with a 000 header")
	}
	s := string(data)
	skipSpace := func() {
		s = strings.TrimLeft(s, "\r\n \t")
	}
	h := &field{b: s[:min(128, len(s))]}
	h.take(3)
	n.EmitterType, n.Emitter = h.take(2), h.take(14)
	h.take(6)
	h.take(2)
	n.Recipient = h.take(14)
	h.take(6)
	h.take(2)
	n.FileID, n.FileDate = h.take(6), h.take(6)
	h.take(4 + 2 + 1 + 1 + 1)
	n.Demo = h.take(1) == "D"
	s = s[min(128, len(s)):]
	for {
		skipSpace()
		if s == "" {
			return n, nil
		}
		if strings.HasPrefix(s, "999") {
			t := &field{b: s[:min(128, len(s))]}
			t.take(3 + 2 + 14 + 6 + 2 + 14 + 6 + 8 + 1 + 18)
			if v, err := strconv.Atoi(t.take(3)); err == nil {
				n.LotCount = v
			}
			return n, nil
		}
		end := strings.IndexByte(s, '@')
		if end < 0 {
			return n, fmt.Errorf("entity %q is not closed by '@'", s[:min(20, len(s))])
		}
		ent := &field{b: s[:end]}
		s = s[end+1:]
		code := ent.take(3)
		ent.take(2) // level
		switch code {
		case "080":
			n.Lots = append(n.Lots, NoemieLot{Date: ent.take(6), Number: ent.take(3)})
		case "081":
			n.ReturnTypes = append(n.ReturnTypes, ent.take(2))
		case "102":
			inv := NoemieInvoice{Number: ent.take(9)}
			ent.take(6)
			inv.Lot, inv.LotDate = ent.take(3), ent.take(6)
			ent.take(1)
			inv.BillingDate = ent.take(6)
			n.Invoices = append(n.Invoices, inv)
		case "290":
			ent.take(2)
			n.Rejects = append(n.Rejects, Reject{Entity: "290", Code: ent.take(10), Label: ent.take(80)})
		case "294":
			n.Rejects = append(n.Rejects, Reject{Entity: "294", Code: ent.take(4), Label: ent.take(86)})
		default:
			n.Skipped++
		}
	}
}
