package sesam

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
)

// EDIBudget is how many bytes the EDI payloads of ONE message may decode
// and inflate to, all parts together. A NOEMIE return is a 128-byte header,
// one short record per lot, invoice or reject, and a trailer: tens of
// kilobytes for a busy practice's month. 16 MB is hundreds of times that,
// while one message (read one payload at a time, in one reused buffer)
// costs the appliance tens of megabytes at worst instead of the 64 MB per
// part, without limit on the parts, that a gzip bomb used to get.
const EDIBudget = 16 << 20

// ErrOverBudget is a message whose payloads, or whose MIME structure, go
// past what the relay accepts to read. Such a mail is stored and served as
// received, unread.
var ErrOverBudget = errors.New("payload over budget")

// Payload is one application/edi-consent part of a mail.
type Payload struct {
	Description string // Content-Description: the kind of return
	Data        []byte // decoded (base64) and inflated (gzip) when it was
	Gzipped     bool
	Err         error // why Data is empty or partial (bad base64 or gzip)
}

// EachEDIPayload calls fn with the application/edi-consent parts of a mail
// (the media type's case varies), decoded, ONE at a time, until fn returns
// false. Data is reused for the next part: fn copies what it keeps.
//
// All parts together may decode to EDIBudget bytes: past it, the walk stops
// and the error wraps ErrOverBudget and says which part. A MIME walk that
// stopped at one of its bounds (parts, depth, bytes) with parts unseen is
// over budget too.
func EachEDIPayload(raw []byte, fn func(Payload) bool) error {
	left := int64(EDIBudget)
	var buf []byte
	var overErr error
	part := 0
	bound := walk(raw, func(e *message.Entity, ctype, desc string, _ int) bool {
		if ctype != "application/edi-consent" {
			return true
		}
		part++
		p := Payload{Description: strings.TrimSpace(desc)}
		var src io.Reader = bufio.NewReader(e.Body)
		if magic, _ := src.(*bufio.Reader).Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			p.Gzipped = true
			zr, err := gzip.NewReader(src)
			if err != nil {
				p.Err = err
				return fn(p)
			}
			src = zr
		}
		var over bool
		var err error
		buf, over, err = readCapped(buf[:0], src, left)
		if over {
			overErr = fmt.Errorf("%w: EDI part %d (%q) decodes past %d MB, the most the relay reads of one message", ErrOverBudget, part, p.Description, EDIBudget>>20)
			return false
		}
		left -= int64(len(buf))
		p.Data, p.Err = buf, err
		return fn(p)
	})
	if overErr != nil {
		return overErr
	}
	var over errWalkBound
	if errors.As(bound, &over) {
		return fmt.Errorf("%w: %v", ErrOverBudget, over)
	}
	return nil
}

// readCapped reads r into buf until EOF, or until it holds max bytes and
// one more is there to read (over). The buffer grows by doubling but never
// past max, and is reused from one part to the next: a message costs at
// most about one and a half times its budget.
func readCapped(buf []byte, r io.Reader, max int64) (_ []byte, over bool, _ error) {
	for {
		if int64(len(buf)) == max {
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			if err == io.EOF {
				err = nil
			}
			return buf, n > 0, err
		}
		if len(buf) == cap(buf) {
			c := int64(2*cap(buf) + 512)
			if c >= max/2 {
				c = max // one step more than doubling, not two just under max
			}
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
}
