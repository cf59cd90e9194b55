package smtpwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/emersion/go-smtp"
)

// ErrLineEnding refuses a mail whose line endings another server could read
// as the end of the message (SMTP smuggling), as chasquid does.
var ErrLineEnding = &smtp.SMTPError{Code: 521, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Error reading DATA: invalid line ending (bare LF, or a dot after a bare CR or before a bare CR): mail refused"}

// ReadData reads one DATA transfer from r, the connection's bytes right
// after "354", up to and including the final "<CR><LF>.<CR><LF>", and
// returns the message with dot-stuffing undone and nothing else changed.
//
// It refuses (ErrLineEnding) only what can end DATA early or be read as a
// message boundary by another server — a bare LF, "<CR><LF>.<CR>" not
// followed by LF, and a bare CR followed by a dot — and keeps any other bare
// CR as it is: a lot whose lines end in CR CR LF (a Windows program writing a
// CRLF file in text mode) is legitimate, and Postfix takes it.
//
// Whatever it refuses, it reads on to the final dot, so that the session
// stays in step, keeping at most max bytes (then smtp.ErrDataTooLarge; 0: no
// limit). It works a line at a time on the reader's buffer; data_test.go
// holds a byte-at-a-time reference it is fuzzed against.
func ReadData(r *bufio.Reader, max int64) ([]byte, error) {
	var buf []byte
	var refused error
	fail := func(err error) {
		if refused == nil {
			refused = err
		}
	}
	lineStart := true // the last chunk ended in CRLF
	prevCR := false   // the last chunk ended in a CR
	for {
		chunk, err := r.ReadSlice('\n') // one line, or a full buffer of a longer one
		if err != nil && err != bufio.ErrBufferFull {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		data := chunk
		if prevCR && chunk[0] == '.' {
			fail(ErrLineEnding) // "<CR>." across two chunks
		}
		if lineStart && chunk[0] == '.' {
			switch {
			case len(chunk) == 3 && chunk[1] == '\r' && chunk[2] == '\n':
				if refused != nil {
					return nil, refused
				}
				if buf == nil {
					buf = []byte{}
				}
				return buf, nil
			case len(chunk) >= 2 && (chunk[1] == '\r' || chunk[1] == '\n'):
				fail(ErrLineEnding) // "<CR><LF>.<CR>" without LF, or "<CR><LF>.<LF>"
			}
			data = chunk[1:] // a stuffed dot
		}
		for i := bytes.IndexByte(data, '\r'); i >= 0 && i+1 < len(data); {
			if data[i+1] == '.' {
				fail(ErrLineEnding) // "<CR>.": a line start for servers that end lines on CR
			}
			j := bytes.IndexByte(data[i+1:], '\r')
			if j < 0 {
				break
			}
			i += j + 1
		}
		n := len(chunk)
		endsLF := chunk[n-1] == '\n'
		crlf := endsLF && ((n >= 2 && chunk[n-2] == '\r') || (n == 1 && prevCR))
		if endsLF && !crlf {
			fail(ErrLineEnding) // a bare LF
		}
		lineStart, prevCR = crlf, chunk[n-1] == '\r'
		if refused == nil {
			if max > 0 && int64(len(buf)+len(data)) > max {
				fail(smtp.ErrDataTooLarge)
				buf = nil
				continue
			}
			buf = append(buf, data...)
		}
	}
}
