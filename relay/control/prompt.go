package control

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// asker reads what a command asks for: on a terminal, each value after a
// prompt on stderr, passwords without echo; else one value per line of
// standard input, in the order the command's help gives.
type asker struct {
	tty    *os.File // nil: not a terminal
	lines  *bufio.Reader
	stderr io.Writer
}

func newAsker(stdin io.Reader, stderr io.Writer) *asker {
	a := &asker{stderr: stderr}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		a.tty = f
	}
	a.lines = bufio.NewReaderSize(io.LimitReader(stdin, 64<<10), 4096)
	return a
}

// Interactive says whether a person answers.
func (a *asker) Interactive() bool { return a.tty != nil }

// line is one line of input, its line ending dropped; what a person typed
// on a terminal, or the next line of standard input.
func (a *asker) line(prompt string) (string, error) {
	if a.tty != nil {
		fmt.Fprint(a.stderr, prompt)
	}
	s, err := a.lines.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		if err == io.EOF {
			return "", errors.New("standard input ended before every value was given")
		}
		return "", err
	}
	if len(s) > maxPassword+2 {
		return "", fmt.Errorf("a line of more than %d bytes on standard input", maxPassword)
	}
	return strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r"), nil
}

// password reads a password: without echo on a terminal (twice when
// confirm, as nothing else checks it), else the next line of input.
func (a *asker) password(prompt string, confirm bool) (string, error) {
	var pw string
	if a.tty != nil {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(int(a.tty.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", err
		}
		pw = string(b)
		if confirm {
			fmt.Fprint(a.stderr, "Again: ")
			b2, err := term.ReadPassword(int(a.tty.Fd()))
			fmt.Fprintln(a.stderr)
			if err != nil || string(b2) != pw {
				return "", errors.New("the two passwords differ")
			}
		}
	} else {
		var err error
		if pw, err = a.line(""); err != nil {
			return "", err
		}
	}
	if strings.TrimSpace(pw) == "" {
		return "", errors.New("empty password refused")
	}
	if len(pw) > maxPassword {
		return "", fmt.Errorf("a password of more than %d bytes is refused", maxPassword)
	}
	return pw, nil
}
