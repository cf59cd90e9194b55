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

// The states of readData.
const (
	sBegin = iota // at the start of a line (after CRLF)
	sDot          // read "." at the start of a line
	sDotCR        // read ".\r" at the start of a line
	sCR           // read "\r" inside a line
	sData         // inside a line
)

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
// stays in step, keeping at most max bytes (then smtp.ErrDataTooLarge; 0: no limit).
func ReadData(r *bufio.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	var refused error
	fail := func(err error) {
		if refused == nil {
			refused = err
		}
	}
	emit := func(c byte) {
		if refused != nil {
			return
		}
		if max > 0 && int64(buf.Len()) >= max {
			fail(smtp.ErrDataTooLarge)
			return
		}
		buf.WriteByte(c)
	}
	st := sBegin
	for {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch st {
		case sBegin:
			if c == '.' {
				st = sDot
				continue
			}
		case sDot:
			if c == '\r' {
				st = sDotCR
				continue
			}
			// A stuffed dot: dropped; c is data.
		case sDotCR:
			if c == '\n' {
				if refused != nil {
					return nil, refused
				}
				return buf.Bytes(), nil
			}
			fail(ErrLineEnding) // "<CR><LF>.<CR>" and no LF
		case sCR:
			if c == '\n' {
				emit(c)
				st = sBegin
				continue
			}
			if c == '.' {
				fail(ErrLineEnding) // "<CR>." : a line start for servers that end lines on CR
			}
		}
		// c is a data byte.
		switch c {
		case '\n':
			// A bare LF (a CRLF ends in the sCR case above). It starts no
			// line: "<LF>.<CR><LF>" must not end the transfer here either.
			fail(ErrLineEnding)
			st = sData
		case '\r':
			st = sCR
		default:
			st = sData
		}
		emit(c)
	}
}
