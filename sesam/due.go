package sesam

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// NoticeKind names a notice the relay gives the practitioner. Lot notices
// are given once per lot and kind; the kind's string is that key.
type NoticeKind string

// The lot notices.
const (
	NoticeUndelivered NoticeKind = "undelivered" // not gone after UndeliveredDelay
	NoticeHeld        NoticeKind = "held"        // held by the relay: it will not leave alone
	NoticeDuplicate   NoticeKind = "held-duplicate"
	NoticeNoAck       NoticeKind = "no-ack"    // no ARL after AckDelay, while collection works
	NoticeRejected    NoticeKind = "rejected"  // a negative ARL
	NoticeToCheck     NoticeKind = "to-check"  // an ARL of unknown polarity, contradicting answers
	NoticeBounced     NoticeKind = "bounced"   // refused by the provider
	NoticeInvoices    NoticeKind = "invoices:" // + the return's mailbox id: rejected invoices
)

// The account notices.
const (
	NoticeOutage    NoticeKind = "outage"    // collection blocked: ARLs wait at the provider
	NoticeRecovered NoticeKind = "recovered" // collection works again
	NoticeSummary   NoticeKind = "summary"   // the day's lots
)

// WorkingClock counts time on working days only (see Calendar).
type WorkingClock interface {
	// AddWorking is the instant when d of working time has passed since from.
	AddWorking(from time.Time, d time.Duration) time.Time
}

// CalendarClock counts every hour: the clock of `count = "calendar"`.
type CalendarClock struct{}

// AddWorking adds d.
func (CalendarClock) AddWorking(from time.Time, d time.Duration) time.Time { return from.Add(d) }

// WarnSettings are the delays of the lot warnings.
type WarnSettings struct {
	AckDelay         time.Duration // working time from delivery to a missing-ARL warning
	UndeliveredDelay time.Duration // working time from submission to a not-gone warning
	Clock            WorkingClock  // nil: every hour counts
}

func (s WarnSettings) after(from time.Time, d time.Duration) time.Time {
	if s.Clock == nil {
		return from.Add(d)
	}
	return s.Clock.AddWorking(from, d)
}

// Collection is how an account's collection of returns stands.
type Collection struct {
	Configured   bool      // the account collects from its provider at all
	LastSuccess  time.Time // the last poll that worked
	FailingSince time.Time // zero while it works
	Blocked      bool      // the provider closed access or refused the password
	// Closed: blocked because the provider shut the service (not a refused
	// password). Told only after ClosedGrace: the relay tries again at each
	// poll, and a closure of a few minutes is no news for the practitioner.
	Closed bool
}

// ClosedGrace is how long a closed access lasts before the practitioner is
// told: a refused password is told at once (they must act), a closure
// once it is more than a blip.
const ClosedGrace = 10 * time.Minute

// Failing says whether collection is failing now.
func (c Collection) Failing() bool { return !c.FailingSince.IsZero() }

// Due is a notice that is due about a lot.
type Due struct {
	Kind   NoticeKind
	After  time.Duration // the delay that ran out, for the wording
	Return *LotReturn    // the return a notice is about (invoices, rejection)
}

// DueNotices says which notices a lot calls for now. The caller gives each
// once (per lot and Kind).
//
// A missing ARL is warned about only when the relay looked and found none:
// the delay has run out AND a collection succeeded after it ran out. While
// collection fails, the outage notice (OutageDue) speaks for every lot
// instead: the ARLs are waiting at the provider, not missing.
func DueNotices(l Lot, st LotStatus, now time.Time, set WarnSettings, col Collection) []Due {
	var out []Due
	switch st.State {
	case LotQueued, LotDeferred, LotSending:
		if !now.Before(set.after(l.Submitted, set.UndeliveredDelay)) {
			out = append(out, Due{Kind: NoticeUndelivered, After: set.UndeliveredDelay})
		}
	case LotHeld:
		out = append(out, Due{Kind: NoticeHeld})
	case LotDuplicateHeld:
		out = append(out, Due{Kind: NoticeDuplicate})
	case LotBounced:
		out = append(out, Due{Kind: NoticeBounced, Return: firstReturn(l, func(r LotReturn) bool { return r.Class == Bounce })})
	case LotRejected:
		out = append(out, Due{Kind: NoticeRejected, Return: firstReturn(l, func(r LotReturn) bool { return r.Class == ARLNegative && r.Certain })})
	case LotToCheck:
		out = append(out, Due{Kind: NoticeToCheck, Return: firstReturn(l, func(r LotReturn) bool { return r.Class.IsARL() })})
	case LotDelivered, LotReturned, LotProbablyAcked:
		due := set.after(l.Delivered, set.AckDelay)
		if col.Configured && !l.Delivered.IsZero() && !now.Before(due) && !col.Failing() && !col.LastSuccess.Before(due) {
			out = append(out, Due{Kind: NoticeNoAck, After: set.AckDelay})
		}
	}
	for i := range l.Returns {
		r := &l.Returns[i]
		if len(r.Facts.Invoices) > 0 {
			out = append(out, Due{Kind: NoticeInvoices + NoticeKind(strconv.FormatInt(r.MailboxID, 10)), Return: r})
		}
	}
	return out
}

func firstReturn(l Lot, f func(LotReturn) bool) *LotReturn {
	for i := range l.Returns {
		if f(l.Returns[i]) {
			return &l.Returns[i]
		}
	}
	return nil
}

// OutageDue says whether collection has failed long enough to tell the
// practitioner, and under which key (one notice per outage): at once when
// the provider refused the password, after ClosedGrace when it closed
// access, after UndeliveredDelay of working time for any other failure.
func OutageDue(col Collection, now time.Time, set WarnSettings) (NoticeKind, bool) {
	if !col.Configured || !col.Failing() {
		return "", false
	}
	switch {
	case col.Blocked && col.Closed && now.Before(col.FailingSince.Add(ClosedGrace)):
		return "", false
	case !col.Blocked && now.Before(set.after(col.FailingSince, set.UndeliveredDelay)):
		return "", false
	}
	return NoticeOutage + NoticeKind(":"+strconv.FormatInt(col.FailingSince.UnixMilli(), 10)), true
}

// RecoveredKey is the key of the "collection is back" notice that follows
// an outage notice.
func RecoveredKey(outage NoticeKind) NoticeKind {
	return NoticeRecovered + NoticeKind(strings.TrimPrefix(string(outage), string(NoticeOutage)))
}

// OutageStart reads back the start of an outage from its notice key.
func OutageStart(outage NoticeKind) time.Time {
	ms, err := strconv.ParseInt(strings.TrimPrefix(string(outage), string(NoticeOutage)+":"), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Summary is the day's count of an account's lots, for the daily notice.
type Summary struct {
	Day          time.Time // any instant of the day (Europe/Paris)
	Sent         int       // lots that left during the day
	Acknowledged int       // of all lots still in view: certainly acknowledged during the day
	ToRebill     int       // invoices the fund refused, reported during the day
	Waiting      int       // lots gone with no certain answer yet (any day)
	NotGone      int       // lots not gone yet (any day)
	Attention    []LotLine // lots that need a person
}

// LotLine is one lot in a summary.
type LotLine struct {
	Record Lot
	Status LotStatus
}

// Summarize counts an account's lots for the day that holds day.
func Summarize(lots []Lot, day time.Time) Summary {
	loc := paris()
	d := day.In(loc)
	start := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	end := start.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.Before(start) && t.Before(end) }
	s := Summary{Day: start}
	for _, l := range lots {
		st := l.Status()
		if in(l.Delivered) {
			s.Sent++
		}
		for _, r := range l.Returns {
			if in(r.Received) {
				if r.Class == ARLPositive && r.Certain && st.State == LotAcknowledged {
					s.Acknowledged++
				}
				for _, inv := range r.Facts.Invoices {
					if inv.Kind == RejectRefused {
						s.ToRebill++
					}
				}
			}
		}
		switch {
		case st.State == LotDelivered || st.State == LotReturned || st.State == LotProbablyAcked:
			s.Waiting++
		case !st.State.Gone() && st.State != LotDropped && st.State != LotBounced:
			s.NotGone++
		}
		switch st.State {
		case LotHeld, LotDuplicateHeld, LotBounced, LotRejected, LotToCheck:
			s.Attention = append(s.Attention, LotLine{l, st})
		}
	}
	sort.Slice(s.Attention, func(i, j int) bool { return s.Attention[i].Record.ID < s.Attention[j].Record.ID })
	return s
}

// SummaryDue says whether the day's summary is due: at the configured time
// of day (Europe/Paris) on a working day, once per day (the key).
func SummaryDue(now time.Time, at time.Duration, isWorking func(time.Time) bool) (NoticeKind, bool) {
	d := now.In(paris())
	start := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, paris())
	if now.Before(start.Add(at)) || (isWorking != nil && !isWorking(now)) {
		return "", false
	}
	return NoticeSummary + NoticeKind(":"+start.Format("2006-01-02")), true
}
