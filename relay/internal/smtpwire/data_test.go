package smtpwire

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestReadDataRefusesOnlyTheEndingsThatCanEndAMail(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // the message, or "" when refused
		err  error
	}{
		{"a\r\nb\r\n.\r\n", "a\r\nb\r\n", nil},
		{"..dot\r\n.\r\n", ".dot\r\n", nil},                                        // dot-stuffing undone
		{"x\r\r\ny\r\r\n.\r\n", "x\r\r\ny\r\r\n", nil},                             // CR CR LF kept as is
		{"bare\rcr inside\r\n.\r\n", "bare\rcr inside\r\n", nil},                   // a bare CR inside a line
		{"x\r\n..\rX\r\n.\r\n", "x\r\n.\rX\r\n", nil},                              // a stuffed ".\r": a dot, then a bare CR
		{"\r\n.\r\n", "\r\n", nil},                                                 // an empty line
		{".\r\n", "", nil},                                                         // an empty mail
		{"x\n.\nMAIL FROM:<e@f>\r\n.\r\n", "", ErrLineEnding},                      // bare LF
		{"x\r\n.\rMAIL FROM:<e@f>\r\n.\r\n", "", ErrLineEnding},                    // <CR><LF>.<CR> without LF
		{"x\r.\rMAIL FROM:<e@f>\r\n.\r\n", "", ErrLineEnding},                      // <CR>.<CR>
		{"x\r.\r\nMAIL FROM:<e@f>\r\n.\r\n", "", ErrLineEnding},                    // <CR>.<CR><LF>
		{"x\n.\r\nMAIL FROM:<e@f>\r\n.\r\n", "", ErrLineEnding},                    // <LF>.<CR><LF>
		{"x\r\n.\nMAIL FROM:<e@f>\r\n.\r\n", "", ErrLineEnding},                    // <CR><LF>.<LF>
		{strings.Repeat("0123456789", 11) + "\r\n.\r\n", "", smtp.ErrDataTooLarge}, // over max
	} {
		rest := "QUIT\r\n"
		r := bufio.NewReader(strings.NewReader(c.in + rest))
		got, err := ReadData(r, 100)
		if !errors.Is(err, c.err) {
			t.Errorf("%q: error %v, want %v", c.in, err, c.err)
			continue
		}
		if err == nil && string(got) != c.want {
			t.Errorf("%q: read %q, want %q", c.in, got, c.want)
		}
		// Refused or not, the reader stops right after the final dot.
		if left, _ := r.ReadString('\n'); left != rest {
			t.Errorf("%q: left %q unread, want %q", c.in, left, rest)
		}
	}
}

func TestReadDataWithoutTheFinalDotIsAnError(t *testing.T) {
	if _, err := ReadData(bufio.NewReader(strings.NewReader("cut\r\n")), 0); err == nil {
		t.Fatal("a transfer cut before the final dot was read as a mail")
	}
}
