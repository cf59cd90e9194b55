package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
)

// lotsCmd is `lots [ACCOUNT] [--since DATE]` and `lots show ID`.
func lotsCmd(cfg *config.Config, o opts, args []string, stdout, stderr io.Writer) int {
	var show int64
	account := ""
	switch {
	case len(args) == 2 && args[0] == "show":
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "sesam-relay lots show: %q is not a lot id (see `sesam-relay lots`)\n", args[1])
			return 2
		}
		show = id
	case len(args) == 1:
		account = args[0]
	case len(args) > 1:
		fmt.Fprintln(stderr, "sesam-relay lots: usage: lots [ACCOUNT] [--since YYYY-MM-DD] | lots show ID")
		return 2
	}
	if o.rebuild {
		var out map[string]int
		if _, err := call(cfg, control.Request{Cmd: "lots-rebuild"}, &out); err != nil {
			fmt.Fprintf(stderr, "sesam-relay lots --rebuild: %v\n", err)
			return 1
		}
		if o.json { // the rebuild's figures only: one JSON document on stdout
			control.PrintJSON(stdout, map[string]int{"lots": out["lots"], "returns_matched": out["matched"]})
			return 0
		}
		fmt.Fprintf(stdout, "ledger rebuilt from the stored mail: %d lots, %d returns matched\n", out["lots"], out["matched"])
	}
	var all control.Lots
	if _, err := call(cfg, control.Request{Cmd: "lots", Account: account, Since: o.since}, &all); err != nil {
		fmt.Fprintf(stderr, "sesam-relay lots: %v\n", err)
		return 1
	}
	if show != 0 {
		for _, l := range all.Lots {
			if l.ID == show {
				if o.json {
					control.PrintJSON(stdout, l)
				} else {
					control.PrintLot(stdout, l)
				}
				return 0
			}
		}
		fmt.Fprintf(stderr, "sesam-relay lots show: no lot %d (a lot's id is its queue id)\n", show)
		return 1
	}
	if o.json {
		control.PrintJSON(stdout, all)
		return 0
	}
	control.PrintLots(stdout, all)
	return 0
}
