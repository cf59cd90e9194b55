package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The man page is written by hand: this keeps it from falling behind the
// usage text, which is what `sesam-relay help` prints.
func TestManPageDescribesEveryCommand(t *testing.T) {
	man, err := os.ReadFile("../../packaging/sesam-relay.8")
	if err != nil {
		t.Fatal(err)
	}
	page := strings.ReplaceAll(string(man), `\-`, "-")
	cmds := usage[strings.Index(usage, "COMMANDS"):strings.Index(usage, "OPTIONS")]
	line := regexp.MustCompile(`(?m)^  ([a-z]+(?: [a-z-]+)?)`)
	n := 0
	for _, m := range line.FindAllStringSubmatch(cmds, -1) {
		name := strings.TrimSuffix(m[1], " [")
		n++
		if !strings.Contains(page, name) {
			t.Errorf("the man page does not describe %q", name)
		}
	}
	if n < 15 {
		t.Fatalf("found only %d commands in the usage text: the pattern is wrong", n)
	}
	for _, opt := range []string{"--config", "--json", "SIGHUP"} {
		if !strings.Contains(page, opt) {
			t.Errorf("the man page does not mention %s", opt)
		}
	}
}
