package sesam

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // lenient charsets in headers
)

// Outbound is what the relay can see of a mail it is asked to send.
type Outbound struct {
	Lot       bool // addressed to a fund, or with a lot Subject
	Fund      Fund
	Subject   LotSubject // zero when the Subject is not a lot's
	SubjectOK bool
	Test      bool // IRISTEST, or a test fund
	SMIME     bool // an application/pkcs7-mime part (the encrypted B2)
	Clear     bool // an IRIS/B2 or EDI payload outside any S/MIME part, or a mail not read to its end
	ClearWhy  string
}

// The MIME walk's budget. A lot holds a handful of parts; a mail beyond
// these is not read to its end, and a guard that has not read everything
// cannot say the care sheets are encrypted.
const (
	maxParts = 1000
	maxDepth = 50
)

// InspectOutbound looks at a mail's envelope recipients and bytes. It never
// fails: what it cannot read, it reports as not seen.
func InspectOutbound(raw []byte, rcpts []string) Outbound {
	var o Outbound
	for _, r := range rcpts {
		if f, ok := ParseFundAddress(r); ok {
			o.Lot, o.Fund = true, f
			o.Test = o.Test || f.Test()
		}
	}
	raw = readable(raw)
	h := ReadHeaders(raw)
	if ls, err := ParseLotSubject(h.Subject); err == nil {
		o.Lot, o.Subject, o.SubjectOK = true, ls, true
	}
	complete := walk(raw, func(ctype, desc string, depth int) {
		d := strings.ToUpper(strings.TrimSpace(desc))
		if strings.Contains(d, "IRISTEST") {
			o.Test = true
		}
		switch {
		case isSMIME(ctype):
			o.SMIME = true
		case strings.HasPrefix(ctype, "multipart/"):
			// a container: some senders put IRIS/B2 on the top-level header
		case strings.HasPrefix(d, "IRIS") || ctype == "application/edi-consent":
			o.Clear = true
			o.ClearWhy = "a " + ctype + " part (" + strings.TrimSpace(desc) + ") travels outside S/MIME encryption: health data in clear"
		}
	})
	if complete.budget && !o.Clear {
		// Fail closed: something deeper may be a care sheet in clear.
		o.Clear = true
		o.ClearWhy = fmt.Sprintf("the mail has more than %d MIME parts or is nested more than %d deep: the guard could not read it to its end, so its care sheets are not proven encrypted", maxParts, maxDepth)
	}
	if o.Lot && complete.broken && !o.Clear {
		o.Clear = true
		o.ClearWhy = "a part of this lot does not parse as MIME: the guard could not read it to its end, so its care sheets are not proven encrypted"
	}
	if o.Lot && !o.SMIME && !o.Clear {
		o.Clear = true
		o.ClearWhy = "a mail to a fund with no S/MIME (application/pkcs7-mime) part: the care sheets would travel in clear"
	}
	return o
}

func isSMIME(ctype string) bool {
	return ctype == "application/pkcs7-mime" || ctype == "application/x-pkcs7-mime"
}

// walkEnd says why a walk stopped early, if it did.
type walkEnd struct {
	budget bool // more parts or depth than the budget allows
	broken bool // a part that does not parse ended its branch
}

// walk calls fn for each MIME entity (the message itself first) with its
// lower-case media type and Content-Description, within maxParts and
// maxDepth. Odd MIME is read as far as it goes; a part that does not parse
// ends the walk of its branch. It says whether anything was left unread.
func walk(raw []byte, fn func(ctype, desc string, depth int)) walkEnd {
	var end walkEnd
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		end.broken = true
		return end
	}
	_ = err // unknown charset or encoding: the entity is still usable
	n := 0
	var visit func(e *message.Entity, depth int)
	visit = func(e *message.Entity, depth int) {
		n++
		if n > maxParts || depth > maxDepth {
			end.budget = true
			return
		}
		ctype, _, _ := mime.ParseMediaType(e.Header.Get("Content-Type"))
		if ctype == "" {
			ctype = "text/plain"
		}
		fn(strings.ToLower(ctype), e.Header.Get("Content-Description"), depth)
		if mr := e.MultipartReader(); mr != nil {
			for !end.budget {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
					end.broken = true
					return
				}
				visit(p, depth+1)
			}
		}
	}
	visit(e, 0)
	return end
}
