// Package pop3wire is the one rule for a stored message's POP3 form: what
// pop3d sends (before dot-stuffing) and what the store announces as its
// size, which RFC 1939 says must be the same octets.
package pop3wire

import "bytes"

// Form is a message as POP3 sends it, before dot-stuffing: every line
// ends in CRLF (a bare LF becomes CRLF), a bare CR before a dot becomes
// CRLF (a client that ends lines on a bare CR would otherwise read
// "\r.\r\n" in a mail from the Internet as the end of the message, and
// what follows as the server's next reply), and it ends in CRLF. A
// message already in that form is returned as it is, without a copy.
func Form(msg []byte) []byte {
	if inForm(msg) {
		return msg
	}
	msg = bytes.ReplaceAll(msg, []byte("\r."), []byte("\r\n."))
	out := make([]byte, 0, len(msg)+len(msg)/32+2)
	for len(msg) > 0 {
		i := bytes.IndexByte(msg, '\n')
		if i < 0 {
			out = append(out, msg...)
			break
		}
		if i == 0 || msg[i-1] != '\r' {
			out = append(append(out, msg[:i]...), '\r', '\n')
		} else {
			out = append(out, msg[:i+1]...)
		}
		msg = msg[i+1:]
	}
	if !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// Size is the size POP3 announces for a message: the length of its Form.
func Size(msg []byte) int64 {
	if inForm(msg) {
		return int64(len(msg))
	}
	return int64(len(Form(msg)))
}

func inForm(msg []byte) bool {
	if !bytes.HasSuffix(msg, []byte("\r\n")) || bytes.Contains(msg, []byte("\r.")) {
		return false
	}
	for i := bytes.IndexByte(msg, '\n'); i >= 0; {
		if i == 0 || msg[i-1] != '\r' {
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
