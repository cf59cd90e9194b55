package sesam

import (
	"bytes"
	"fmt"
	"mime"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
)

// Class is what an inbound mail is, as far as the relay can tell.
type Class string

// The classes. Unknown is a class too: classification never blocks, delays
// or alters delivery; a mail nobody recognises is served like any other.
const (
	ARLPositive    Class = "arl-positive"
	ARLNegative    Class = "arl-negative"
	NoemiePayment  Class = "noemie-payment"
	NoemieReject   Class = "noemie-reject"
	NoemieWarning  Class = "noemie-warning"
	Bounce         Class = "bounce"
	ProviderNotice Class = "provider-notice"
	Unknown        Class = "unknown"
)

// Classes lists the classes a rule may name.
var Classes = []Class{ARLPositive, ARLNegative, NoemiePayment, NoemieReject, NoemieWarning, Bounce, ProviderNotice, Unknown}

// Rule says: when Field of a mail matches Pattern, the mail is Class. Field
// is "subject", "from", or "content-description" (of any MIME part).
type Rule struct {
	Field   string
	Pattern *regexp.Regexp
	Class   Class
}

// DefaultRules are guesses (DOMAIN.md: how ARL and return mails are labelled
// was not found), tried after the config's own rules. Negative before
// positive: "ARL négatif" must not read as an ARL.
var DefaultRules = []Rule{
	{"subject", regexp.MustCompile(`(?i)\bARL\b.*\b(n[ée]gati|rejet|refus)`), ARLNegative},
	{"content-description", regexp.MustCompile(`(?i)\bARL\b.*\b(n[ée]gati|rejet|refus)`), ARLNegative},
	{"subject", regexp.MustCompile(`(?i)\bARL\b|accus[ée] de r[ée]ception logique`), ARLPositive},
	{"content-description", regexp.MustCompile(`(?i)\bARL\b`), ARLPositive},
	{"from", regexp.MustCompile(`(?i)@(laposte\.net|orange\.fr|wanadoo\.fr|free\.fr|sfr\.fr)\b`), ProviderNotice},
}

// Inbound is the verdict on a mail.
type Inbound struct {
	Class   Class
	Why     string   // which rule or content decided
	Noemie  *Noemie  // the first NOEMIE file found, if any
	Rejects []Reject // reject or warning reasons, for the notice
	// For a bounce: the Message-ID and recipients of the mail it is about.
	OrigMessageID string
	OrigRcpts     []string
}

// Classify decides what an inbound mail is: a delivery report is a bounce;
// then the rules (config first, then defaults); then the NOEMIE content.
// Its cost is bounded (EDIBudget, the MIME walk's bounds): a mail past them
// is Unknown, with the reason. It never panics: a classifier bug makes the
// mail Unknown, not the relay crash on every poll.
func Classify(raw []byte, rules []Rule) (in Inbound) {
	defer func() {
		if r := recover(); r != nil {
			in = Inbound{Class: Unknown, Why: fmt.Sprintf("the classifier failed on this message (%v); stored without reading it", r)}
		}
	}()
	h := ReadHeaders(raw)
	ctype, params, _ := mime.ParseMediaType(headerValue(raw, "Content-Type"))
	if strings.EqualFold(ctype, "multipart/report") && strings.EqualFold(params["report-type"], "delivery-status") {
		in := Inbound{Class: Bounce, Why: "a delivery status report"}
		in.OrigMessageID, in.OrigRcpts = dsnOriginal(raw)
		return in
	}
	var descs []string
	walk(raw, func(_ *message.Entity, _, desc string, _ int) bool {
		if desc != "" {
			descs = append(descs, desc)
		}
		return true
	})
	for _, r := range append(append([]Rule{}, rules...), DefaultRules...) {
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
				in := Inbound{Class: r.Class, Why: r.Field + " matches " + r.Pattern.String()}
				if _, err := in.addNoemie(raw); err != nil {
					return Inbound{Class: Unknown, Why: err.Error()}
				}
				return in
			}
		}
	}
	in = Inbound{Class: Unknown}
	found, err := in.addNoemie(raw)
	if err != nil {
		return Inbound{Class: Unknown, Why: err.Error()}
	}
	if found {
		switch {
		case hasReject(in.Rejects, "294"):
			in.Class, in.Why = NoemieReject, "NOEMIE reject lines (294)"
		case len(in.Rejects) > 0:
			in.Class, in.Why = NoemieWarning, "NOEMIE rejects or warnings (290)"
		default:
			in.Class, in.Why = NoemiePayment, "a NOEMIE return without rejects"
		}
	}
	return in
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
	msgIDRe = regexp.MustCompile(`(?im)^Message-ID:\s*(<[^>\r\n]+>)`)
	rcptRe  = regexp.MustCompile(`(?im)^(?:Original|Final)-Recipient:\s*rfc822;\s*<?([^>\s]+)>?`)
)

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
