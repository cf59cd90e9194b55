package sesam

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/charset"
)

// Headers is what the relay shows of a mail in listings.
type Headers struct {
	Subject   string
	From      string
	MessageID string
	Date      string
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// ReadHeaders pulls Subject, From, Message-ID and Date out of a raw mail,
// decoding RFC 2047 words in any charset go-message knows. A mail whose
// header does not parse gives empty fields, never an error: odd mail is
// still mail. Only the header block is read (at most 256 KiB).
func ReadHeaders(raw []byte) Headers {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if crcr := bytes.Index(raw, []byte("\r\r\n\r\r\n")); crcr >= 0 && (end < 0 || crcr < end) {
		end = crcr // the header block of a CR CR LF mail
	}
	if end < 0 {
		end = bytes.Index(raw, []byte("\n\n"))
	}
	if end < 0 {
		end = len(raw)
	}
	end = min(end, 256<<10)
	m, err := mail.ReadMessage(bytes.NewReader(append(readable(raw[:end:end]), "\r\n\r\n"...)))
	if err != nil {
		return Headers{}
	}
	dec := func(k string) string {
		v := m.Header.Get(k)
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
		return strings.TrimSpace(v)
	}
	return Headers{Subject: dec("Subject"), From: dec("From"), MessageID: strings.TrimSpace(m.Header.Get("Message-Id")), Date: m.Header.Get("Date")}
}
