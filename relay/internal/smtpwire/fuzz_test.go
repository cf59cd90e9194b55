package smtpwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/emersion/go-smtp"
)

func rest(r *bufio.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

// FuzzReadData feeds arbitrary DATA transfers to ReadData, and to the
// byte-at-a-time reference with which it must agree. It must never
// return a mail with a bare LF or a dot after a bare CR, must stop right
// after the final dot, and what it returns must survive being dot-stuffed
// and read again unchanged (what the relay sends is what it accepted).
// Run: go test ./relay/internal/smtpwire -run '^$' -fuzz FuzzReadData -fuzztime 5m -fuzzminimizetime 0 -parallel 1
func FuzzReadData(f *testing.F) {
	for _, s := range []string{
		"a\r\nb\r\n.\r\n", "..x\r\n.\r\n", "x\r\r\n.\r\n", "x\n.\ny\r\n.\r\n",
		"x\r\n.\rX\r\n.\r\n", "x\r.\r\n.\r\n", "x\r\n.\nz\r\n.\r\n", ".\r\n", "\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const tail = "\r\n.\r\nNEXT\r\n"
		full := append(append([]byte(nil), in...), tail...)
		r := bufio.NewReaderSize(bytes.NewReader(full), 16) // tiny buffer: lines cross chunks
		const max = 300                                     // small, so that the limit is met too
		got, err := ReadData(r, max)
		ref := bufio.NewReader(bytes.NewReader(full))
		refGot, refErr := readDataRef(ref, max)
		// Both refuse, or both return the same bytes (which refusal comes
		// first, when a mail earns two, may differ).
		if (err == nil) != (refErr == nil) || !bytes.Equal(got, refGot) {
			t.Fatalf("ReadData: %q %v; the reference: %q %v", got, err, refGot, refErr)
		}
		if a, b := rest(r), rest(ref); a != b {
			t.Fatalf("ReadData stopped before %q, the reference before %q", a, b)
		}
		if err != nil {
			if !errors.Is(err, ErrLineEnding) && !errors.Is(err, smtp.ErrDataTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		flat := bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n"))
		if bytes.Contains(bytes.ReplaceAll(got, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("returned a bare LF: %q", got)
		}
		if bytes.Contains(flat, []byte("\r.")) {
			t.Fatalf("returned a dot after a bare CR: %q", got)
		}
		// Stuff it as WriteBody does and read it again.
		var wire bytes.Buffer
		if len(got) > 0 && got[0] == '.' {
			wire.WriteByte('.')
		}
		wire.Write(bytes.ReplaceAll(got, []byte("\r\n."), []byte("\r\n..")))
		if !bytes.HasSuffix(got, []byte("\r\n")) {
			wire.WriteString("\r\n")
		}
		wire.WriteString(".\r\n")
		again, err := ReadData(bufio.NewReader(&wire), 0)
		want := got
		if !bytes.HasSuffix(got, []byte("\r\n")) {
			want = append(append([]byte(nil), got...), "\r\n"...)
		}
		if err != nil || !bytes.Equal(again, want) {
			t.Fatalf("read %q, stuffed and read again %q (%v)", got, again, err)
		}
	})
}
