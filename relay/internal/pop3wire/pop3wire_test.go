package pop3wire_test

import (
	"bytes"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/internal/pop3wire"
)

func check(t *testing.T, msg []byte) {
	f := pop3wire.Form(msg)
	if int64(len(f)) != pop3wire.Size(msg) {
		t.Fatalf("%q: size %d, form %d bytes", msg, pop3wire.Size(msg), len(f))
	}
	if !bytes.HasSuffix(f, []byte("\r\n")) || bytes.Contains(f, []byte("\r.")) {
		t.Fatalf("%q: form %q", msg, f)
	}
	for i, c := range f {
		if c == '\n' && (i == 0 || f[i-1] != '\r') {
			t.Fatalf("%q: a bare LF in the form %q", msg, f)
		}
	}
	// Nothing is lost: the message is the form with only CRs and LFs added.
	j := 0
	for _, c := range f {
		if j < len(msg) && msg[j] == c {
			j++
		} else if c != '\r' && c != '\n' {
			t.Fatalf("%q: form %q adds %q", msg, f, c)
		}
	}
	if j != len(msg) {
		t.Fatalf("%q: form %q loses bytes", msg, f)
	}
	if !bytes.Equal(pop3wire.Form(f), f) {
		t.Fatalf("%q: the form of the form differs", msg)
	}
}

func TestForm(t *testing.T) {
	for _, m := range []string{"", "a", "a\r\n", "a\nb\n", "a\r.b\r\n", "\r.\r\n", ".\r\n", "a\r\r\nb", "\n\n", "x\r\n.\r\n"} {
		check(t, []byte(m))
	}
	if got := pop3wire.Form([]byte("Subject: 0\n\nbare LF body\n")); string(got) != "Subject: 0\r\n\r\nbare LF body\r\n" {
		t.Fatalf("%q", got)
	}
}

func FuzzForm(f *testing.F) {
	for _, m := range []string{"", "a\r.b", "a\nb\r\n", ".\n"} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 1<<16 {
			return
		}
		check(t, msg)
	})
}
