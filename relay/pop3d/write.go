package pop3d

import (
	"bufio"
	"bytes"

	"github.com/sesam-relay/sesam-relay/relay/internal/pop3wire"
)

// writeMessage sends a message as a POP3 multi-line response body: its
// pop3wire.Form (the octets the store announced as its size), a line
// starting with "." gets another ".", and the terminating ".\r\n" follows.
// maxBodyLines < 0 sends it all; otherwise the header and that many body
// lines (TOP).
func writeMessage(w *bufio.Writer, msg []byte, maxBodyLines int) error {
	msg = pop3wire.Form(msg)
	if maxBodyLines < 0 && !(len(msg) > 0 && msg[0] == '.') && !bytes.Contains(msg, []byte("\n.")) {
		// The usual case, in one write: nothing to stuff.
		w.Write(msg)
		w.WriteString(".\r\n")
		return w.Flush()
	}
	inBody := false
	bodyLines := 0
	for len(msg) > 0 {
		if inBody && maxBodyLines >= 0 && bodyLines >= maxBodyLines {
			break
		}
		i := bytes.IndexByte(msg, '\n') // Form ends every line in CRLF
		line := msg[:i+1]
		msg = msg[i+1:]
		if line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		if inBody {
			bodyLines++
		} else if len(line) == 2 {
			inBody = true
		}
	}
	w.WriteString(".\r\n")
	return w.Flush()
}
