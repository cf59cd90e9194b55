package pop3d

import (
	"bufio"
	"bytes"
)

// writeMessage sends a message as a POP3 multi-line response body: each line
// ends in CRLF (a bare LF is sent as CRLF), a line starting with "." gets
// another ".", and the terminating ".\r\n" follows. maxBodyLines < 0 sends
// it all; otherwise the header and that many body lines (TOP).
//
// A bare CR followed by a dot is sent as CRLF, so that the dot is stuffed:
// a client that ends lines on a bare CR would otherwise read "\r.\r\n" in a
// mail from the Internet as the end of the message, and what follows as
// the server's next reply. store's wireSize counts that LF.
func writeMessage(w *bufio.Writer, msg []byte, maxBodyLines int) error {
	if bytes.Contains(msg, []byte("\r.")) {
		msg = bytes.ReplaceAll(msg, []byte("\r."), []byte("\r\n."))
	}
	if maxBodyLines < 0 && clean(msg) {
		// The usual case, in one write: nothing to stuff or mend.
		w.Write(msg)
		if !bytes.HasSuffix(msg, []byte("\r\n")) {
			w.WriteString("\r\n")
		}
		w.WriteString(".\r\n")
		return w.Flush()
	}
	if len(msg) == 0 {
		w.WriteString("\r\n") // like any message not ending in CRLF (and as its size says)
	}
	inBody := false
	bodyLines := 0
	for len(msg) > 0 {
		if inBody && maxBodyLines >= 0 && bodyLines >= maxBodyLines {
			break
		}
		var line []byte
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = bytes.TrimSuffix(msg[:i], []byte("\r")), msg[i+1:]
		} else {
			line, msg = msg, nil // the last line, without LF: kept whole
		}
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

// clean reports whether a message can go out as it is: every LF follows a
// CR, and no line starts with a dot.
func clean(msg []byte) bool {
	if len(msg) > 0 && msg[0] == '.' {
		return false
	}
	for i := bytes.IndexByte(msg, '\n'); i >= 0; {
		if i == 0 || msg[i-1] != '\r' || (i+1 < len(msg) && msg[i+1] == '.') {
			return false
		}
		j := bytes.IndexByte(msg[i+1:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return true
}
