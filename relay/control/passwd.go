package control

import (
	"errors"
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
	pw, err := readPassword(stdin, stderr, "Password: ")
	if err != nil {
		fmt.Fprintf(stderr, "sesam-relay passwd: %v\n", err)
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

// maxPassword bounds a password read from a pipe: a longer input is a
// mistake (the wrong file), refused rather than cut.
const maxPassword = 4096

// readPassword reads a password: twice, without echo, from a terminal
// (the prompts on stderr); else one line from stdin (a pipe, a file), its
// line ending dropped. Empty, or more than one line, is refused.
func readPassword(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, prompt)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprint(stderr, "\nAgain: ")
		b, err2 := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil || err2 != nil || string(a) != string(b) {
			return "", errors.New("the two passwords differ")
		}
		pw = string(a)
	} else {
		b, err := io.ReadAll(io.LimitReader(stdin, maxPassword+3))
		if err != nil {
			return "", err
		}
		if len(b) > maxPassword+2 { // its line ending aside
			return "", fmt.Errorf("more than %d bytes on standard input: that is no password", maxPassword)
		}
		pw = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	switch {
	case strings.TrimSpace(pw) == "":
		return "", errors.New("empty password refused")
	case strings.ContainsAny(pw, "\r\n"):
		return "", errors.New("the password is one line: give it alone (no other line on standard input)")
	}
	return pw, nil
}
