package control

import (
	"fmt"
	"io"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/keys"
)

// Secret is `sesam-relay secret set ACCOUNT`: the account's provider
// password, read without echo (or from stdin), kept as a systemd
// credential sealed to this machine where systemd-creds can (keys.
// SealSecret), else in password_file, mode 0600. The service reads a
// credential at its start only: on a real install the command restarts
// it (deliveries in hand finish first); elsewhere it says to. Run as root.
func Secret(cfg *config.Config, args []string, asJSON bool, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(code int, f string, a ...any) int {
		fmt.Fprintf(stderr, "sesam-relay secret: "+f+"\n", a...)
		return code
	}
	if len(args) != 2 || args[0] != "set" {
		return fail(2, "usage: secret set ACCOUNT (the password on standard input, or asked for)")
	}
	acct := cfg.Account(args[1])
	if acct == nil {
		return fail(1, "no account %q in the config", args[1])
	}
	file := acct.Upstream.PasswordFile
	if file == "" {
		return fail(1, "account %s has no password_file under [account.upstream]: add one (for example /etc/sesam-relay/secrets/%s), then run this again", acct.Name, acct.Name)
	}
	pw, err := readPassword(stdin, stderr, fmt.Sprintf("Provider password of %s (%s): ", acct.Name, acct.Upstream.Username))
	if err != nil {
		return fail(1, "%v", err)
	}
	said, err := keys.SealSecret(file, config.PasswordCredential(file), []byte(pw))
	if err != nil {
		return fail(1, "%v", err)
	}
	restart := "the relay reads it at its next connection to the provider"
	if keys.CanSeal() {
		restart = applyChange(cfg, true)
	}
	if asJSON {
		PrintJSON(stdout, map[string]any{"account": acct.Name, "sealed": keys.CanSeal(), "said": said, "restart": restart})
		return 0
	}
	fmt.Fprintf(stdout, "account %s: the provider password is %s; %s\n", acct.Name, said, restart)
	return 0
}
