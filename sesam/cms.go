package sesam

import "bytes"

// CMSKind is what the first bytes of a part's content say it is. Whether a
// lot is encrypted is a property of its bytes, not of the media type its
// sender wrote (DOMAIN.md): a care sheet labelled application/pkcs7-mime is
// still readable if its bytes are clear text, and an encrypted B2 file
// labelled Application/EDI-consent is still encrypted.
type CMSKind int

const (
	NotCMS       CMSKind = iota // not a CMS ContentInfo: clear text, random bytes, a malformed or truncated header
	CMSEnveloped                // enveloped-data or authEnveloped-data: only its recipients can read it
	CMSSigned                   // signed-data: proves who sent it, readable by anyone
	CMSOther                    // another ContentInfo type (data, digested, compressed, password-encrypted)
)

func (k CMSKind) String() string {
	switch k {
	case CMSEnveloped:
		return "CMS enveloped-data"
	case CMSSigned:
		return "CMS signed-data"
	case CMSOther:
		return "CMS of another type"
	}
	return "not CMS"
}

// CMSPrefix is how many bytes of a part's content SniffCMS looks at. The
// outer SEQUENCE, the content type, the [0] wrapper and the start of the
// inner SEQUENCE take under 50 bytes even with 4-byte lengths; the rest of
// a part need not be read to judge it.
const CMSPrefix = 256

// DER contents of the object identifiers that matter (RFC 5652, RFC 5083).
var (
	oidEnvelopedData     = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}             // 1.2.840.113549.1.7.3
	oidSignedData        = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}             // 1.2.840.113549.1.7.2
	oidAuthEnvelopedData = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17} // 1.2.840.113549.1.9.16.1.23
)

// SniffCMS says whether content (a part's body, transfer encoding decoded)
// opens as a CMS ContentInfo, and of which type. Only the first CMSPrefix
// bytes are looked at; a caller passes a prefix, not a whole body. DER and
// BER (indefinite lengths, as streaming S/MIME tools write) are read; PEM
// is not.
//
// Beyond the content type it checks that the content is a SEQUENCE opening
// with a small INTEGER version followed by what the type puts next (a SET,
// or originatorInfo [0] for enveloped-data), and that every definite length
// fits in its parent's: bytes that merely start with 0x30 are not CMS.
// Nothing is allocated, whatever lengths the bytes claim.
//
// encoding/asn1 and cryptobyte are not used: both want the whole element
// in hand with definite lengths, and this reads a prefix, BER included.
func SniffCMS(content []byte) CMSKind {
	if len(content) > CMSPrefix {
		content = content[:CMSPrefix]
	}
	// ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
	ci, ok := cursor{b: content, room: -1}.enter(0x30)
	if !ok {
		return NotCMS
	}
	oid, ci, ok := ci.primitive(0x06)
	if !ok {
		return NotCMS
	}
	wrapped, ok := ci.enter(0xa0)
	if !ok {
		return NotCMS
	}
	var kind CMSKind
	switch {
	case bytes.Equal(oid, oidEnvelopedData), bytes.Equal(oid, oidAuthEnvelopedData):
		kind = CMSEnveloped
	case bytes.Equal(oid, oidSignedData):
		kind = CMSSigned
	default:
		return CMSOther
	}
	// EnvelopedData, AuthEnvelopedData and SignedData all open with
	// SEQUENCE { version INTEGER (0 to 5), ... }.
	inner, ok := wrapped.enter(0x30)
	if !ok {
		return NotCMS
	}
	version, inner, ok := inner.primitive(0x02)
	if !ok || len(version) != 1 || version[0] > 5 {
		return NotCMS
	}
	next, ok := inner.peek()
	switch {
	case !ok:
		return NotCMS
	case next == 0x31: // recipientInfos, or SignedData's digestAlgorithms
		return kind
	case next == 0xa0 && kind == CMSEnveloped: // originatorInfo
		return kind
	}
	return NotCMS
}

// cursor reads BER headers from b; room is how many bytes its element has
// left (-1: unknown, inside an indefinite length or past the prefix).
type cursor struct {
	b    []byte
	room int64
}

// header reads one tag and length. n is -1 for an indefinite length.
// Lengths of more than 4 bytes are refused: no lot is 4 GB.
func (c cursor) header() (tag byte, hlen int, n int64, ok bool) {
	if len(c.b) < 2 || c.b[0]&0x1f == 0x1f { // high tag numbers appear nowhere in these headers
		return 0, 0, 0, false
	}
	tag, l := c.b[0], c.b[1]
	switch {
	case l < 0x80:
		return tag, 2, int64(l), true
	case l == 0x80:
		return tag, 2, -1, tag&0x20 != 0 // BER allows indefinite lengths on constructed elements only
	}
	k := int(l & 0x7f)
	if k > 4 || len(c.b) < 2+k {
		return 0, 0, 0, false
	}
	for _, d := range c.b[2 : 2+k] {
		n = n<<8 | int64(d)
	}
	return tag, 2 + k, n, true
}

// fits says whether an element of header hlen and content n (-1:
// indefinite) fits in the room left, and returns the room inside it.
func (c cursor) fits(hlen int, n int64) (int64, bool) {
	room := c.room
	if room >= 0 {
		if room < int64(hlen) {
			return 0, false
		}
		room -= int64(hlen)
		if n > room {
			return 0, false
		}
	}
	if n >= 0 {
		return n, true
	}
	return room, true
}

// enter steps into a constructed element with this tag; the parent is not
// read further (nothing after a constructed element is needed).
func (c cursor) enter(tag byte) (cursor, bool) {
	t, hlen, n, ok := c.header()
	if !ok || t != tag {
		return cursor{}, false
	}
	room, ok := c.fits(hlen, n)
	if !ok {
		return cursor{}, false
	}
	return cursor{b: c.b[hlen:], room: room}, true
}

// primitive reads a primitive element with this tag, whole (it must be
// within the prefix), and returns its content and the cursor after it.
func (c cursor) primitive(tag byte) ([]byte, cursor, bool) {
	t, hlen, n, ok := c.header()
	if !ok || t != tag || n < 0 || n > int64(len(c.b)-hlen) {
		return nil, cursor{}, false
	}
	if _, ok := c.fits(hlen, n); !ok {
		return nil, cursor{}, false
	}
	end := hlen + int(n)
	next := cursor{b: c.b[end:], room: c.room}
	if next.room >= 0 {
		next.room -= int64(end)
	}
	return c.b[hlen:end], next, true
}

// peek returns the next tag if there is room for an element there.
func (c cursor) peek() (byte, bool) {
	if len(c.b) < 2 || (c.room >= 0 && c.room < 2) {
		return 0, false
	}
	return c.b[0], true
}
