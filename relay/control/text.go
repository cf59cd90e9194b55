package control

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/sesam-relay/sesam-relay/relay/store"
)

// The text the CLI prints for each reply, in one place: the technician
// reads it in a terminal, so what comes from a mail goes through cut.

// PrintJSON prints a reply for scripts: indented, Message-IDs unescaped.
func PrintJSON(w io.Writer, v any) {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	e.SetEscapeHTML(false) // Message-IDs keep their <>
	e.Encode(v)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + round(-d)
	}
	return round(d) + " ago"
}

func round(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func size(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func PrintStatus(w io.Writer, st Status) {
	if st.Running {
		fmt.Fprintf(w, "sesam-relay on %s: running since %s (%s)\n", st.Hostname, when(st.Started), ago(st.Started))
		fmt.Fprintf(w, "listening:  %s\n", strings.Join(st.Listeners, ", "))
		if st.Fingerprint != "" {
			fmt.Fprintf(w, "certificate: SHA-256 %s\n", st.Fingerprint)
		}
	} else {
		fmt.Fprintf(w, "sesam-relay on %s: NOT RUNNING (figures read from the store; start it: systemctl start sesam-relay)\n", st.Hostname)
	}
	fmt.Fprintf(w, "state_dir:  %s (%s free)\n", st.StateDir, size(st.FreeBytes))
	if f := st.LocalFault; f != nil {
		fmt.Fprintf(w, "! DELIVERY PAUSED for every account since %s (%s): %s\n", when(f.Since), ago(f.Since), f.Text())
		fmt.Fprintf(w, "  the providers are not at fault; next write test: %s (%s)\n", when(f.NextTry), ago(f.NextTry))
	}
	fmt.Fprintf(w, "local TLS:  %s and later\n", st.TLSMin)
	if b := st.LastBackup; b != nil {
		fmt.Fprintf(w, "backup:     %s (%s), %s\n", when(b.At), ago(b.At), b.File)
	}
	if st.StoreKey != "" {
		fmt.Fprintf(w, "store key:  %s (every stored body is encrypted to it)\n", st.StoreKey)
	}
	for _, wk := range st.Weaknesses {
		fmt.Fprintf(w, "! %s\n", wk)
	}
	if len(st.Actions) > 0 {
		fmt.Fprintf(w, "technician actions since start (the journal keeps them all):\n")
		for _, a := range st.Actions {
			line := fmt.Sprintf("  %s  %s by %s", when(a.At), a.Cmd, a.Caller)
			if len(a.IDs) > 0 {
				line += fmt.Sprintf(" on %v", a.IDs)
			}
			if a.Error != "" {
				line += " — refused: " + a.Error
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, a := range st.Accounts {
		fmt.Fprintf(w, "\n%s <%s> via %s\n", a.Name, a.Address, a.Upstream)
		h := a.Health
		switch {
		case !h.FailingSince.IsZero():
			if h.Failure == "local" {
				fmt.Fprintf(w, "  provider: NOT TRIED since %s (%s), this box's fault: %s\n", when(h.FailingSince), ago(h.FailingSince), h.LastError)
			} else {
				fmt.Fprintf(w, "  provider: FAILING since %s (%s): %s\n", when(h.FailingSince), ago(h.FailingSince), h.LastError)
			}
			if h.PausedUntil.After(time.Now()) {
				fmt.Fprintf(w, "  paused until %s so as not to hammer the provider; fix the password, then `sesam-relay queue retry ID`, restart, or wait\n", when(h.PausedUntil))
			} else if h.NextTry.After(time.Now()) {
				fmt.Fprintf(w, "  next try: %s (%s): %s\n", when(h.NextTry), ago(h.NextTry), h.NextReason)
			}
			if !h.LastSuccess.IsZero() {
				fmt.Fprintf(w, "  last delivery: %s (%s)\n", when(h.LastSuccess), ago(h.LastSuccess))
			}
		case !h.LastSuccess.IsZero():
			fmt.Fprintf(w, "  provider: OK, last delivery %s (%s)\n", when(h.LastSuccess), ago(h.LastSuccess))
		default:
			fmt.Fprintf(w, "  provider: nothing sent yet\n")
		}
		if f := a.Fetch; f != nil {
			switch {
			case !f.FailingSince.IsZero():
				if f.Failure == "local" {
					fmt.Fprintf(w, "  collecting (%s): NOT TRIED since %s (%s), this box's fault: %s\n", a.IMAP, when(f.FailingSince), ago(f.FailingSince), f.LastError)
				} else {
					fmt.Fprintf(w, "  collecting (%s): FAILING since %s (%s): %s\n", a.IMAP, when(f.FailingSince), ago(f.FailingSince), f.LastError)
				}
				if f.PausedUntil.After(time.Now()) {
					fmt.Fprintf(w, "  polling paused until %s so as not to hammer the provider; `sesam-relay fetch %s` tries now\n", when(f.PausedUntil), a.Name)
				}
				fmt.Fprintf(w, "  the billing software still collects what is held here: %d message(s)\n", a.Mailbox)
			case !f.LastSuccess.IsZero():
				fmt.Fprintf(w, "  collecting (%s): OK, last poll %s (%s), %d new then, %d in all\n", a.IMAP, when(f.LastSuccess), ago(f.LastSuccess), f.LastFetched, f.FetchedTotal)
			default:
				fmt.Fprintf(w, "  collecting (%s): no poll yet\n", a.IMAP)
			}
			if f.NextTry.After(time.Now()) {
				fmt.Fprintf(w, "  next poll: %s (%s): %s\n", when(f.NextTry), ago(f.NextTry), f.NextReason)
			}
			if f.Note != "" {
				fmt.Fprintf(w, "  note (%s): %s\n", when(f.NoteAt), f.Note)
			}
		}
		fmt.Fprintf(w, "  local mailbox: %s\n", plural(a.Mailbox, "message"))
		c := a.Counts
		fmt.Fprintf(w, "  queue: %d waiting (%d queued, %d deferred), %d sending, %d held; %d sent, %d bounced, %d dropped\n",
			c[store.Queued]+c[store.Deferred], c[store.Queued], c[store.Deferred], c[store.Sending], c[store.Held], c[store.Sent], c[store.Bounced], c[store.Dropped])
		for _, wr := range a.Warnings {
			if wr.LotID == 0 { // about the account (an outage, the daily summary)
				fmt.Fprintf(w, "  ! %s: %s\n", when(wr.At), wr.Text)
				continue
			}
			fmt.Fprintf(w, "  ! %s: %s (sesam-relay lots show %d)\n", when(wr.At), wr.Text, wr.LotID)
		}
		if c[store.Held] > 0 {
			fmt.Fprintf(w, "  ! %d held mail need a technician: see `sesam-relay queue`\n", c[store.Held])
		}
	}
}

func PrintQueue(w io.Writer, p QueuePage, running, all bool, flags string) {
	if !running {
		fmt.Fprintln(w, "(the daemon is not running: read from the store)")
	}
	ms := p.Messages
	if len(ms) == 0 {
		if p.Total > 0 {
			fmt.Fprintf(w, "page %d is past the last (%d): %s\n", p.Page, p.Pages, plural(p.Total, "message"))
		} else if all {
			fmt.Fprintln(w, "no mail yet")
		} else {
			fmt.Fprintln(w, "no mail waiting")
		}
		return
	}
	defer func() {
		if p.Pages > 1 {
			// Never a silent cut: say what is not shown and how to see it.
			fmt.Fprintf(w, "page %d of %d: %d of %s shown (the newest pages first)", p.Page, p.Pages, len(ms), plural(p.Total, "message"))
			if p.Page < p.Pages {
				fmt.Fprintf(w, "; older ones: sesam-relay queue%s --page %d", flags, p.Page+1)
			}
			fmt.Fprintln(w)
		}
	}()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACCOUNT\tRECIPIENT\tSUBJECT\tSIZE\tAGE\tSTATE\tTRIES\tNEXT TRY\tLAST ERROR / REASON")
	for _, m := range ms {
		next := "-"
		if m.State == store.Queued || m.State == store.Deferred {
			next = ago(m.NextAttempt)
		}
		why := m.LastError
		if m.State == store.Held {
			why = m.HoldReason
		} else if m.State == store.Sent {
			why = m.Reply
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Account, cut(strings.Join(m.To, ","), 32), cut(m.Subject, 40),
			size(uint64(m.Size)), round(time.Since(m.Received)), m.State, m.Attempts, next, cut(why, 90))
	}
	tw.Flush()
}

func PrintShow(w io.Writer, sh Show) {
	m := sh.Message
	fmt.Fprintf(w, "message %d: %s\n", m.ID, strings.ToUpper(string(m.State)))
	row(w, "account", m.Account)
	row(w, "from", m.From)
	row(w, "to", strings.Join(m.To, ", "))
	row(w, "subject", m.Subject)
	row(w, "message-id", m.MessageID)
	row(w, "size", size(uint64(m.Size)))
	row(w, "client", m.Client)
	row(w, "received", when(m.Received)+" ("+ago(m.Received)+")")
	row(w, "attempts", fmt.Sprint(m.Attempts))
	if m.State == store.Queued || m.State == store.Deferred {
		row(w, "next try", when(m.NextAttempt)+" ("+ago(m.NextAttempt)+")")
	}
	row(w, "last error", m.LastError)
	row(w, "held because", m.HoldReason)
	row(w, "provider said", m.Reply)
	if m.Uncertain() {
		fmt.Fprintf(w, "\n  The provider may already have this mail. Look in the practitioner's sent folder\n  (webmail) for the subject above: if it is there, `queue drop %d`; if not, `queue release %d --confirm`.\n", m.ID, m.ID)
	}
	if m.Duplicate() {
		fmt.Fprintf(w, "\n  The same lot (same emitter and stamp) was sent before under another Message-ID:\n  the billing software's \"retransmettre\", most likely. If the first reached the fund,\n  `queue drop %d`; if it did not (ask the fund), `queue release %d --confirm`.\n", m.ID, m.ID)
	}
	fmt.Fprintln(w, "\nhistory:")
	for _, e := range sh.Events {
		fmt.Fprintf(w, "  %s  %s\n", when(e.At), e.Text)
	}
}

// cut makes text that may come from a mail safe and short for a terminal:
// control characters become "?" (an escape sequence in a Subject could
// rewrite the technician's screen), and at most n characters are kept.
func cut(s string, n int) string {
	r := []rune(strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return '?'
		}
		return c
	}, s))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}

// row prints one "key: value" line of a detail view, if there is a value.
func row(w io.Writer, k, v string) {
	if v != "" {
		fmt.Fprintf(w, "  %-13s %s\n", k+":", cut(v, 500))
	}
}
