package sesam

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
)

// Caps on what one return may cost: a gzip bomb must not take the
// appliance down.
const (
	maxPart     = 16 << 20 // bytes of one EDI part as received
	maxInflated = 64 << 20 // bytes once decompressed
)

// Payload is one application/edi-consent part of a return.
type Payload struct {
	Description string // Content-Description: the kind of return
	Data        []byte // decoded (base64) and decompressed (gzip) when it was
	Gzipped     bool
	Err         error // why Data is empty or partial
}

// ErrTooBig is a payload over the caps.
var ErrTooBig = errors.New("EDI payload larger than the relay accepts to decode")

// EDIPayloads returns the application/edi-consent parts of a mail (the
// media type's case varies), decoded.
func EDIPayloads(raw []byte) []Payload {
	var out []Payload
	e, _ := message.Read(bytes.NewReader(raw))
	if e == nil {
		return nil
	}
	n := 0
	var visit func(e *message.Entity, depth int)
	visit = func(e *message.Entity, depth int) {
		if n++; n > maxParts || depth > maxDepth {
			return
		}
		ctype, _, _ := e.Header.ContentType()
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
					return
				}
				visit(p, depth+1)
			}
		}
		if !strings.EqualFold(ctype, "application/edi-consent") {
			return
		}
		p := Payload{Description: strings.TrimSpace(e.Header.Get("Content-Description"))}
		p.Data, p.Err = readCapped(e.Body, maxPart)
		if p.Err == nil && len(p.Data) > 2 && p.Data[0] == 0x1f && p.Data[1] == 0x8b {
			p.Gzipped = true
			var zr *gzip.Reader
			if zr, p.Err = gzip.NewReader(bytes.NewReader(p.Data)); p.Err == nil {
				p.Data, p.Err = readCapped(zr, maxInflated)
			}
		}
		out = append(out, p)
	}
	visit(e, 0)
	return out
}

func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(b)) > max {
		return b[:max], ErrTooBig
	}
	return b, err
}

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
	s := string(data)
	skipSpace := func() {
		s = strings.TrimLeft(s, "\r\n \t")
	}
	skipSpace()
	if !strings.HasPrefix(s, "000") {
		return n, fmt.Errorf("not a NOEMIE file: it does not start with a 000 header")
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
