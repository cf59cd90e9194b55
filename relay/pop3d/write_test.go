package pop3d

import (
	"bufio"
	"bytes"
	"testing"
)

// slow is the line-by-line path on its own, the reference for the fast one.
func slow(msg []byte) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeMessage(w, append([]byte{}, msg...), 1<<30)
	return b.Bytes()
}

func TestFastPathSendsWhatTheLineByLinePathSends(t *testing.T) {
	for _, m := range []string{
		"Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nno final newline", ".starts with a dot\r\n",
		"Subject: a\r\n\r\n.dot line\r\n", "bare\nLF\r\n", "\n", "", "a\r\n\r\n",
	} {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		writeMessage(w, []byte(m), -1)
		if !bytes.Equal(b.Bytes(), slow([]byte(m))) {
			t.Errorf("%q: fast %q, line by line %q", m, b.Bytes(), slow([]byte(m)))
		}
	}
}

func FuzzWriteMessage(f *testing.F) {
	f.Add([]byte("Subject: a\r\n\r\n.x\r\n"))
	f.Add([]byte("a\nb\r\n.\r\n"))
	f.Add([]byte("line1\r.\r\n+OK fake\r\n"))
	f.Fuzz(func(t *testing.T, m []byte) {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		writeMessage(w, m, -1)
		if !bytes.Equal(b.Bytes(), slow(m)) {
			t.Fatalf("%q: fast and line-by-line differ", m)
		}
		out := b.Bytes()
		if !bytes.HasSuffix(out, []byte("\r\n.\r\n")) && !bytes.Equal(out, []byte(".\r\n")) {
			t.Fatalf("not terminated: %q", out)
		}
		if bytes.Contains(bytes.TrimSuffix(out, []byte(".\r\n")), []byte("\r\n.\r\n")) {
			t.Fatalf("an early end marker: %q", out)
		}
		if earlyEndForLaxClients(out) {
			t.Fatalf("a client ending lines on a bare CR or LF sees an early end: %q", out)
		}
	})
}

// earlyEndForLaxClients reports whether a client that ends lines on CRLF,
// a bare CR or a bare LF would find a lone "." before the real end.
func earlyEndForLaxClients(out []byte) bool {
	body := bytes.TrimSuffix(out, []byte(".\r\n"))
	start := 0
	for i := 0; i <= len(body); i++ {
		if i == len(body) || body[i] == '\r' || body[i] == '\n' {
			if string(body[start:i]) == "." {
				return true
			}
			start = i + 1
		}
	}
	return false
}

// A mail from the Internet holding "\r.\r\n" must not end the RETR reply
// early for a client that ends lines on a bare CR (found by review: the next
// line was read as the server's reply).
func TestABareCRBeforeADotCannotEndTheReplyEarly(t *testing.T) {
	m := []byte("Subject: x\r\n\r\nline1\r.\r\n+OK fake\r\n")
	out := slow(m)
	if earlyEndForLaxClients(out) {
		t.Fatalf("sent %q", out)
	}
}
