package sesam

import (
	"fmt"
	"strings"
	"time"
)

// The lot rules: what a lot's state is, given what the queue says of its
// mail and what came back. This is their one home; the store keeps the
// SQL, and the CLI, the warner and any page ask these functions.

// QueueState is what the relay's queue says of a lot's mail. The values
// are the store's own state names.
type QueueState string

// The queue's states.
const (
	QueueQueued   QueueState = "queued"
	QueueDeferred QueueState = "deferred"
	QueueSending  QueueState = "sending"
	QueueHeld     QueueState = "held"
	QueueDropped  QueueState = "dropped"
	QueueBounced  QueueState = "bounced"
	QueueSent     QueueState = "sent"
)

// LotState is a lot's state. The values are stable: they are the CLI's
// `--json` output and are documented in the README.
type LotState string

// The lot states, from "not yet gone" to "answered".
const (
	LotQueued        LotState = "queued"         // waiting to leave
	LotDeferred      LotState = "deferred"       // the provider did not take it yet; retried
	LotSending       LotState = "sending"        // being handed to the provider
	LotHeld          LotState = "held"           // held by the relay (guard, uncertain fate, by hand)
	LotDuplicateHeld LotState = "held-duplicate" // a probable second sending of a lot already sent
	LotDropped       LotState = "dropped"        // dropped by a technician: it never left
	LotBounced       LotState = "bounced"        // the provider refused it, or a delivery report came back
	LotDelivered     LotState = "delivered"      // the provider took it; nothing came back yet
	LotReturned      LotState = "returned"       // NOEMIE returns came back, but no ARL
	LotProbablyAcked LotState = "probably-acknowledged"
	LotAcknowledged  LotState = "acknowledged" // a positive ARL certainly this lot's: the practitioner's responsibility ends
	LotToCheck       LotState = "to-check"     // an ARL of unknown polarity, or contradicting answers: a person must look
	LotRejected      LotState = "rejected"     // a negative ARL certainly this lot's: it must be sent again
)

// LotStates lists every state, in the order above.
var LotStates = []LotState{LotQueued, LotDeferred, LotSending, LotHeld, LotDuplicateHeld, LotDropped, LotBounced,
	LotDelivered, LotReturned, LotProbablyAcked, LotAcknowledged, LotToCheck, LotRejected}

// Safe says whether the fund certainly has the lot: only a certain
// positive ARL ends the practitioner's responsibility.
func (s LotState) Safe() bool { return s == LotAcknowledged }

// Gone says whether the lot left the relay.
func (s LotState) Gone() bool {
	switch s {
	case LotDelivered, LotReturned, LotProbablyAcked, LotAcknowledged, LotToCheck, LotRejected:
		return true
	}
	return false
}

// The hold reasons' prefixes, written by the relay and read by the lot
// rules and notices to tell why a lot is held.
const (
	// DuplicateHoldPrefix: a probable second sending (the DOUBLON guard).
	DuplicateHoldPrefix = "duplicate: "
	// ClearHoldPrefix: the guard found health data in clear.
	ClearHoldPrefix = "health data in clear: "
	// UncertainHoldPrefix: a sending broke off, its fate unknown.
	UncertainHoldPrefix = "uncertain: "
)

// Lot is what the ledger holds of one lot: the facts the rules read.
type Lot struct {
	ID         int64 // the queued message's id
	Account    string
	Fund       Fund
	Emitter    string
	Stamp      string
	Invoices   int
	Test       bool
	Submitted  time.Time
	Delivered  time.Time // zero until the provider took it
	Queue      QueueState
	HoldReason string
	Returns    []LotReturn
	Zone       *time.Location // the stamps' zone; nil: Europe/Paris
}

// At is the lot's date and time, read from its stamp.
func (l Lot) At() time.Time { return StampTime(l.Stamp, l.Zone) }

// LotReturn is a return matched to a lot.
type LotReturn struct {
	MailboxID int64       `json:"mailbox_id"`
	Class     Class       `json:"class"`
	Certain   bool        `json:"certain"` // matched by Message-ID or stamp, not by a guess
	How       string      `json:"how"`     // why it is this lot's
	Received  time.Time   `json:"received"`
	Subject   string      `json:"subject"`
	Facts     ReturnFacts `json:"facts"`
}

// ReturnFacts is what a return says beyond its class, kept with the match.
type ReturnFacts struct {
	// Invoices are the invoices the return says something about.
	Invoices []InvoiceOutcome `json:"invoices,omitempty"`
	// LotRejects are rejects about the lot or the file, tied to no invoice.
	LotRejects []Reject `json:"lot_rejects,omitempty"`
	// ARL is what the ARL's payload said, cut short.
	ARL string `json:"arl,omitempty"`
}

// InvoiceOutcome is what the fund said of one invoice.
type InvoiceOutcome struct {
	Number string     `json:"number"`
	Kind   RejectKind `json:"kind"`
	Code   string     `json:"code"`
	Label  string     `json:"label"`
}

// LotStatus is a lot's state and what explains it.
type LotStatus struct {
	State LotState `json:"state"`
	// Why says in English, for the technician, which fact decided.
	Why string `json:"why"`
	// Invoice-level outcomes, apart from the lot's: a lot with one refused
	// invoice is still acknowledged.
	RejectedInvoices  []InvoiceOutcome `json:"rejected_invoices,omitempty"`
	DuplicateInvoices []InvoiceOutcome `json:"duplicate_invoices,omitempty"` // the fund already had them: do not bill again
	InvoicesToCheck   []InvoiceOutcome `json:"invoices_to_check,omitempty"`  // signals and labels the relay cannot read
	// LotRejects are NOEMIE rejects tied to no invoice: they make the lot
	// "to check".
	LotRejects []Reject `json:"lot_rejects,omitempty"`
}

// Status applies the lot rules.
//
// The queue decides until the lot has left. Then, of what came back: a
// bounce; a certain negative ARL (rejected); a certain positive ARL
// (acknowledged) unless a certain answer contradicts it; ARLs of unknown
// polarity and probable negatives make the lot "to check"; a probable
// positive alone makes it only "probably acknowledged"; NOEMIE returns
// alone make it "returned". Invoice-level outcomes never change the lot's
// state, except rejects tied to no invoice, which ask for a look.
func (l Lot) Status() LotStatus {
	var st LotStatus
	for _, r := range l.Returns {
		st.addInvoices(r)
	}
	switch l.Queue {
	case QueueQueued, QueueDeferred, QueueSending, QueueDropped:
		st.State, st.Why = LotState(l.Queue), "the queue's state"
		return st
	case QueueHeld:
		if len(l.HoldReason) >= len(DuplicateHoldPrefix) && l.HoldReason[:len(DuplicateHoldPrefix)] == DuplicateHoldPrefix {
			st.State, st.Why = LotDuplicateHeld, l.HoldReason
		} else {
			st.State, st.Why = LotHeld, l.HoldReason
		}
		return st
	case QueueBounced:
		st.State, st.Why = LotBounced, "the provider refused it"
		return st
	}
	var pos, neg, unk, probPos, probNeg, probUnk, noemie int
	var bounce *LotReturn
	for i, r := range l.Returns {
		switch {
		case r.Class == Bounce && r.Certain:
			bounce = &l.Returns[i]
		case r.Class == ARLPositive && r.Certain:
			pos++
		case r.Class == ARLNegative && r.Certain:
			neg++
		case r.Class == ARLUnknown && r.Certain:
			unk++
		case r.Class == ARLPositive:
			probPos++
		case r.Class == ARLNegative:
			probNeg++
		case r.Class == ARLUnknown:
			probUnk++
		case r.Class == NoemiePayment || r.Class == NoemieReject || r.Class == NoemieWarning:
			noemie++
		}
	}
	switch {
	case bounce != nil && pos+neg+unk > 0:
		// The fund answered a lot a report says did not reach it: a
		// person reads both before anything is sent again.
		st.State, st.Why = LotToCheck, "a delivery failure report and an ARL both name this lot"
	case bounce != nil:
		st.State, st.Why = LotBounced, "a delivery report names this lot: "+bounce.How
	case neg > 0 && pos > 0:
		st.State, st.Why = LotToCheck, "a positive and a negative ARL both name this lot"
	case neg > 0:
		st.State, st.Why = LotRejected, "a negative ARL names this lot"
	case pos > 0 && unk > 0:
		st.State, st.Why = LotToCheck, "a positive ARL and an ARL of unknown polarity both name this lot"
	case pos > 0:
		st.State, st.Why = LotAcknowledged, "a positive ARL names this lot"
	case unk > 0:
		st.State, st.Why = LotToCheck, "an ARL of unknown polarity names this lot: its meaning must be read by a person"
	case probNeg > 0:
		st.State, st.Why = LotToCheck, "a negative ARL that names no lot was matched to this one by a guess"
	case probUnk > 0:
		st.State, st.Why = LotToCheck, "an ARL of unknown polarity that names no lot was matched to this one by a guess"
	case probPos > 0:
		st.State, st.Why = LotProbablyAcked, "a positive ARL that names no lot was matched to this one by a guess: "+probableHow(l.Returns)
	case noemie > 0:
		st.State, st.Why = LotReturned, "NOEMIE returns came back, but no ARL"
	default:
		st.State, st.Why = LotDelivered, "the provider took it; no ARL yet"
	}
	if len(st.LotRejects) > 0 && (st.State == LotAcknowledged || st.State == LotProbablyAcked || st.State == LotReturned || st.State == LotDelivered) {
		st.State, st.Why = LotToCheck, fmt.Sprintf("a NOEMIE return rejects something tied to no invoice of this lot (%s %s)", st.LotRejects[0].Code, st.LotRejects[0].Label)
	}
	return st
}

func probableHow(rs []LotReturn) string {
	for _, r := range rs {
		if r.Class == ARLPositive && !r.Certain {
			return r.How
		}
	}
	return ""
}

// SortInvoices is the one rule for what is to be done with each invoice a
// fund spoke of: one outcome per invoice number (two reject lines on one
// invoice are one invoice to bill again, with both reasons), and the
// kind that forbids most wins — already had (never bill again) over
// refused (bill again, corrected) over unclear or signalled (check).
func SortInvoices(invs []InvoiceOutcome) (refused, dup, check []InvoiceOutcome) {
	rank := func(k RejectKind) int {
		switch k {
		case RejectDuplicate:
			return 3
		case RejectRefused:
			return 2
		}
		return 1
	}
	var merged []InvoiceOutcome
	at := map[string]int{}
	for _, inv := range invs {
		i, ok := at[inv.Number]
		if !ok {
			at[inv.Number] = len(merged)
			merged = append(merged, inv)
			continue
		}
		m := &merged[i]
		if inv.Code != m.Code || inv.Label != m.Label {
			m.Code, m.Label = joinOnce(m.Code, inv.Code, ", "), joinOnce(m.Label, inv.Label, " ; ")
		}
		if rank(inv.Kind) > rank(m.Kind) {
			m.Kind = inv.Kind
		}
	}
	for _, m := range merged {
		switch m.Kind {
		case RejectDuplicate:
			dup = append(dup, m)
		case RejectRefused:
			refused = append(refused, m)
		default:
			check = append(check, m)
		}
	}
	return refused, dup, check
}

func joinOnce(have, add, sep string) string {
	switch {
	case add == "" || have == add || strings.Contains(sep+have+sep, sep+add+sep):
		return have
	case have == "":
		return add
	}
	return have + sep + add
}

// addInvoices gathers the lot's invoice outcomes, a return at a time.
func (st *LotStatus) addInvoices(r LotReturn) {
	all := append(append(append(append([]InvoiceOutcome(nil), st.RejectedInvoices...), st.DuplicateInvoices...), st.InvoicesToCheck...), r.Facts.Invoices...)
	st.RejectedInvoices, st.DuplicateInvoices, st.InvoicesToCheck = SortInvoices(all)
	st.LotRejects = append(st.LotRejects, r.Facts.LotRejects...)
}
