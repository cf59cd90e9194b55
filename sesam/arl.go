package sesam

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

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
	PolarityMixed // says positive and negative both
)

func (p Polarity) String() string {
	return [...]string{"says nothing", "positive", "negative", "says both"}[p]
}

// The markers are read as words, on text folded to upper case without
// accents ("négatif", "NEGATIF" and "Négatif" are one word), every other
// character a separator ("NON-CONFORME", "NON_CONFORME" and "non\u00a0conforme"
// are "NON CONFORME"), words running on across lines. A word counts with
// its plural and feminine ("REJETEES", "REJETS"). A word is negated by
// "NON", "PAS", "AUCUN(E)", "SANS", "NI", "JAMAIS" or a zero in the two words
// before it, fillers ("N'EST PAS", "PAS D'") aside (see line):
//   - a positive word negated ("NON CONFORME", "PAS ACCEPTE") is negative,
//     and so are words that say nothing alone ("NON PRIS EN COMPTE",
//     "CONFORMITE", "NON TRAITE");
//   - a negative word negated ("AUCUNE ANOMALIE", "0 ERREUR", "0 FACTURE
//     REJETEE") says nothing, never positive.
//
// A text with positive and negative words both ("LOT ACCEPTE - FACTURE
// 417 REJETEE") is mixed: the ARL's meaning is for a person to read.
var (
	arlWord = regexp.MustCompile(`\bARL\b|ACCUSE DE RECEPTION LOGIQUE`)

	positiveWords = words("POSITIF", "POSITIVE", "CONFORME", "ACCEPTE", "RECEVABLE", "OK")
	negativeWords = words("NEGATIF", "NEGATIVE", "REJET", "REJETE", "REFUS", "REFUSE", "NONCONFORME", "NONCONFORMITE",
		"KO", "NOK", "ERREUR", "ANOMALIE", "INVALIDE", "INVERIFIABLE", "ECHEC", "ECHOUE", "IRRECEVABLE")
	// Words that say nothing alone, but negative when negated.
	negatableWords = words("CONFORMITE", "PRIS", "TRAITE", "VALIDE", "VERIFIE", "RECU", "INTEGRE", "ACCEPTATION")
	negators       = words("NON", "PAS", "AUCUN", "AUCUNE", "SANS", "NI", "JAMAIS", "ZERO")
	fillers        = map[string]bool{"D": true, "DE": true, "DU": true, "DES": true, "L": true, "LE": true, "LA": true, "LES": true,
		"N": true, "EST": true, "ETE": true, "A": true, "ETAIT": true, "SONT": true, "ONT": true, "ETRE": true, "Y": true, "EU": true}
)

// words is a set of words with their plural and feminine forms.
func words(roots ...string) map[string]bool {
	m := map[string]bool{}
	for _, r := range roots {
		for _, suf := range []string{"", "S", "E", "ES", "EE", "EES"} {
			m[r+suf] = true
		}
	}
	return m
}

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

// polarityReader reads a text word by word, remembering the two words
// before (for negation) and the first line that carried each polarity.
type polarityReader struct {
	back         [2]string // the last two words that are not fillers, newest first
	pos, neg     bool
	posAt, negAt string // the lines that said it first
}

// line reads one more line of the text. A negative word is negated only
// by the word just before it ("AUCUNE ANOMALIE", not "ERREURS : 0 - LOT
// REJETE"); a positive one by either of the two before ("NON ENCORE
// ACCEPTE"), but not by a zero. Only the last word of the line before
// carries over.
func (r *polarityReader) line(text string) {
	r.back[1] = ""
	f := fold(text)
	for _, w := range strings.FieldsFunc(f, func(c rune) bool { return !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') }) {
		switch {
		case negativeWords[w]:
			if !negators[r.back[0]] && !isZero(r.back[0]) {
				r.say(false, text)
			}
		case (positiveWords[w] || negatableWords[w]) && (negators[r.back[0]] || negators[r.back[1]]):
			r.say(false, text)
		case positiveWords[w]:
			r.say(true, text)
		}
		if !fillers[w] {
			r.back[1], r.back[0] = r.back[0], w
		}
	}
}

func (r *polarityReader) say(positive bool, line string) {
	if positive && !r.pos {
		r.pos, r.posAt = true, line
	}
	if !positive && !r.neg {
		r.neg, r.negAt = true, line
	}
}

// result is the text's polarity, and the line that says it.
func (r *polarityReader) result() (Polarity, string) {
	switch {
	case r.pos && r.neg:
		return PolarityMixed, r.negAt
	case r.neg:
		return PolarityNegative, r.negAt
	case r.pos:
		return PolarityPositive, r.posAt
	}
	return PolarityNone, ""
}

// isZero: "0", "00", "000" (not a lot number such as "00000").
func isZero(w string) bool { return w != "" && len(w) <= 3 && strings.Trim(w, "0") == "" }

// polarityOf reads one text (a Subject).
func polarityOf(text string) Polarity {
	var r polarityReader
	r.line(text)
	p, _ := r.result()
	return p
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
	case e.Subject == PolarityMixed || e.Payload == PolarityMixed:
		return ARLUnknown, "an ARL whose " + e.where(PolarityMixed) + " says positive and negative both"
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
		var r polarityReader
		for _, line := range strings.Split(textOf(p.Data), "\n") {
			r.line(line)
		}
		pol, at := r.result()
		switch {
		case pol == PolarityNone:
		case e.Payload == PolarityNone:
			e.Payload, e.PayloadText = pol, cutText(at, 120)
		case e.Payload != pol: // two parts that disagree
			e.Payload, e.PayloadText = PolarityMixed, cutText(at, 120)
		}
		return true
	})
	return e, err
}

// textOf reads a payload as text: UTF-8, or else Latin-1 (each byte one
// letter), as EDI files are often written.
func textOf(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = rune(c)
	}
	return string(rs)
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
