package sesam

import "bytes"

// readable returns raw with CR CR LF line ends read as CRLF, for parsing
// only. A Windows program that writes a CRLF file in text mode doubles every
// CR; the mail is legitimate and goes out unchanged, but the MIME readers
// would see a stray CR at the end of each header line and find no part.
func readable(raw []byte) []byte {
	if !bytes.Contains(raw, []byte("\r\r\n")) {
		return raw
	}
	return bytes.ReplaceAll(raw, []byte("\r\r\n"), []byte("\r\n"))
}
