package control

import (
	"fmt"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/config"
	"github.com/sesam-relay/sesam-relay/relay/store"
	"github.com/sesam-relay/sesam-relay/relay/warn"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// Lots is the reply to "lots": the lots and, apart, the returns no lot
// claims (lump sums, paper returns, ARLs naming no known lot).
type Lots struct {
	Lots      []LotView         `json:"lots"`
	Unmatched []store.Unmatched `json:"unmatched"`
}

// LotView is one lot as the CLI shows it: the ledger's facts and the lot
// rules' verdict (sesam.Lot.Status), with the state names of
// sesam.LotStates.
type LotView struct {
	ID        int64     `json:"id"` // the queue id
	Account   string    `json:"account"`
	Fund      string    `json:"fund"`      // "01422"
	FundName  string    `json:"fund_name"` // "CPAM n° 422 (régime général)"
	Emitter   string    `json:"emitter"`   // the practitioner's number
	Stamp     string    `json:"stamp"`     // the lot's date, time and number
	LotAt     time.Time `json:"lot_at"`    // the stamp read in its zone
	Invoices  int       `json:"invoices"`  // as the Subject says
	Test      bool      `json:"test"`      // sent to a test fund
	Submitted time.Time `json:"submitted"` // when the billing software gave it
	Delivered time.Time `json:"delivered,omitzero"`
	Queue     string    `json:"queue_state"` // the queue's own state
	sesam.LotStatus
	Safe bool `json:"safe"` // the fund certainly has it: only "acknowledged"
	// Late says which delay ran out ("no acknowledgement after 2 working
	// days"), as the warner counts it; empty when none did.
	Late    string            `json:"late,omitempty"`
	Returns []sesam.LotReturn `json:"returns"`
}

// lots answers "lots": every account, or one, since a date.
func (h *Handler) lots(account, since string) (Lots, error) {
	var from time.Time
	if since != "" {
		var err error
		if from, err = time.ParseInLocation("2006-01-02", since, h.Config.Sesam.Zone()); err != nil {
			return Lots{}, fmt.Errorf("--since %q is not a date (write 2026-11-24)", since)
		}
	}
	if account != "" && h.Config.Account(account) == nil {
		return Lots{}, fmt.Errorf("no account %q in the config", account)
	}
	set, _ := warn.Settings(h.Config.Sesam)
	now := time.Now()
	out := Lots{Lots: []LotView{}, Unmatched: []store.Unmatched{}}
	for _, a := range h.Config.Accounts {
		if account != "" && a.Name != account {
			continue
		}
		recs, col, _, err := warn.Lots(h.Config, h.Store, a, from)
		if err != nil {
			return out, err
		}
		for _, r := range recs {
			out.Lots = append(out.Lots, lotView(r, now, set, col, h.Config.Sesam))
		}
		un, err := h.Store.UnmatchedReturns(a.Name, from, 200)
		if err != nil {
			return out, err
		}
		out.Unmatched = append(out.Unmatched, un...)
	}
	return out, nil
}

func lotView(r sesam.Lot, now time.Time, set sesam.WarnSettings, col sesam.Collection, s config.Sesam) LotView {
	st := r.Status()
	l := LotView{ID: r.ID, Account: r.Account, Fund: r.Fund.String(), FundName: r.Fund.French(), Emitter: r.Emitter, Stamp: r.Stamp,
		LotAt: r.At(), Invoices: r.Invoices, Test: r.Test, Submitted: r.Submitted, Delivered: r.Delivered, Queue: string(r.Queue),
		LotStatus: st, Safe: st.State.Safe(), Returns: r.Returns}
	if l.Returns == nil {
		l.Returns = []sesam.LotReturn{}
	}
	working := s.Count != "calendar"
	switch kind, after := late(r, st, now, set, col); kind {
	case sesam.NoticeNoAck:
		l.Late = "no acknowledgement after " + warn.Delay(after, working)
	case sesam.NoticeUndelivered:
		l.Late = "not gone after " + warn.Delay(after, working)
	}
	return l
}

// late says which delay of a lot ran out (sesam.NoticeNoAck or
// NoticeUndelivered, as the warner counts them), and after how long;
// "" when none did.
func late(r sesam.Lot, st sesam.LotStatus, now time.Time, set sesam.WarnSettings, col sesam.Collection) (sesam.NoticeKind, time.Duration) {
	var kind sesam.NoticeKind
	var after time.Duration
	for _, d := range sesam.DueNotices(r, st, now, set, col) {
		if d.Kind == sesam.NoticeNoAck || d.Kind == sesam.NoticeUndelivered {
			kind, after = d.Kind, d.After
		}
	}
	return kind, after
}

// LotCounts is one account's lots since a date, counted by state
// (sesam.LotStates) and by delay run out: what /metrics exports.
type LotCounts struct {
	States      map[sesam.LotState]int
	NoAck       int // sent, no acknowledgement after the delay
	Undelivered int // not gone after the delay
}

// CountLots counts each account's lots since a date, by the lot rules.
func (h *Handler) CountLots(since time.Time) (map[string]LotCounts, error) {
	set, _ := warn.Settings(h.Config.Sesam)
	now := time.Now()
	out := map[string]LotCounts{}
	for _, a := range h.Config.Accounts {
		recs, col, _, err := warn.Lots(h.Config, h.Store, a, since)
		if err != nil {
			return out, err
		}
		c := LotCounts{States: map[sesam.LotState]int{}}
		for _, r := range recs {
			st := r.Status()
			c.States[st.State]++
			switch kind, _ := late(r, st, now, set, col); kind {
			case sesam.NoticeNoAck:
				c.NoAck++
			case sesam.NoticeUndelivered:
				c.Undelivered++
			}
		}
		out[a.Name] = c
	}
	return out, nil
}
