package sesam

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Noemie is what a NOEMIE file says (DOMAIN.md's format table).
//
// Entities come in order, and an entity is about what precedes it: the
// rejects and amounts after a 102 invoice are that invoice's; a reject
// before any 102, or right after an 080 lot, is about the lot or the file.
type Noemie struct {
	EmitterType string // CP (CPAM), MA (MSA), OT…
	Emitter     string
	Recipient   string // the practitioner's number
	FileID      string
	FileDate    string // YYMMDD
	Demo        bool   // flow type D
	Lots        []NoemieLotRef
	ReturnTypes []string // 081: "01" electronic, "02" paper, "03" lump sum
	LumpSum     bool     // a 261 (lump-sum payment) entity is present
	Invoices    []NoemieInvoice
	// Rejects is every 290 and 294 in file order, whatever it is about;
	// LotRejects is those about the lot or the file rather than one
	// invoice (the others are in their invoice's Rejects).
	Rejects    []Reject
	LotRejects []Reject
	LotCount   int // from the 999 trailer, -1 if absent
	// Skipped counts the entities not kept: a code this parser does not
	// know (patient data among them: never kept), or any entity past
	// MaxNoemieEntities. Truncated says the latter happened: what was kept
	// is true, but an invoice may have lost its rejects, so the file's
	// outcome is to check.
	Skipped   int
	Truncated bool
}

// MaxNoemieEntities bounds the entities (lots, return types, invoices,
// rejects) one file may make the parser keep. A busy practice's month is a
// few thousand; past it the rest is scanned, counted and dropped, so a
// hostile payload of tiny entities cannot cost more than a few MB.
const MaxNoemieEntities = 10000

// NoemieLotRef is an 080 entity: a lot the return is about.
type NoemieLotRef struct{ Date, Number string }

// NoemieInvoice is a 102 entity and what follows it about that invoice.
type NoemieInvoice struct {
	Number, Lot, LotDate, BillingDate string
	// Rejects are the 290/294 entities that follow this invoice.
	Rejects []Reject
	// Claimed and Paid are the sums of the 198 and 199 amounts that
	// follow this invoice, in cents; -1 when there is none.
	Claimed, Paid int64
}

// Reject is a 290 (reject or warning) or 294 (reject line) entity.
type Reject struct {
	Entity string     `json:"entity"` // "290" or "294"
	Code   string     `json:"code"`
	Label  string     `json:"label"`
	Kind   RejectKind `json:"kind"` // from Entity and Label (RejectKindOf)
}

// LotLess says the return belongs to no electronic lot: every 081 return
// type is a paper return (02) or a lump-sum payment (03), or a 261
// lump-sum payment is present. A lot must not be matched against it.
func (n Noemie) LotLess() bool {
	if n.LumpSum {
		return true
	}
	for _, t := range n.ReturnTypes {
		if t != "02" && t != "03" {
			return false
		}
	}
	return len(n.ReturnTypes) > 0
}

// field cuts fixed-width fields from a record, tolerating a short record.
type field struct {
	b   []byte
	pos int
}

// skip passes n characters.
func (f *field) skip(n int) { f.pos = min(f.pos+n, len(f.b)) }

// take returns the next n characters, space-trimmed, as their own string:
// what is kept does not hold the whole payload (the caller's buffer is
// reused, and most of a file is not kept).
func (f *field) take(n int) string {
	start := min(f.pos, len(f.b))
	f.skip(n)
	return string(bytes.TrimSpace(f.b[start:f.pos]))
}

// record is the first 128 characters of b, or fewer if a line ends first.
func record(b []byte) []byte {
	b = b[:min(128, len(b))]
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	return b
}

// amount reads an 8-digit amount in cents leniently: spaces trimmed, fewer
// digits accepted; anything else is no amount.
func amount(s string) (int64, bool) {
	if s == "" || !digits(s) {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// trailerLotCount is where the 999 trailer holds the lot count: the routing
// fields of 000 up to and including exchange type and file id (55), then
// record count 8, flow type 1 and blank 18.
const trailerLotCount = 3 + 2 + 14 + 6 + 2 + 14 + 6 + 2 + 6 + 8 + 1 + 18

// ParseNoemie reads a NOEMIE file: a 128-character 000 header, entities of
// a 3-digit code and a 2-digit level closed by '@', a 128-character 999
// trailer. Line breaks between records are allowed. An unknown code is
// skipped to the next '@'; the whole file never fails for one entity.
//
// The error is a file that does not start with 000, or whose last entity
// is not closed; what was read before it is returned all the same. The
// error never quotes the file (it may hold patient data).
func ParseNoemie(data []byte) (Noemie, error) {
	n := Noemie{LotCount: -1}
	s := bytes.TrimLeft(data, "\r\n \t")
	if !bytes.HasPrefix(s, []byte("000")) {
		return n, fmt.Errorf("not a NOEMIE file: it does not start with a 000 header")
	}
	h := &field{b: record(s)}
	h.skip(3)
	n.EmitterType, n.Emitter = h.take(2), h.take(14)
	h.skip(6 + 2)
	n.Recipient = h.take(14)
	h.skip(6 + 2)
	n.FileID, n.FileDate = h.take(6), h.take(6)
	h.skip(4 + 2 + 1 + 1 + 1)
	n.Demo = h.take(1) == "D"
	s = s[len(h.b):]

	kept := 0
	keep := func() bool {
		if kept >= MaxNoemieEntities {
			n.Skipped++
			n.Truncated = true
			return false
		}
		kept++
		return true
	}
	inv := -1 // the invoice the next entities are about, an index in n.Invoices
	var lot *NoemieLotRef
	for {
		s = bytes.TrimLeft(s, "\r\n \t")
		if len(s) == 0 {
			return n, nil
		}
		if bytes.HasPrefix(s, []byte("999")) {
			t := &field{b: record(s)}
			t.skip(trailerLotCount)
			if v, err := strconv.Atoi(t.take(3)); err == nil {
				n.LotCount = v
			}
			return n, nil
		}
		end := bytes.IndexByte(s, '@')
		if end < 0 {
			return n, fmt.Errorf("the entity at byte %d (%d bytes) is not closed by '@'", len(data)-len(s), len(s))
		}
		ent := &field{b: s[:end]}
		s = s[end+1:]
		code := ent.b[:min(3, len(ent.b))]
		ent.skip(3 + 2)       // code, level
		switch string(code) { // compared, not copied

		case "080":
			inv = -1
			if keep() {
				n.Lots = append(n.Lots, NoemieLotRef{Date: ent.take(6), Number: ent.take(3)})
				lot = &n.Lots[len(n.Lots)-1]
			}
		case "081":
			if keep() {
				n.ReturnTypes = append(n.ReturnTypes, ent.take(2))
			}
		case "261":
			n.LumpSum = true
		case "102":
			inv = -1
			if !keep() {
				continue
			}
			v := NoemieInvoice{Number: ent.take(9), Claimed: -1, Paid: -1}
			ent.skip(6)
			v.Lot, v.LotDate = ent.take(3), ent.take(6)
			ent.skip(1)
			v.BillingDate = ent.take(6)
			if lot != nil && v.Lot == "" && v.LotDate == "" {
				v.Lot, v.LotDate = lot.Number, lot.Date // the 102 leaves it to its 080
			}
			n.Invoices = append(n.Invoices, v)
			inv = len(n.Invoices) - 1
		case "290", "294":
			if !keep() {
				continue
			}
			var r Reject
			if string(code) == "290" {
				ent.skip(2) // line
				r = Reject{Entity: "290", Code: ent.take(10), Label: ent.take(80)}
			} else {
				r = Reject{Entity: "294", Code: ent.take(4), Label: ent.take(86)}
			}
			r.Kind = RejectKindOf(r.Entity, r.Label)
			n.Rejects = append(n.Rejects, r)
			if inv >= 0 {
				n.Invoices[inv].Rejects = append(n.Invoices[inv].Rejects, r)
			} else {
				n.LotRejects = append(n.LotRejects, r)
			}
		case "198", "199":
			a, ok := amount(ent.take(8))
			if !ok || inv < 0 {
				continue // an amount about no invoice kept, or unreadable
			}
			p := &n.Invoices[inv].Claimed
			if string(code) == "199" {
				p = &n.Invoices[inv].Paid
			}
			*p = max(*p, 0) + a
		default:
			n.Skipped++
		}
	}
}

// RejectKind is what a 290 or 294 means for its invoice (or lot).
type RejectKind int

const (
	// RejectUnclear is a label the rules do not read (or read both ways):
	// the code must not guess, the entity is to check. The zero value.
	RejectUnclear RejectKind = iota
	// RejectRefused: the fund refuses the invoice (REJET, REFUS, NON
	// REMBOURSABLE, INCONNU…).
	RejectRefused
	// RejectDuplicate: the fund ALREADY HAS this invoice (DOUBLON). It must
	// not be billed again.
	RejectDuplicate
	// RejectSignal: a warning or information; the invoice goes on.
	RejectSignal
)

func (k RejectKind) String() string {
	switch k {
	case RejectRefused:
		return "rejected"
	case RejectDuplicate:
		return "duplicate"
	case RejectSignal:
		return "signal"
	}
	return "unclear"
}

// rejectWords are the words that give a reject label its kind, matched at
// the start of a word of the label folded to unaccented upper case (so
// "REJET" finds "REJETÉE", "refusé"). duplicateWords are looked for first and win:
// a duplicate is also refused, and what matters is that it is already paid
// or being paid.
var rejectWords = []struct {
	word string
	kind RejectKind
}{
	{"DOUBLON", RejectDuplicate},
	{"REJET", RejectRefused},
	{"REFUS", RejectRefused},
	{"NON REMBOURSABLE", RejectRefused},
	{"NON REMBOURSE", RejectRefused},
	{"NON PRIS EN CHARGE", RejectRefused},
	{"INCONNU", RejectRefused},
	{"IRRECEVABLE", RejectRefused},
	{"SIGNALEMENT", RejectSignal},
	{"INFORMATION", RejectSignal},
	{"AVERTISSEMENT", RejectSignal},
	{"ALERTE", RejectSignal},
	{"ATTENTION", RejectSignal},
}

// duplicateWords say the fund already has the invoice, whatever the
// entity: "FACTURE EN DOUBLON", "FACTURE DEJA PAYEE", "FSE DEJA TRANSMISE",
// "ACTE DEJA REMBOURSE", "FACTURE EN DOUBLE". Billing it again would be a
// second billing: the notice says not to.
var duplicateWords = []string{"DOUBLON", "DEJA", "EN DOUBLE"}

// RejectKindOf is the one rule for what a reject entity means. A 294 is a
// reject line: refused, unless its label says DOUBLON. A 290 is "rejet ou
// signalement": its label decides; a label with no known word, or with
// words of both a refusal and a warning, is unclear.
func RejectKindOf(entity, label string) RejectKind {
	folded := foldLabel(label)
	has := func(w string) bool {
		i := strings.Index(folded, w)
		return i >= 0 && (i == 0 || folded[i-1] == ' ') // at a word's start
	}
	for _, w := range duplicateWords {
		if has(w) {
			return RejectDuplicate
		}
	}
	if entity == "294" {
		return RejectRefused
	}
	found := RejectUnclear
	for _, r := range rejectWords {
		if !has(r.word) {
			continue
		}
		if found != RejectUnclear && found != r.kind {
			return RejectUnclear
		}
		found = r.kind
	}
	return found
}

// foldLabel upper-cases a label, takes the accents off, and turns every run
// of what is not a letter or a digit into one space. A byte that is not
// UTF-8 is read as Latin-1 (NOEMIE files are 8-bit).
func foldLabel(s string) string {
	out := make([]byte, 0, len(s))
	space := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			r = rune(s[i])
		}
		i += size
		f := foldRune(unicode.ToUpper(r))
		if f == "" {
			if !space {
				out = append(out, ' ')
				space = true
			}
			continue
		}
		out = append(out, f...)
		space = false
	}
	return string(bytes.TrimRight(out, " "))
}

const asciiRunes = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f" +
	" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// foldRune is an upper-case letter or digit without its accent, or "" for
// anything else.
func foldRune(r rune) string {
	switch {
	case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return asciiRunes[r : r+1]
	case strings.ContainsRune("ÀÁÂÃÄÅ", r):
		return "A"
	case r == 'Ç':
		return "C"
	case strings.ContainsRune("ÈÉÊË", r):
		return "E"
	case strings.ContainsRune("ÌÍÎÏ", r):
		return "I"
	case r == 'Ñ':
		return "N"
	case strings.ContainsRune("ÒÓÔÕÖ", r):
		return "O"
	case strings.ContainsRune("ÙÚÛÜ", r):
		return "U"
	case r == 'Ý' || r == 'Ÿ':
		return "Y"
	case r == 'Œ':
		return "OE"
	case r == 'Æ':
		return "AE"
	}
	return ""
}

// MarshalText gives the kind's stable name ("rejected", "duplicate",
// "signal", "unclear"), the one `lots --json` shows.
func (k RejectKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a stable name back; an unknown one is unclear.
func (k *RejectKind) UnmarshalText(b []byte) error {
	*k = RejectUnclear
	for _, c := range []RejectKind{RejectRefused, RejectDuplicate, RejectSignal} {
		if c.String() == string(b) {
			*k = c
		}
	}
	return nil
}

// Outcomes is what the file says invoice by invoice (one outcome per reject
// of each invoice; a paid invoice has none), and what it says of the lot or
// the file as a whole. A file read only in part adds an unclear lot-level
// reject: what was dropped may have been a refusal.
func (n Noemie) Outcomes() ([]InvoiceOutcome, []Reject) {
	var out []InvoiceOutcome
	for _, inv := range n.Invoices {
		for _, r := range inv.Rejects {
			out = append(out, InvoiceOutcome{Number: inv.Number, Kind: r.Kind, Code: r.Code, Label: r.Label})
		}
	}
	lot := append([]Reject(nil), n.LotRejects...)
	if n.Truncated {
		lot = append(lot, Reject{Label: "file read in part: too many entities", Kind: RejectUnclear})
	}
	return out, lot
}
