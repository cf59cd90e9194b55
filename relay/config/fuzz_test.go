package config_test

import (
	"os"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/config"
)

// FuzzParse: any bytes give a config or an error, never a panic.
// go test ./relay/config -run '^$' -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	ex, _ := os.ReadFile("../../testdata/config.toml")
	f.Add(ex)
	f.Add([]byte(valid))
	f.Add([]byte("max_message_size = \"25MiB\"\n[delivery]\nlifetime = \"3d12h\"\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := config.Parse(in)
		if err == nil && (c.StateDir == "" || len(c.Accounts) == 0) {
			t.Fatalf("accepted a config without state_dir or accounts")
		}
	})
}
