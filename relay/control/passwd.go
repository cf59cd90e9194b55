package control

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/sesam-relay/sesam-relay/relay/auth"
)

// Passwd is `sesam-relay passwd`: a password read twice from the terminal,
// or once from stdin, printed as the hash password_hash takes.
func Passwd(stdin io.Reader, stdout, stderr io.Writer, asJSON bool) int {
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprint(stderr, "\nAgain: ")
		b, err2 := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil || err2 != nil || string(a) != string(b) {
			fmt.Fprintln(stderr, "sesam-relay passwd: the two passwords differ")
			return 1
		}
		pw = string(a)
	} else {
		b, err := io.ReadAll(io.LimitReader(stdin, 4096))
		if err != nil {
			fmt.Fprintf(stderr, "sesam-relay passwd: %v\n", err)
			return 1
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if pw == "" {
		fmt.Fprintln(stderr, "sesam-relay passwd: empty password refused")
		return 1
	}
	h, err := auth.Hash(pw)
	if err != nil {
		fmt.Fprintf(stderr, "sesam-relay passwd: %v\n", err)
		return 1
	}
	if asJSON {
		PrintJSON(stdout, map[string]string{"password_hash": h})
	} else {
		fmt.Fprintln(stdout, h)
	}
	return 0
}
