package sesam

import (
	"fmt"
	"time"
)

// LotCandidate is a lot a return might be about, as the matcher sees it.
type LotCandidate struct {
	ID        int64
	MessageID string
	Emitter   string
	Stamp     string
	LotAt     time.Time // the stamp's time (see StampTime)
	Queue     QueueState
	// Answered lists the classes of the returns already matched to it.
	Answered []Class
}

func (c LotCandidate) answered(f func(Class) bool) bool {
	for _, a := range c.Answered {
		if f(a) {
			return true
		}
	}
	return false
}

// Match ties a return to a lot.
type Match struct {
	LotID   int64
	Certain bool
	How     string
}

// MatchReturn ties a classified return to its lot, or to none. The lot
// number is inside the fund's encryption, so matching uses what both sides
// carry. In order:
//   - certain: a delivery report naming the lot's Message-ID; a return
//     quoting the lot's stamp — whatever the lot already received: a
//     certain match is never replaced by a guess; a return quoting two
//     lots' stamps is matched to none;
//   - probable: a NOEMIE lot entity (080) whose date is the lot's date,
//     for the same emitter, on a lot with no NOEMIE return yet;
//   - probable: for an ARL that quotes no stamp, the oldest delivered lot
//     with no ARL yet (funds answer in order).
//
// Mail that is no return (unknown, provider notices), and returns with no
// electronic lot (lump sums, paper returns), are never matched. A probable
// match never makes a lot acknowledged on its own (see Lot.Status).
//
// lots must hold every lot that could match: the store picks them by
// Message-ID, by stamp, by date, and the oldest delivered lots without an
// ARL, oldest first.
func MatchReturn(in Inbound, lots []LotCandidate) (Match, bool) {
	switch in.Class {
	case Unknown, ProviderNotice, NoemieNoLot, "":
		return Match{}, false
	}
	if in.Class == Bounce && in.OrigMessageID != "" {
		for _, c := range lots {
			if c.MessageID == in.OrigMessageID {
				return Match{c.ID, true, "the report names the lot's Message-ID " + in.OrigMessageID}, true
			}
		}
	}
	switch c, ok, ambiguous := byStamp(in, lots); {
	case ambiguous:
		return Match{}, false // quotes two lots: listed apart, for a person
	case ok:
		return Match{c.ID, true, "the return quotes the lot's stamp " + c.Stamp}, true
	}
	if in.Class == Bounce {
		return Match{}, false // a report about some other mail
	}
	if in.Noemie != nil {
		for _, nl := range in.Noemie.Lots {
			for _, c := range lots {
				if c.Queue == QueueSent && !c.LotAt.IsZero() && StampDate(c.LotAt) == nl.Date &&
					(in.Noemie.Recipient == "" || in.Noemie.Recipient == c.Emitter) && !c.answered(isNoemie) {
					return Match{c.ID, false, fmt.Sprintf("NOEMIE lot %s of %s, same emitter and date as this lot", nl.Number, nl.Date)}, true
				}
			}
		}
		return Match{}, false
	}
	if in.Class.IsARL() {
		for _, c := range lots {
			if c.Queue == QueueSent && !c.answered(Class.IsARL) {
				return Match{c.ID, false, "an ARL that quotes no lot stamp, tied to the oldest delivered lot with no ARL yet"}, true
			}
		}
	}
	return Match{}, false
}

func isNoemie(c Class) bool {
	return c == NoemiePayment || c == NoemieReject || c == NoemieWarning
}

// byStamp finds the lot whose stamp the return quotes. A return that
// quotes the stamps of two lots is certainly about neither: ambiguous, it
// is matched to none (a guess must not make either safe). Two lots with
// one stamp are a lot and its second sending (after a negative ARL, or a
// DOUBLON): the answer goes to the oldest that left and has no answer of
// that kind yet, so that the second sending's ARL is the second's.
func byStamp(in Inbound, lots []LotCandidate) (c LotCandidate, found, ambiguous bool) {
	var quoted []LotCandidate
	for _, c := range lots {
		if !in.Quotes(c.Stamp) {
			continue
		}
		if len(quoted) > 0 && quoted[0].Stamp != c.Stamp {
			return LotCandidate{}, false, true
		}
		quoted = append(quoted, c)
	}
	if len(quoted) == 0 {
		return LotCandidate{}, false, false
	}
	same := sameKind(in.Class)
	for _, c := range quoted {
		if c.Queue == QueueSent && !c.answered(same) {
			return c, true, false
		}
	}
	for _, c := range quoted {
		if c.Queue == QueueSent {
			return c, true, false
		}
	}
	return quoted[0], true, false
}

// sameKind says which answers are of a return's kind: ARLs, NOEMIE
// returns, or reports.
func sameKind(c Class) func(Class) bool {
	switch {
	case c.IsARL():
		return Class.IsARL
	case isNoemie(c):
		return isNoemie
	}
	return func(a Class) bool { return a == c }
}

// StampDate is a lot's date as NOEMIE writes it (YYMMDD).
func StampDate(t time.Time) string { return t.Format("060102") }
