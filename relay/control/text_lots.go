package control

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

// printLots lists the lots. A lot's date is shown as its stamp says, in
// the stamp's zone (stamp_zone), whatever the box's clock: the billing
// software shows the practitioner that time.
func PrintLots(w io.Writer, all Lots) {
	if len(all.Lots) == 0 {
		fmt.Fprintln(w, "no lot yet")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLOT DATE\tACCOUNT\tFUND\tEMITTER\tINVOICES\tSTATE\tAGE\tLATE\tCAME BACK")
		for _, l := range all.Lots {
			fund := l.Fund
			if l.Test {
				fund += " (test)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", l.ID, l.LotAt.Format("2006-01-02 15:04"), l.Account, fund, l.Emitter,
				l.Invoices, strings.ToUpper(string(l.State)), round(time.Since(l.Submitted)), orDash(l.Late), cameBack(l))
		}
		tw.Flush()
	}
	if len(all.Unmatched) > 0 {
		fmt.Fprintf(w, "\nreturns no lot claims (%d):\n", len(all.Unmatched))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  MAIL\tRECEIVED\tACCOUNT\tCLASS\tWHY")
		for _, u := range all.Unmatched {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", u.MailboxID, when(u.Received), u.Account, u.Class, cut(u.Why, 70))
		}
		tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cameBack sums up what came back for a lot: its returns, and the
// invoices the fund rejected or already had.
func cameBack(l LotView) string {
	if len(l.Returns) == 0 {
		return "-"
	}
	var parts []string
	for _, r := range l.Returns {
		p := string(r.Class)
		if !r.Certain {
			p += " (probable)"
		}
		parts = append(parts, p)
	}
	if n := len(l.RejectedInvoices); n > 0 {
		parts = append(parts, plural(n, "invoice")+" rejected")
	}
	if n := len(l.DuplicateInvoices); n > 0 {
		parts = append(parts, plural(n, "invoice")+" already billed")
	}
	if n := len(l.InvoicesToCheck); n > 0 {
		parts = append(parts, plural(n, "invoice")+" to check")
	}
	return cut(strings.Join(parts, ", "), 90)
}

func PrintLot(w io.Writer, l LotView) {
	fmt.Fprintf(w, "lot %d: %s\n", l.ID, strings.ToUpper(string(l.State)))
	row(w, "why", l.Why)
	if l.Safe {
		row(w, "safe", "yes: the fund acknowledged it; the practitioner's responsibility has ended")
	} else {
		row(w, "safe", "no: nothing certain says the fund has it")
	}
	if l.Late != "" {
		row(w, "late", l.Late)
	}
	row(w, "account", l.Account)
	row(w, "fund", l.Fund+" "+l.FundName)
	row(w, "emitter", l.Emitter)
	row(w, "lot stamp", l.Stamp+" ("+l.LotAt.Format("2006-01-02 15:04:05 MST")+")") // the zone: submitted and delivered are the box's
	row(w, "invoices", fmt.Sprint(l.Invoices))
	row(w, "submitted", when(l.Submitted)+" ("+ago(l.Submitted)+")")
	if !l.Delivered.IsZero() {
		row(w, "delivered", when(l.Delivered)+" ("+ago(l.Delivered)+")")
	}
	outcomes(w, "invoices rejected (bill them again, corrected)", l.RejectedInvoices)
	outcomes(w, "invoices the fund already had (do not bill them again)", l.DuplicateInvoices)
	outcomes(w, "invoices to check", l.InvoicesToCheck)
	if len(l.LotRejects) > 0 {
		fmt.Fprintln(w, "\nrejects about the whole lot:")
		for _, r := range l.LotRejects {
			fmt.Fprintf(w, "  %s %s (%s)\n", r.Code, r.Label, r.Kind)
		}
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
		if r.Facts.ARL != "" {
			fmt.Fprintf(w, "      the ARL says: %s\n", r.Facts.ARL)
		}
		fmt.Fprintf(w, "      mail %d: %s (sesam-relay mail show %d)\n", r.MailboxID, cut(r.Subject, 80), r.MailboxID)
	}
	fmt.Fprintf(w, "\nthe queue's record: sesam-relay queue show %d\n", l.ID)
}

func outcomes(w io.Writer, title string, list []sesam.InvoiceOutcome) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, o := range list {
		fmt.Fprintf(w, "  invoice %s: %s %s\n", o.Number, o.Code, o.Label)
	}
}
