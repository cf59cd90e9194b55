package sesam

import (
	"bytes"
	"errors"
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
	end := walk(raw, func(_ *message.Entity, ctype, desc string, _ int) bool {
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
		return true
	})
	var bound errWalkBound
	if errors.As(end, &bound) && !o.Clear {
		// Fail closed: something further may be a care sheet in clear.
		o.Clear = true
		o.ClearWhy = "the guard could not read the mail to its end (" + string(bound) + "), so its care sheets are not proven encrypted"
	}
	if o.Lot && errors.Is(end, errWalkBroken) && !o.Clear {
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

// Bounds of the MIME walk: what an outsider's mail may cost to look at.
// A lot or a return holds a handful of parts, a level or two deep; a
// message is read at most this far. Past them the walk stops, and says so:
// the guard then holds the mail (it cannot say what it did not read), and
// a return is classified unknown.
const (
	maxParts     = 1000
	maxDepth     = 50
	maxWalkBytes = 64 << 20
)

// errWalkBound is a MIME walk stopped at one of its bounds.
type errWalkBound string

func (e errWalkBound) Error() string { return string(e) }

// errWalkBroken is a walk that met a part that does not parse as MIME and
// could not read that branch to its end.
var errWalkBroken = errors.New("a MIME part does not parse")

// walk calls fn for each MIME entity (the message itself first) with its
// lower-case media type and Content-Description, until fn returns false.
// Odd MIME is read as far as it goes; a part that does not parse ends the
// walk of its branch (errWalkBroken). It returns an errWalkBound when it
// stopped at a bound (parts, depth, bytes) with parts left unseen.
func walk(raw []byte, fn func(e *message.Entity, ctype, desc string, depth int) bool) error {
	var bound error
	if len(raw) > maxWalkBytes {
		raw, bound = raw[:maxWalkBytes], errWalkBound(fmt.Sprintf("the message is %d bytes, read only its first %d", len(raw), maxWalkBytes))
	}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		if bound != nil {
			return bound
		}
		return errWalkBroken
	}
	_ = err // unknown charset or encoding: the entity is still usable
	n := 0
	stop, broken := false, false
	var visit func(e *message.Entity, depth int)
	visit = func(e *message.Entity, depth int) {
		if n++; n > maxParts {
			bound, stop = errWalkBound(fmt.Sprintf("more than %d MIME parts", maxParts)), true
			return
		}
		if depth > maxDepth {
			bound = errWalkBound(fmt.Sprintf("MIME parts nested deeper than %d", maxDepth))
			return
		}
		ctype, _, _ := mime.ParseMediaType(e.Header.Get("Content-Type"))
		if ctype == "" {
			ctype = "text/plain"
		}
		if !fn(e, strings.ToLower(ctype), e.Header.Get("Content-Description"), depth) {
			stop = true
			return
		}
		if mr := e.MultipartReader(); mr != nil {
			for !stop {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
					broken = true
					return
				}
				visit(p, depth+1)
			}
		}
		if ctype == "message/rfc822" || ctype == "message/global" {
			// An attached mail is part of the tree: a care sheet in clear
			// inside a forwarded message is still in clear.
			inner, err := message.Read(e.Body)
			if inner == nil {
				broken = true
				return
			}
			_ = err // unknown charset or encoding: still usable
			visit(inner, depth+1)
		}
	}
	visit(e, 0)
	if bound == nil && broken {
		return errWalkBroken
	}
	return bound
}
