package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func runCLI(stdin string, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

// Asked for, the help goes to stdout with success, whatever its spelling.
func TestHelpIsOnStdoutAndSucceeds(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}} {
		code, out, errOut := runCLI("", args...)
		if code != 0 || !strings.Contains(out, "USAGE") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %d bytes, stderr %q", args, code, len(out), errOut)
		}
	}
}

// A typo is named as such, before a config file is looked for.
func TestAnUnknownCommandIsNotAConfigError(t *testing.T) {
	code, _, errOut := runCLI("", "--config", "/nonexistent/config.toml", "stauts")
	if code != 2 || !strings.Contains(errOut, `unknown command "stauts"`) || strings.Contains(errOut, "nonexistent") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// Every command that prints has --json.
func TestVersionAndPasswdSpeakJSON(t *testing.T) {
	var v map[string]string
	if code, out, _ := runCLI("", "version", "--json"); code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" {
		t.Fatalf("version --json: %d %q", code, out)
	}
	var p map[string]string
	if code, out, _ := runCLI("s3cret-enough\n", "passwd", "--json"); code != 0 || json.Unmarshal([]byte(out), &p) != nil || !strings.HasPrefix(p["password_hash"], "$") {
		t.Fatalf("passwd --json: %d %q", code, out)
	}
}

// A stray argument or an impossible page is refused, not silently ignored.
func TestStrayArgumentsAndPageZeroAreRefused(t *testing.T) {
	for _, args := range [][]string{{"version", "extra"}, {"--config", "/nonexistent/config.toml", "status", "extra"}, {"queue", "--page", "0"}} {
		if code, out, errOut := runCLI("", args...); code != 2 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
