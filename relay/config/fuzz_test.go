package config_test

import (
	"os"
	"testing"

	"github.com/sesam-relay/sesam-relay/relay/config"
)

// FuzzParse: any bytes give a config or an error, never a panic.
// go test ./relay/config -run '^$' -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	ex, _ := os.ReadFile(shipped)
	f.Add(ex)
	f.Add([]byte(valid))
	f.Add([]byte("max_message_size = \"25MiB\"\n[delivery]\nlifetime = \"3d12h\"\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := config.Parse(in)
		if err != nil {
			return
		}
		if c.StateDir == "" || c.Listen.Control == "" {
			t.Fatalf("accepted a config without state_dir or control socket")
		}
		for _, a := range c.Accounts {
			if a.Name == "" || a.PasswordHash == "" || a.Upstream.SMTP.Addr == "" {
				t.Fatalf("accepted an account without name, password_hash or smtp: %+v", a)
			}
		}
	})
}
