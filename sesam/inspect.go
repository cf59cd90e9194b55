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
	Encrypted bool // a part whose bytes are CMS enveloped-data (the encrypted B2), whatever its media type
	Clear     bool // an IRIS/B2 or EDI payload not encrypted, a lot with no encrypted part, or a mail not read to its end
	ClearWhy  string
}

// InspectOutbound looks at a mail's envelope recipients and bytes. It never
// fails: what it cannot read, it reports as not seen.
//
// A part is encrypted when its decoded content is CMS enveloped-data
// (SniffCMS), wherever it sits and whatever its media type: senders label
// the same bytes application/pkcs7-mime, application/octet-stream or
// Application/EDI-consent. A part described IRIS… or typed edi-consent
// whose content is not enveloped-data is health data in clear; a lot with
// no encrypted part is held, and one that is only signed says so.
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
	var signed bool
	var mislabelled string // the first part labelled S/MIME whose bytes are not enveloped-data
	prefix := make([]byte, CMSPrefix)
	end := walk(raw, func(e *message.Entity, ctype, desc string, _ int) bool {
		d := strings.ToUpper(strings.TrimSpace(desc))
		if strings.Contains(d, "IRISTEST") {
			o.Test = true
		}
		if strings.HasPrefix(ctype, "multipart/") {
			// A container: some senders put IRIS/B2 on the top-level header
			// of a multipart whose parts are judged one by one.
			return true
		}
		kind := NotCMS
		if !strings.HasPrefix(ctype, "message/") { // an attached mail's body is walked, not sniffed
			kind = sniffPart(e, prefix)
		}
		switch kind {
		case CMSEnveloped:
			o.Encrypted = true
		case CMSSigned:
			signed = true
		}
		if kind != CMSEnveloped && isSMIME(ctype) && mislabelled == "" {
			mislabelled = "its " + ctype + " part is labelled S/MIME but its content " + notEnveloped(kind)
		}
		if kind != CMSEnveloped && (strings.HasPrefix(d, "IRIS") || ctype == "application/edi-consent") {
			o.Clear = true
			if kind == CMSSigned {
				o.ClearWhy = "a " + ctype + " part (" + strings.TrimSpace(desc) + ") is only signed (CMS signed-data), not encrypted: health data in clear"
			} else {
				o.ClearWhy = "a " + ctype + " part (" + strings.TrimSpace(desc) + ") is not encrypted (its content " + notEnveloped(kind) + "): health data in clear"
			}
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
	if o.Lot && !o.Encrypted && !o.Clear {
		o.Clear = true
		switch {
		case signed:
			o.ClearWhy = "a mail to a fund that is only signed (CMS signed-data), not encrypted: its care sheets are readable by anyone"
		case mislabelled != "":
			o.ClearWhy = "a mail to a fund with no S/MIME encrypted part (" + mislabelled + "): the care sheets would travel in clear"
		default:
			o.ClearWhy = "a mail to a fund with no S/MIME encrypted part (no CMS enveloped-data): the care sheets would travel in clear"
		}
	}
	return o
}

// sniffPart reads the first bytes of a part's decoded content into prefix
// and sniffs them. The rest of the body is left unread: the multipart
// reader skips it on its way to the next part, without holding it.
func sniffPart(e *message.Entity, prefix []byte) CMSKind {
	n, _ := io.ReadFull(io.LimitReader(e.Body, int64(len(prefix))), prefix)
	return SniffCMS(prefix[:n])
}

// notEnveloped says what a part's content is instead of enveloped-data.
func notEnveloped(k CMSKind) string {
	switch k {
	case CMSSigned:
		return "is CMS signed-data: signed, not encrypted"
	case CMSOther:
		return "is CMS of another type than enveloped-data"
	}
	return "is not CMS at all"
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
