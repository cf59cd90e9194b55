package pop3d

import (
	"bufio"
	"bytes"
)

// writeMessage sends a message as a POP3 multi-line response body: each line
// ends in CRLF (a bare LF is sent as CRLF), a line starting with "." gets
// another ".", and the terminating ".\r\n" follows. maxBodyLines < 0 sends
// it all; otherwise the header and that many body lines (TOP).
func writeMessage(w *bufio.Writer, msg []byte, maxBodyLines int) error {
	inBody := false
	bodyLines := 0
	for len(msg) > 0 {
		if inBody && maxBodyLines >= 0 && bodyLines >= maxBodyLines {
			break
		}
		var line []byte
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			line, msg = msg, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		w.WriteString("\r\n")
		if inBody {
			bodyLines++
		} else if len(line) == 0 {
			inBody = true
		}
	}
	w.WriteString(".\r\n")
	return w.Flush()
}
