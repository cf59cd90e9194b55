package sesam

import (
	"bytes"
	"fmt"
	"mime"
	"regexp"
	"slices"
	"strings"

	"github.com/emersion/go-message"
)

// Class is what an inbound mail is, as far as the relay can tell.
type Class string

// The classes. Unknown is a class too: classification never blocks, delays
// or alters delivery; a mail nobody recognises is served like any other.
// ARLUnknown is an ARL whose polarity the relay could not establish: it is
// never read as an acknowledgement (fail closed).
const (
	ARLPositive    Class = "arl-positive"
	ARLNegative    Class = "arl-negative"
	ARLUnknown     Class = "arl-unknown"
	NoemiePayment  Class = "noemie-payment"
	NoemieReject   Class = "noemie-reject"
	NoemieWarning  Class = "noemie-warning"
	NoemieNoLot    Class = "noemie-no-lot" // a lump-sum payment or a paper return: no electronic lot
	Bounce         Class = "bounce"
	ProviderNotice Class = "provider-notice"
	Unknown        Class = "unknown"
)

// Classes lists the classes a rule may name.
var Classes = []Class{ARLPositive, ARLNegative, ARLUnknown, NoemiePayment, NoemieReject, NoemieWarning, NoemieNoLot, Bounce, ProviderNotice, Unknown}

// IsARL says whether a class is an acknowledgement, of any polarity.
func (c Class) IsARL() bool { return c == ARLPositive || c == ARLNegative || c == ARLUnknown }

// RulesVersion names this version's classification and matching rules.
// Raise it whenever they change what a stored mail means: at its next
// start the relay rebuilds the ledger once with the new rules.
const RulesVersion = 2

// Rule says: when Field of a mail matches Pattern, the mail is Class. Field
// is "subject", "from", or "content-description" (of any MIME part).
type Rule struct {
	Field   string
	Pattern *regexp.Regexp
	Class   Class
}

// DefaultRules are tried after the config's own rules and after the
// built-in ARL reading (see readARL): how funds label their mail was not
// found (DOMAIN.md), so no default rule decides an ARL's polarity.
var DefaultRules = []Rule{
	{"from", regexp.MustCompile(`(?i)@(laposte\.net|orange\.fr|wanadoo\.fr|free\.fr|sfr\.fr)\b`), ProviderNotice},
}

// Inbound is the verdict on a mail.
type Inbound struct {
	Class   Class
	Why     string   // which rule or content decided
	Noemie  *Noemie  // the first NOEMIE file found, if any
	Rejects []Reject // reject or warning reasons, for the notice
	ARL     *ARLEvidence
	// Stamps are the lot stamps (runs of 14 to 19 digits) the mail quotes,
	// in its header, text or EDI payload: a certain tie to a lot.
	Stamps []string
	// For a bounce: the Message-ID and recipients of the mail it is about.
	OrigMessageID string
	OrigRcpts     []string
}

// Classify decides what an inbound mail is: a delivery report is a bounce;
// then the config's rules; then an ARL's polarity from its Subject and
// payload; then the default rules; then the NOEMIE content.
// Its cost is bounded (EDIBudget, the MIME walk's bounds): a mail past them
// is Unknown, with the reason. It never panics: a classifier bug makes the
// mail Unknown, not the relay crash on every poll.
func Classify(raw []byte, rules []Rule) (in Inbound) {
	defer func() {
		if r := recover(); r != nil {
			in = Inbound{Class: Unknown, Why: fmt.Sprintf("the classifier failed on this message (%v); stored without reading it", r)}
		}
	}()
	in = classify(raw, rules)
	if in.Class == Bounce {
		// A report returns some mail's text: it is about a lot only where
		// it quotes a lot's Subject (IR/emitter/stamp/n), not wherever a
		// stamp appears (the relay's own notice quotes stamps too).
		in.Stamps = subjectStamps(raw)
		return in
	}
	in.Stamps = quotedStamps(raw, in.Stamps)
	return in
}

func classify(raw []byte, rules []Rule) Inbound {
	h := ReadHeaders(raw)
	ctype, params, _ := mime.ParseMediaType(headerValue(raw, "Content-Type"))
	if strings.EqualFold(ctype, "multipart/report") && strings.EqualFold(params["report-type"], "delivery-status") {
		in := Inbound{Class: Bounce, Why: "a delivery status report"}
		in.OrigMessageID, in.OrigRcpts = dsnOriginal(raw)
		if acts := dsnActions(raw); len(acts) > 0 && !slices.Contains(acts, "failed") {
			// "delayed", "delivered", "relayed", "expanded": news, not a
			// failure; a lot is never "not sent" on a delay report.
			in.Class, in.Why = ProviderNotice, "a delivery status report that says "+strings.Join(acts, ", ")+", not failed"
		}
		return in
	}
	var descs []string
	walk(raw, func(_ *message.Entity, _, desc string, _ int) bool {
		if desc != "" {
			descs = append(descs, desc)
		}
		return true
	})
	if r, ok := firstRule(rules, h, descs); ok {
		in := Inbound{Class: r.Class, Why: r.Field + " matches " + r.Pattern.String()}
		if r.Class.IsARL() {
			return in.withARL(h.Subject, raw, true)
		}
		if _, err := in.addNoemie(raw); err != nil {
			return Inbound{Class: Unknown, Why: err.Error()}
		}
		return in
	}
	if looksLikeARL(h.Subject) || anyARL(descs) {
		return Inbound{}.withARL(h.Subject, raw, false)
	}
	if r, ok := firstRule(DefaultRules, h, descs); ok {
		return Inbound{Class: r.Class, Why: r.Field + " matches " + r.Pattern.String()}
	}
	in := Inbound{Class: Unknown}
	found, err := in.addNoemie(raw)
	if err != nil {
		return Inbound{Class: Unknown, Why: err.Error()}
	}
	if found {
		in.Class, in.Why = noemieClass(*in.Noemie)
	}
	return in
}

// withARL reads an ARL's evidence and decides its class. ruled: a config
// rule named the class; a rule may say which mails are ARLs and even that
// they are positive, but never against negative evidence.
func (in Inbound) withARL(subject string, raw []byte, ruled bool) Inbound {
	ev, err := readARL(subject, raw)
	in.ARL = &ev
	for _, s := range ev.stamps {
		in.Stamps = append(in.Stamps, s)
	}
	if err != nil {
		in.Class, in.Why = ARLUnknown, "an ARL whose payload could not be read ("+err.Error()+")"
		return in
	}
	if ruled {
		if in.Class == ARLPositive && (ev.Subject == PolarityNegative || ev.Payload == PolarityNegative) {
			in.Class, in.Why = ARLUnknown, in.Why+", but its "+ev.where(PolarityNegative)+" says negative"
		}
		return in
	}
	in.Class, in.Why = ev.Verdict()
	return in
}

func anyARL(descs []string) bool {
	for _, d := range descs {
		if looksLikeARL(d) {
			return true
		}
	}
	return false
}

func firstRule(rules []Rule, h Headers, descs []string) (Rule, bool) {
	for _, r := range rules {
		var vals []string
		switch r.Field {
		case "subject":
			vals = []string{h.Subject}
		case "from":
			vals = []string{h.From}
		case "content-description":
			vals = descs
		}
		for _, v := range vals {
			if r.Pattern.MatchString(v) {
				return r, true
			}
		}
	}
	return Rule{}, false
}

// noemieClass names a NOEMIE return by what it holds.
func noemieClass(n Noemie) (Class, string) {
	if n.LotLess() {
		return NoemieNoLot, "a NOEMIE return of no electronic lot (paper return or lump-sum payment)"
	}
	for _, r := range n.Rejects {
		if r.Kind == RejectRefused || r.Kind == RejectDuplicate {
			return NoemieReject, "NOEMIE rejects (" + r.Entity + " " + r.Kind.String() + ")"
		}
	}
	if len(n.Rejects) > 0 {
		return NoemieWarning, "NOEMIE warnings or rejects the relay cannot read (290)"
	}
	return NoemiePayment, "a NOEMIE return without rejects"
}

// addNoemie parses the first EDI payload that reads as NOEMIE, and reads no
// further. The error is the message going over budget before one did.
func (in *Inbound) addNoemie(raw []byte) (bool, error) {
	found := false
	err := EachEDIPayload(raw, func(p Payload) bool {
		if p.Err != nil {
			return true
		}
		if n, err := ParseNoemie(p.Data); err == nil {
			in.Noemie, in.Rejects, found = &n, n.Rejects, true
			in.Stamps = appendStamps(in.Stamps, p.Data)
			return false
		}
		return true
	})
	if found {
		return true, nil
	}
	return false, err
}

func hasReject(rs []Reject, entity string) bool {
	for _, r := range rs {
		if r.Entity == entity {
			return true
		}
	}
	return false
}

// headerValue reads one top-level header field, unfolded.
func headerValue(raw []byte, name string) string {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = min(len(raw), 256<<10)
	}
	var val string
	in := false
	for _, line := range strings.Split(string(raw[:end]), "\n") {
		line = strings.TrimRight(line, "\r")
		if in && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			val += " " + strings.TrimSpace(line)
			continue
		}
		in = false
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) && val == "" {
			val, in = strings.TrimSpace(v), true
		}
	}
	return val
}

var (
	actionRe = regexp.MustCompile(`(?im)^Action:[ \t]*([a-z]+)`)
	msgIDRe  = regexp.MustCompile(`(?im)^Message-ID:\s*(<[^>\r\n]+>)`)
	rcptRe   = regexp.MustCompile(`(?im)^(?:Original|Final)-Recipient:\s*rfc822;\s*<?([^>\s]+)>?`)
)

// dsnActions lists the distinct Action fields of a delivery report
// (RFC 3464), lower-cased.
func dsnActions(raw []byte) []string {
	var acts []string
	for _, m := range actionRe.FindAllSubmatch(raw[:min(len(raw), 1<<20)], 50) {
		if a := strings.ToLower(string(m[1])); !slices.Contains(acts, a) {
			acts = append(acts, a)
		}
	}
	return acts
}

// dsnOriginal finds, in a delivery report, the original Message-ID (in its
// returned headers) and the recipients it is about.
func dsnOriginal(raw []byte) (string, []string) {
	body := raw
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		body = raw[i:] // past our own Message-ID
	}
	var id string
	if m := msgIDRe.FindSubmatch(body); m != nil {
		id = string(m[1])
	}
	var rcpts []string
	seen := map[string]bool{}
	for _, m := range rcptRe.FindAllSubmatch(body, 20) {
		if r := string(m[1]); !seen[r] {
			seen[r] = true
			rcpts = append(rcpts, r)
		}
	}
	return id, rcpts
}
