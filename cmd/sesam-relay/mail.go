package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
)

// mailCmd is `mail ACCOUNT`, `mail show ID`, `mail restore ID --login L`.
func mailCmd(cfg *config.Config, o opts, args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int { fmt.Fprintf(stderr, "sesam-relay mail: %v\n", err); return 1 }
	if len(args) == 1 {
		var mb control.Mailbox
		if _, err := call(cfg, control.Request{Cmd: "mail", Account: args[0]}, &mb); err != nil {
			return fail(err)
		}
		if o.json {
			control.PrintJSON(stdout, mb)
		} else {
			control.PrintMailbox(stdout, mb)
		}
		return 0
	}
	if len(args) != 2 || (args[0] != "show" && args[0] != "restore") {
		fmt.Fprintln(stderr, "sesam-relay mail: usage: mail ACCOUNT | mail show ID [--raw] | mail restore ID --login LOGIN")
		return 2
	}
	id, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		fmt.Fprintf(stderr, "sesam-relay mail: %q is not a message id (see `sesam-relay mail ACCOUNT`)\n", args[1])
		return 2
	}
	if args[0] == "restore" {
		if o.login == "" {
			fmt.Fprintln(stderr, "sesam-relay mail restore: say for which login: --login LOGIN")
			return 2
		}
		if _, err := call(cfg, control.Request{Cmd: "mail-restore", ID: id, Login: o.login}, nil); err != nil {
			return fail(err)
		}
		if o.json {
			control.PrintJSON(stdout, map[string]any{"ok": true, "id": id, "login": o.login})
		} else {
			fmt.Fprintf(stdout, "message %d is visible to %s again\n", id, o.login)
		}
		return 0
	}
	var sh control.MailShow
	if _, err := call(cfg, control.Request{Cmd: "mail-show", ID: id, All: o.raw}, &sh); err != nil {
		return fail(err)
	}
	switch {
	case o.raw && !o.json:
		stdout.Write(sh.Raw)
	case o.json:
		control.PrintJSON(stdout, sh)
	default:
		control.PrintMailEntry(stdout, sh.Entry)
	}
	return 0
}

// inbound is `fetch ACCOUNT` and `import ACCOUNT FILE...`.
func inbound(cfg *config.Config, o opts, cmd string, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || (cmd == "fetch" && len(args) != 1) || (cmd == "import" && len(args) < 2) {
		fmt.Fprintf(stderr, "sesam-relay %s: usage: fetch ACCOUNT | import ACCOUNT FILE.eml...\n", cmd)
		return 2
	}
	req := control.Request{Cmd: cmd, Account: args[0]}
	for _, f := range args[1:] {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "sesam-relay import: %v\n", err)
			return 1
		}
		req.Files = append(req.Files, b)
	}
	var out map[string]any
	if _, err := call(cfg, req, &out); err != nil {
		fmt.Fprintf(stderr, "sesam-relay %s: %v\n", cmd, err)
		return 1
	}
	if o.json {
		control.PrintJSON(stdout, out)
		return 0
	}
	if cmd == "fetch" {
		fmt.Fprintf(stdout, "%s: %v new, %v already held, %v deleted upstream\n", args[0], out["fetched"], out["duplicates"], out["deleted_upstream"])
	} else {
		added, _ := out["added"].([]any)
		fmt.Fprintf(stdout, "%s: %d imported, %v already held (skipped)\n", args[0], len(added), out["duplicates"])
	}
	return 0
}
