package control

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// Mailbox is the reply to "mail ACCOUNT": its messages, newest first.
type Mailbox []store.MailboxEntry

func collected(e store.MailboxEntry) string {
	var parts []string
	for _, c := range e.Collections {
		switch {
		case !c.Deleted.IsZero() && c.Retrieved.IsZero():
			parts = append(parts, c.Login+" (deleted unread "+when(c.Deleted)+")")
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

func PrintMailbox(w io.Writer, mb []store.MailboxEntry) {
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

func PrintMailEntry(w io.Writer, e store.MailboxEntry) {
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
		var what []string
		if !c.Retrieved.IsZero() {
			what = append(what, "retrieved "+when(c.Retrieved))
		}
		if !c.Deleted.IsZero() {
			what = append(what, "deleted "+when(c.Deleted)+fmt.Sprintf(" (undo: sesam-relay mail restore %d --login %s)", e.ID, c.Login))
		}
		fmt.Fprintf(w, "  %s: %s\n", c.Login, strings.Join(what, ", "))
	}
}
