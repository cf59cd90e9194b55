package control

import (
	"fmt"
	"io"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
)

// Keys is `sesam-relay keys seal`: the store key from its plain file into
// a systemd credential (keys.Seal). Run as root; the package's postinst
// runs it where systemd runs.
func Keys(cfg *config.Config, args []string, asJSON bool, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "seal" {
		fmt.Fprintln(stderr, "sesam-relay keys: usage: keys seal")
		return 2
	}
	said, err := keys.Seal(cfg.StoreKey)
	if err != nil {
		fmt.Fprintf(stderr, "sesam-relay keys seal: %v\n", err)
		return 1
	}
	if asJSON {
		PrintJSON(stdout, map[string]string{"credential": keys.CredentialFile(cfg.StoreKey), "drop_in": keys.DropIn()})
	} else {
		fmt.Fprintln(stdout, said)
	}
	return 0
}
