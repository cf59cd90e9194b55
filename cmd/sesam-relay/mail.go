package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/store"
)

// mailCmd is `mail ACCOUNT`, `mail show ID`, `mail restore ID --login L`.
func mailCmd(cfg *config.Config, o opts, args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int { fmt.Fprintf(stderr, "sesam-relay mail: %v\n", err); return 1 }
	if len(args) == 1 {
		var mb []store.MailboxEntry
		if _, err := call(cfg, control.Request{Cmd: "mail", Account: args[0]}, &mb); err != nil {
			return fail(err)
		}
		if o.json {
			printJSON(stdout, mb)
		} else {
			printMailbox(stdout, mb)
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
			printJSON(stdout, map[string]any{"ok": true, "id": id, "login": o.login})
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
		printJSON(stdout, sh)
	default:
		printMailEntry(stdout, sh.Entry)
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
		printJSON(stdout, out)
		return 0
	}
	if cmd == "fetch" {
		fmt.Fprintf(stdout, "%s: %v new, %v already held, %v deleted upstream\n", args[0], out["Fetched"], out["Duplicates"], out["Deleted"])
	} else {
		added, _ := out["added"].([]any)
		fmt.Fprintf(stdout, "%s: %d imported, %v already held (skipped)\n", args[0], len(added), out["duplicates"])
	}
	return 0
}

func collected(e store.MailboxEntry) string {
	var parts []string
	for _, c := range e.Collections {
		switch {
		case !c.Deleted.IsZero():
			parts = append(parts, c.Login+" (deleted "+when(c.Deleted)+")")
		case !c.Retrieved.IsZero():
			parts = append(parts, c.Login+" ("+when(c.Retrieved)+")")
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func printMailbox(w io.Writer, mb []store.MailboxEntry) {
	if len(mb) == 0 {
		fmt.Fprintln(w, "no mail held for this account")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRECEIVED\tCLASS\tFROM\tSUBJECT\tFOLDER\tSIZE\tCOLLECTED BY")
	for _, e := range mb {
		folder := e.Folder
		if folder == "" {
			folder = "(" + e.Origin + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, when(e.Received), e.Class, cut(e.From, 32), cut(e.Subject, 44), folder, size(uint64(e.Size)), collected(e))
	}
	tw.Flush()
}

func printMailEntry(w io.Writer, e store.MailboxEntry) {
	fmt.Fprintf(w, "message %d (%s) in %s's mailbox\n", e.ID, e.Origin, e.Account)
	row(w, "from", e.From)
	row(w, "subject", e.Subject)
	row(w, "message-id", e.MessageID)
	row(w, "received", when(e.Received)+" ("+ago(e.Received)+")")
	row(w, "folder", e.Folder)
	row(w, "size", size(uint64(e.Size)))
	row(w, "uidl", e.UIDL)
	row(w, "class", e.Class+" ("+e.ClassWhy+")")
	if e.RefMsg != 0 {
		row(w, "about", fmt.Sprintf("queued message %d (sesam-relay queue show %d)", e.RefMsg, e.RefMsg))
	}
	fmt.Fprintln(w, "\ncollected:")
	if len(e.Collections) == 0 {
		fmt.Fprintln(w, "  by no login yet")
	}
	for _, c := range e.Collections {
		line := "  " + c.Login + ":"
		if !c.Retrieved.IsZero() {
			line += " retrieved " + when(c.Retrieved)
		}
		if !c.Deleted.IsZero() {
			line += ", deleted " + when(c.Deleted) + fmt.Sprintf(" (undo: sesam-relay mail restore %d --login %s)", e.ID, c.Login)
		}
		fmt.Fprintln(w, line)
	}
}
