// Package warn watches the lot ledger and tells the practice, once each,
// about what needs a person: a lot not gone, held, missing its ARL, of
// unknown answer, rejected, bounced; invoices the fund refused; collection
// blocked at the provider and back again; and, each working day, a summary.
// Which notice is due, and its French text, are the lot rules' (sesam);
// this package reads the store, asks them, and records what it gave.
package warn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Ledger is what the warner uses of the store.
type Ledger interface {
	Lots(account string, since time.Time) ([]sesam.Lot, error)
	FetchHealth(account string) (store.FetchHealth, error)
	GiveNotice(ctx context.Context, n store.PracticeNotice) (bool, error)
	Given(account, kind string) (bool, error)
	LastGiven(account, prefix string) (string, bool, error)
	CollectedSince(account string, since time.Time) (map[sesam.Class]int, error)
	LedgerChanged() <-chan struct{}
}

// Warner checks the ledger.
type Warner struct {
	cfg *config.Config
	st  Ledger
	log *slog.Logger
}

// New returns a Warner.
func New(cfg *config.Config, st Ledger, log *slog.Logger) *Warner {
	return &Warner{cfg: cfg, st: st, log: log}
}

// Run checks at start and then regularly until ctx ends.
func (w *Warner) Run(ctx context.Context) {
	every := min(time.Minute, w.cfg.Sesam.AckDelay.D()/2, w.cfg.Sesam.UndeliveredWarning.D()/2)
	every = max(every, time.Second)
	for {
		w.Check(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		case <-w.st.LedgerChanged(): // a return came in: a rejection is worth telling now
		}
	}
}

// Settings are the lot warnings' delays and calendar, from the config.
func Settings(s config.Sesam) (sesam.WarnSettings, sesam.Calendar) {
	cal := sesam.Calendar{AlsaceMoselle: s.AlsaceMoselle}
	for _, h := range s.Holidays {
		if d, err := time.Parse("2006-01-02", h); err == nil {
			cal.Extra = append(cal.Extra, sesam.Date{Year: d.Year(), Month: d.Month(), Day: d.Day()})
		}
	}
	set := sesam.WarnSettings{AckDelay: s.AckDelay.D(), UndeliveredDelay: s.UndeliveredWarning.D(), Clock: cal}
	if s.Count == "calendar" {
		set.Clock = sesam.CalendarClock{}
	}
	return set, cal
}

// How far back notices are given: a lot older than this was told about
// when it mattered, and a rebuild or an upgrade must not flood the
// practitioner with news of last season.
const (
	lotWindow    = 45 * 24 * time.Hour
	returnWindow = 14 * 24 * time.Hour
)

// Check gives the notices due now.
func (w *Warner) Check(ctx context.Context, now time.Time) {
	set, cal := Settings(w.cfg.Sesam)
	for _, a := range w.cfg.Accounts {
		lots, col, reason, err := Lots(w.cfg, w.st, a, now.Add(-w.cfg.Retention.D()))
		if err != nil {
			w.log.Error("reading the lot ledger", "error", err.Error())
			return
		}
		nc := w.context(a, now)
		for _, l := range lots {
			st := l.Status()
			for _, d := range sesam.DueNotices(l, st, now, set, col) {
				if !fresh(l, d, now) {
					continue
				}
				t := sesam.LotNotice(d, l, st, nc)
				w.give(ctx, a, nc, store.Warning{Account: a.Name, LotID: l.ID, Kind: string(d.Kind), Text: english(d, l, st, nc.WorkingDays)}, t)
			}
		}
		w.outage(ctx, a, nc, col, reason, now, set)
		if at, ok := w.cfg.Sesam.SummaryAt(); ok {
			if key, due := sesam.SummaryDue(now, at, cal.WorkingDay); due {
				s := sesam.Summarize(lots, now)
				var t *sesam.Text
				if s.Sent > 0 || len(s.Attention) > 0 || s.Waiting+s.NotGone > 0 {
					txt := sesam.SummaryNotice(s, nc)
					t = &txt
				}
				w.giveText(ctx, a, nc, store.Warning{Account: a.Name, Kind: string(key), Text: "daily summary"}, t)
			}
		}
	}
}

// fresh says whether a due notice is about something recent enough.
func fresh(l sesam.Lot, d sesam.Due, now time.Time) bool {
	if d.Return != nil {
		return now.Sub(d.Return.Received) < returnWindow
	}
	return now.Sub(l.Submitted) < lotWindow
}

// LotReader is what Lots reads of the store.
type LotReader interface {
	Lots(account string, since time.Time) ([]sesam.Lot, error)
	FetchHealth(account string) (store.FetchHealth, error)
}

// Lots is what the lot rules read of one account: its lots since a time,
// with the config's stamp zone, and how its collection stands (with the
// last error, for the words). The warner and the control socket both read
// lots through it, so that both see the same states and delays.
func Lots(cfg *config.Config, st LotReader, a config.Account, since time.Time) ([]sesam.Lot, sesam.Collection, string, error) {
	lots, err := st.Lots(a.Name, since)
	if err != nil {
		return nil, sesam.Collection{}, "", err
	}
	for i := range lots {
		lots[i].Zone = cfg.Sesam.Zone()
	}
	if a.Upstream.IMAP.Addr == "" {
		return lots, sesam.Collection{}, "", nil
	}
	h, err := st.FetchHealth(a.Name)
	if err != nil {
		return lots, sesam.Collection{}, "", nil
	}
	return lots, sesam.Collection{Configured: true, LastSuccess: h.LastSuccess, FailingSince: h.FailingSince, Blocked: h.Blocked, Closed: h.Failure == "access closed"}, h.LastError, nil
}

// outage tells once that collection is blocked, and once that it is back.
func (w *Warner) outage(ctx context.Context, a config.Account, nc sesam.NoticeContext, col sesam.Collection, reason string, now time.Time, set sesam.WarnSettings) {
	if key, due := sesam.OutageDue(col, now, set); due {
		t := sesam.OutageNotice(col, reason, nc)
		w.give(ctx, a, nc, store.Warning{Account: a.Name, Kind: string(key), Text: "collection from the provider is failing since " + col.FailingSince.Format(time.RFC3339) + ": " + reason}, t)
		return
	}
	if !col.Configured || col.Failing() {
		return
	}
	last, ok, err := w.st.LastGiven(a.Name, string(sesam.NoticeOutage)+":")
	if err != nil || !ok {
		return
	}
	since := sesam.OutageStart(sesam.NoticeKind(last))
	rk := string(sesam.RecoveredKey(sesam.NoticeKind(last)))
	if given, err := w.st.Given(a.Name, rk); err != nil || given || !col.LastSuccess.After(since) {
		return
	}
	got, _ := w.st.CollectedSince(a.Name, since)
	arls := got[sesam.ARLPositive] + got[sesam.ARLNegative] + got[sesam.ARLUnknown]
	noemie := got[sesam.NoemiePayment] + got[sesam.NoemieReject] + got[sesam.NoemieWarning] + got[sesam.NoemieNoLot]
	other := 0
	for c, n := range got {
		if !c.IsARL() && c != sesam.NoemiePayment && c != sesam.NoemieReject && c != sesam.NoemieWarning && c != sesam.NoemieNoLot && c != store.OwnNoticeClass {
			other += n
		}
	}
	t := sesam.RecoveredNotice(since, arls, noemie, other, nc)
	w.give(ctx, a, nc, store.Warning{Account: a.Name, Kind: rk, Text: "collection from the provider works again"}, t)
}

func (w *Warner) context(a config.Account, now time.Time) sesam.NoticeContext {
	return sesam.NoticeContext{Hostname: w.cfg.Hostname, Contact: w.cfg.Sesam.Contact, Provider: providerName(a), Now: now,
		WorkingDays: w.cfg.Sesam.Count != "calendar"}
}

func (w *Warner) give(ctx context.Context, a config.Account, nc sesam.NoticeContext, wr store.Warning, t sesam.Text) {
	w.giveText(ctx, a, nc, wr, &t)
}

// giveText records a notice and, when there is a text, delivers it to the
// account's human logins and mails it to its notify addresses.
func (w *Warner) giveText(ctx context.Context, a config.Account, nc sesam.NoticeContext, wr store.Warning, t *sesam.Text) {
	n := store.PracticeNotice{Warning: wr, From: string(a.Address)}
	if t != nil {
		for _, l := range a.AllLogins() {
			n.AllLogins = append(n.AllLogins, l.Name)
		}
		n.To = a.WarnLogins(w.cfg.Sesam.WarnBillingLogin)
		n.Notify = a.NotifyAddresses()
		id := make([]byte, 12)
		rand.Read(id)
		local := hex.EncodeToString(id) + ".notice"
		n.MessageID = "<" + local + "@" + w.cfg.Hostname + ">"
		n.Mail = t.Mail(nc, strings.Join(n.Notify, ", "), local)
	}
	given, err := w.st.GiveNotice(ctx, n)
	if err != nil {
		w.log.Error("recording a notice", "account", a.Name, "lot", wr.LotID, "kind", wr.Kind, "error", err.Error())
		return
	}
	if given && t != nil {
		w.log.Warn("practitioner notified: "+wr.Text, "account", a.Name, "lot", wr.LotID, "kind", wr.Kind,
			"logins", strings.Join(n.To, ","), "mailed_to", strings.Join(n.Notify, ","))
	}
}

// providerName is the provider as the practitioner knows it: the domain
// of its IMAP or SMTP host ("imap.laposte.net" is "laposte.net").
func providerName(a config.Account) string {
	host := a.Upstream.IMAP.Host
	if host == "" {
		host = a.Upstream.SMTP.Host
	}
	if i := strings.IndexByte(host, '.'); i > 0 && strings.Count(host, ".") >= 2 {
		switch strings.ToLower(host[:i]) {
		case "imap", "imaps", "smtp", "smtps", "pop", "pop3", "mail", "mx", "auth":
			return host[i+1:]
		}
	}
	if _, domain, ok := strings.Cut(string(a.Address), "@"); ok && (host == "" || strings.HasPrefix(host, "127.") || host == "localhost") {
		return domain
	}
	return host
}

// english is the notice in the technician's words, for the log and status.
func english(d sesam.Due, l sesam.Lot, st sesam.LotStatus, working bool) string {
	lot := "lot " + l.Stamp + " (mail " + itoa(l.ID) + ")"
	switch {
	case d.Kind == sesam.NoticeUndelivered:
		return lot + " not delivered after " + Delay(d.After, working)
	case d.Kind == sesam.NoticeNoAck:
		return lot + " delivered but no acknowledgement after " + Delay(d.After, working)
	case strings.HasPrefix(string(d.Kind), string(sesam.NoticeInvoices)):
		return lot + ": the fund refused or flagged invoices (" + invoiceList(d.Return) + ")"
	}
	return lot + " " + string(st.State) + ": " + st.Why
}

func invoiceList(r *sesam.LotReturn) string {
	if r == nil {
		return ""
	}
	var parts []string
	for _, inv := range r.Facts.Invoices {
		parts = append(parts, strings.TrimLeft(inv.Number, "0")+" "+inv.Kind.String()+" "+strings.TrimSpace(inv.Code+" "+inv.Label))
	}
	return strings.Join(parts, "; ")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Delay writes a warning delay: "2 working days", "36h0m0s of working time".
func Delay(d time.Duration, working bool) string {
	day := 24 * time.Hour
	if d%day == 0 {
		n := int(d / day)
		unit := "day"
		if working {
			unit = "working day"
		}
		if n != 1 {
			unit += "s"
		}
		return fmt.Sprintf("%d %s", n, unit)
	}
	if working {
		return d.String() + " of working time"
	}
	return d.String()
}
