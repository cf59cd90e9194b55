package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/relay/store"
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
		fmt.Fprintf(stdout, "ledger rebuilt from the stored mail: %d lots, %d returns matched\n", out["lots"], out["matched"])
	}
	var lots []store.Lot
	if _, err := call(cfg, control.Request{Cmd: "lots", Account: account, Since: o.since}, &lots); err != nil {
		fmt.Fprintf(stderr, "sesam-relay lots: %v\n", err)
		return 1
	}
	if show != 0 {
		for _, l := range lots {
			if l.ID == show {
				if o.json {
					printJSON(stdout, l)
				} else {
					printLot(stdout, l)
				}
				return 0
			}
		}
		fmt.Fprintf(stderr, "sesam-relay lots show: no lot %d (a lot's id is its queue id)\n", show)
		return 1
	}
	if o.json {
		printJSON(stdout, lots)
		return 0
	}
	if len(lots) == 0 {
		fmt.Fprintln(stdout, "no lot yet")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOT DATE\tACCOUNT\tFUND\tEMITTER\tINVOICES\tSTATE\tAGE\tCAME BACK")
	for _, l := range lots {
		fund := l.Fund
		if l.Test {
			fund += " (test)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.ID, l.LotAt.Local().Format("2006-01-02 15:04"), l.Account, fund, l.Emitter,
			l.Invoices, strings.ToUpper(l.State), round(time.Since(l.Submitted)), cameBack(l))
	}
	tw.Flush()
	return 0
}

func cameBack(l store.Lot) string {
	if len(l.Returns) == 0 {
		return "-"
	}
	var parts []string
	for _, r := range l.Returns {
		p := r.Class
		if !r.Certain {
			p += " (probable)"
		}
		if r.Detail != "" {
			p += ": " + r.Detail
		}
		parts = append(parts, p)
	}
	return cut(strings.Join(parts, ", "), 90)
}

func printLot(w io.Writer, l store.Lot) {
	fmt.Fprintf(w, "lot %d: %s\n", l.ID, strings.ToUpper(l.State))
	row(w, "account", l.Account)
	row(w, "fund", l.Fund)
	row(w, "emitter", l.Emitter)
	row(w, "lot stamp", l.Stamp+" ("+l.LotAt.Local().Format("2006-01-02 15:04:05")+")")
	row(w, "invoices", fmt.Sprint(l.Invoices))
	row(w, "submitted", when(l.Submitted)+" ("+ago(l.Submitted)+")")
	if !l.DeliveredAt.IsZero() {
		row(w, "delivered", when(l.DeliveredAt)+" ("+ago(l.DeliveredAt)+")")
	}
	fmt.Fprintf(w, "\nwhat came back:\n")
	if len(l.Returns) == 0 {
		fmt.Fprintln(w, "  nothing yet")
	}
	for _, r := range l.Returns {
		certainty := "certain"
		if !r.Certain {
			certainty = "probable"
		}
		fmt.Fprintf(w, "  %s  %s (%s: %s)\n", when(r.Received), r.Class, certainty, r.How)
		if r.Detail != "" {
			fmt.Fprintf(w, "      reason: %s\n", r.Detail)
		}
		fmt.Fprintf(w, "      mail %d: %s (sesam-relay mail show %d)\n", r.MailboxID, cut(r.Subject, 80), r.MailboxID)
	}
	fmt.Fprintf(w, "\nthe queue's record: sesam-relay queue show %d\n", l.ID)
}
