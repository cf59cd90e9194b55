package control

import (
	"fmt"
	"io"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
)

// Keys is `sesam-relay keys seal` (the store key from its plain file into
// a systemd credential, keys.Seal; the package's postinst runs it where
// systemd runs) and `keys rotate` (a new key writes, the old ones read,
// keys.Rotate). Run as root.
func Keys(cfg *config.Config, args []string, asJSON bool, stdout, stderr io.Writer) int {
	if len(args) != 1 || (args[0] != "seal" && args[0] != "rotate") {
		fmt.Fprintln(stderr, "sesam-relay keys: usage: keys seal | keys rotate | keys recovery --out FILE [--force]")
		return 2
	}
	var said string
	var err error
	if args[0] == "rotate" {
		said, err = keys.Rotate(cfg.StoreKey, cfg.Hostname)
	} else {
		said, err = keys.Seal(cfg.StoreKey)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesam-relay keys %s: %v\n", args[0], err)
		return 1
	}
	if asJSON && args[0] == "rotate" {
		PrintJSON(stdout, map[string]string{"said": said})
		return 0
	}
	if asJSON {
		PrintJSON(stdout, map[string]string{"credential": keys.CredentialFile(cfg.StoreKey), "drop_in": keys.DropIn()})
	} else {
		fmt.Fprintln(stdout, said)
	}
	return 0
}
