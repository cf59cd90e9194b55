package sesam

import (
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Polarity is what an ARL says of its lot, as far as the relay can tell.
type Polarity int

// The polarities. None is "says nothing either way": the safe reading of
// it is never Positive (DOMAIN.md: an ARL whose payload or Subject does not
// say positive is of unknown polarity).
const (
	PolarityNone Polarity = iota
	PolarityPositive
	PolarityNegative
)

func (p Polarity) String() string {
	return [...]string{"says nothing", "positive", "negative"}[p]
}

// The markers are read on text folded to upper case without accents, so
// that "négatif", "NEGATIF" and "Négatif" are one word. Negative markers
// are looked for first and win: "non conforme" holds "conforme".
var (
	arlWord     = regexp.MustCompile(`\bARL\b|ACCUSE DE RECEPTION LOGIQUE`)
	negativeARL = regexp.MustCompile(`\b(NEGATIF|NEGATIVE|REJET|REJETE|REJETEE|REFUS|REFUSE|REFUSEE|NON CONFORME|NON CONFORMITE|KO|ERREUR|ANOMALIE|INVALIDE|INVERIFIABLE|ECHEC|NON RECEVABLE|IRRECEVABLE|NON PRIS EN COMPTE)\b`)
	positiveARL = regexp.MustCompile(`\b(POSITIF|POSITIVE|CONFORME|ACCEPTE|ACCEPTEE|RECEVABLE|OK)\b`)
)

// fold upper-cases s and strips its accents.
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// polarityOf reads one text: a negative marker anywhere makes it negative;
// otherwise a positive marker makes it positive.
func polarityOf(text string) Polarity {
	f := fold(text)
	switch {
	case negativeARL.MatchString(f):
		return PolarityNegative
	case positiveARL.MatchString(f):
		return PolarityPositive
	}
	return PolarityNone
}

// looksLikeARL says whether a Subject or part description names an ARL.
func looksLikeARL(text string) bool { return arlWord.MatchString(fold(text)) }

// ARLEvidence is what an ARL's Subject and EDI payload each say.
type ARLEvidence struct {
	Subject    Polarity
	Payload    Polarity // PolarityNone when there is no EDI payload, or it says nothing
	HasPayload bool
	// PayloadText is the payload's first line that carries a marker, cut
	// short, for the technician (an ARL carries no patient data).
	PayloadText string
	stamps      []string // quoted in the payload
}

// Verdict turns the evidence into a class, failing closed: negative
// evidence anywhere makes the ARL negative; it is positive only when the
// Subject AND the payload say positive; anything else — silence,
// contradiction, no payload — is an ARL of unknown polarity.
func (e ARLEvidence) Verdict() (Class, string) {
	switch {
	case e.Subject == PolarityNegative && e.Payload == PolarityPositive,
		e.Subject == PolarityPositive && e.Payload == PolarityNegative:
		return ARLUnknown, "an ARL whose Subject and payload contradict each other"
	case e.Subject == PolarityNegative || e.Payload == PolarityNegative:
		return ARLNegative, "an ARL whose " + e.where(PolarityNegative) + " says negative"
	case e.Subject == PolarityPositive && e.Payload == PolarityPositive:
		return ARLPositive, "an ARL whose Subject and payload both say positive"
	case !e.HasPayload:
		return ARLUnknown, "an ARL with no EDI payload to confirm its polarity (Subject " + e.Subject.String() + ")"
	}
	return ARLUnknown, "an ARL whose polarity is not stated in both Subject and payload (Subject " + e.Subject.String() + ", payload " + e.Payload.String() + ")"
}

func (e ARLEvidence) where(p Polarity) string {
	switch {
	case e.Subject == p && e.Payload == p:
		return "Subject and payload"
	case e.Subject == p:
		return "Subject"
	}
	return "payload"
}

// readARL gathers the evidence of a mail already known to be an ARL. The
// payload is read through EachEDIPayload, within its budget.
func readARL(subject string, raw []byte) (ARLEvidence, error) {
	e := ARLEvidence{Subject: polarityOf(subject)}
	err := EachEDIPayload(raw, func(p Payload) bool {
		e.HasPayload = true
		if p.Err != nil {
			return true
		}
		e.stamps = appendStamps(e.stamps, p.Data)
		for _, line := range strings.Split(string(p.Data[:min(len(p.Data), 64<<10)]), "\n") {
			switch pol := polarityOf(line); {
			case pol == PolarityNegative:
				e.Payload, e.PayloadText = pol, cutText(line, 120)
				return false // nothing outweighs a negative
			case pol == PolarityPositive && e.Payload == PolarityNone:
				e.Payload, e.PayloadText = pol, cutText(line, 120)
			}
		}
		return true
	})
	return e, err
}

func cutText(s string, n int) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
