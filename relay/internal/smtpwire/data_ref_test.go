package smtpwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/emersion/go-smtp"
)

// The states of readDataRef.
const (
	sBegin = iota // at the start of a line (after CRLF)
	sDot          // read "." at the start of a line
	sDotCR        // read ".\r" at the start of a line
	sCR           // read "\r" inside a line
	sData         // inside a line
)

// readDataRef is ReadData a byte at a time, as a state machine: simple
// enough to check by eye, and slow. FuzzReadData holds ReadData to it.
func readDataRef(r *bufio.Reader, max int64) ([]byte, error) {
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
