// Package testscript holds what the protocol dialogue tests share: the
// expression language of a script's raw-bytes lines.
package testscript

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Expr evaluates a raw-bytes line of a dialogue script: Go-quoted strings
// joined by " + ", where N*"s" repeats s N times.
func Expr(e string) (string, error) {
	var out strings.Builder
	for _, part := range strings.Split(e, " + ") {
		count := 1
		if i := strings.Index(part, "*\""); i > 0 {
			n, err := strconv.Atoi(part[:i])
			if err != nil {
				return "", fmt.Errorf("%q: bad repeat count", part)
			}
			count, part = n, part[i+1:]
		}
		s, err := strconv.Unquote(part)
		if err != nil {
			return "", fmt.Errorf("%q is not a Go string: %v", part, err)
		}
		out.WriteString(strings.Repeat(s, count))
	}
	return out.String(), nil
}

// MustExpr is Expr for a test: a bad expression fails it, naming where.
func MustExpr(t testing.TB, where, e string) string {
	t.Helper()
	s, err := Expr(e)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return s
}
