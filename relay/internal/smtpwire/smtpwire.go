// Package smtpwire reads and writes the bytes of an SMTP DATA transfer
// itself, under go-smtp, where go-smtp's own dot handling would alter them.
//
// go-smtp v0.25.1 reads DATA through a state machine that silently drops
// "<CR><LF>.<CR>" when no LF follows (the ".\r" vanishes: an SMTP smuggling
// shape a relay must refuse, not repair), and its client writes DATA through
// net/textproto's DotWriter, which turns "<CR><CR><LF>" into
// "<CR><CR><CR><LF>" (a lot written by a Windows program in text mode would
// not reach the provider byte for byte). Neither offers a raw mode, so this
// package reaches the buffered reader and writer go-smtp already uses. Its
// test fails if go-smtp's layout changes, so an upgrade breaks the build's
// tests, not the practice's mail.
package smtpwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/textproto"
	"reflect"
	"unsafe"

	"github.com/emersion/go-smtp"
)

// field returns a pointer to the unexported field name of the struct *p
// points to, if it has type T.
func field[T any](p any, name string) (*T, bool) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	f := v.Elem().FieldByName(name)
	if !f.IsValid() || f.Type() != reflect.TypeFor[T]() {
		return nil, false
	}
	return (*T)(unsafe.Pointer(f.UnsafeAddr())), true
}

// stateEOF is go-smtp's dataReader state once the final dot is read.
const stateEOF = 5

// DataSource is the raw side of a DATA reader that go-smtp hands to
// Session.Data.
type DataSource struct {
	R     *bufio.Reader // the connection's bytes, right after "354"
	state *int
}

// Raw returns the connection's buffered reader behind go-smtp's DATA reader
// r, or false if r is not one (another go-smtp version).
func Raw(r io.Reader) (DataSource, bool) {
	br, ok1 := field[*bufio.Reader](r, "r")
	st, ok2 := field[int](r, "state")
	if !ok1 || !ok2 || *br == nil {
		return DataSource{}, false
	}
	return DataSource{R: *br, state: st}, true
}

// Done tells go-smtp that the final dot has been read, so that it reads
// nothing more as DATA.
func (d DataSource) Done() { *d.state = stateEOF }

// Text returns the text connection of a go-smtp client, or false.
func Text(c *smtp.Client) (*textproto.Conn, bool) {
	t, ok := field[*textproto.Conn](c, "text")
	if !ok || *t == nil {
		return nil, false
	}
	return *t, true
}

// ErrLayout is returned when go-smtp is not the version this package reads.
var ErrLayout = errors.New("smtpwire: go-smtp's internals are not the expected ones (v0.25.1)")

// WriteBody writes body as the content of the DATA command wc of client c,
// dot-stuffed and otherwise byte for byte, without the final dot (wc's Close
// sends it). A bare CR or LF is sent as it is: the submission server has
// already refused the ones that could end the mail early.
func WriteBody(c *smtp.Client, wc *smtp.DataCommand, body []byte) error {
	text, ok := Text(c)
	if !ok {
		return ErrLayout
	}
	// The last CRLF goes through wc, so that its dot writer knows a line has
	// ended and closes with ".\r\n" alone.
	raw, last := body, []byte("\r\n")
	if len(body) >= 2 && body[len(body)-2] == '\r' && body[len(body)-1] == '\n' {
		raw = body[:len(body)-2]
	}
	if err := stuff(text.W, raw); err != nil {
		return err
	}
	_, err := wc.Write(last)
	return err
}

// stuff writes b with a dot doubled at the start of each line.
func stuff(w *bufio.Writer, b []byte) error {
	if len(b) > 0 && b[0] == '.' {
		w.WriteByte('.')
	}
	for {
		i := bytes.Index(b, []byte("\r\n."))
		if i < 0 {
			break
		}
		w.Write(b[:i+3])
		w.WriteByte('.') // the stuffed dot
		b = b[i+3:]
	}
	_, err := w.Write(b)
	return err
}

// CheckBody refuses (ErrLineEnding) a message received without dots, by
// BDAT (RFC 3030), that holds a line ending ReadData refuses: it is sent on
// with DATA, where a server downstream could read it as the end of the
// mail. It reads the message as ReadData would read it once stuffed, so
// that the rules stay in one place.
func CheckBody(body []byte) error {
	var wire bytes.Buffer
	w := bufio.NewWriter(&wire)
	stuff(w, body)
	if !bytes.HasSuffix(body, []byte("\r\n")) {
		w.WriteString("\r\n")
	}
	w.WriteString(".\r\n")
	w.Flush()
	_, err := ReadData(bufio.NewReader(&wire), 0)
	return err
}
