package sesam

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Paris with its summer time, on a box without tzdata too
)

// Fund is a health insurance fund, from its teletransmission address
// RRCCC@CCC.RR.rss.fr: régime (2 digits) and caisse (3 digits).
type Fund struct {
	Regime, Caisse string
}

// Test funds receive test lots (DOMAIN.md: caisses 996 and 997).
func (f Fund) Test() bool { return f.Caisse == "996" || f.Caisse == "997" }

func (f Fund) String() string { return f.Regime + f.Caisse }

var fundAddr = regexp.MustCompile(`(?i)^<?\s*(\d{2})(\d{3})@(\d{3})\.(\d{2})\.rss\.fr\s*>?$`)

// ParseFundAddress recognises a fund's address; the local part and the
// domain must agree (01422@422.01.rss.fr).
func ParseFundAddress(addr string) (Fund, bool) {
	m := fundAddr.FindStringSubmatch(strings.TrimSpace(addr))
	if m == nil || m[1] != m[4] || m[2] != m[3] {
		return Fund{}, false
	}
	return Fund{Regime: m[1], Caisse: m[2]}, true
}

// LotSubject is what a lot mail's Subject tells: IR…/emitter/stamp/invoices.
type LotSubject struct {
	Prefix   string    // "IR", or "IR" and 6 digits: implementations disagree
	Emitter  string    // 14 characters, the practitioner's emitter number
	Stamp    string    // 19 digits: YYYYMMDDHHMMSS and 5 more
	At       time.Time // the stamp's date and time, read in Europe/Paris unless configured otherwise (ParseLotSubjectIn)
	Invoices int
}

// ParseLotSubject reads a lot Subject leniently: spaces around fields,
// lower-case prefix, a stamp or count with fewer digits are accepted; what
// cannot be a lot is refused. The stamp is read in Europe/Paris, the
// practices' zone, not the machine's: on a box kept in UTC a lot stamped
// 10:15 was shown as 11:15.
func ParseLotSubject(subject string) (LotSubject, error) {
	return ParseLotSubjectIn(subject, paris())
}

// ParseLotSubjectIn is ParseLotSubject with the stamp read in loc (nil
// means Europe/Paris), for a practice whose billing software keeps another
// zone (the overseas departments).
func ParseLotSubjectIn(subject string, loc *time.Location) (LotSubject, error) {
	if loc == nil {
		loc = paris()
	}
	f := strings.Split(strings.TrimSpace(subject), "/")
	if len(f) != 4 {
		return LotSubject{}, fmt.Errorf("not 4 fields separated by '/'")
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	ls := LotSubject{Prefix: strings.ToUpper(f[0]), Emitter: f[1], Stamp: f[2]}
	if !strings.HasPrefix(ls.Prefix, "IR") || !digits(ls.Prefix[2:]) {
		return ls, fmt.Errorf("prefix %q is not IR or IR and digits", f[0])
	}
	if ls.Emitter == "" || len(ls.Emitter) > 14 {
		return ls, fmt.Errorf("emitter %q is not up to 14 characters", ls.Emitter)
	}
	if len(ls.Stamp) < 14 || !digits(ls.Stamp) {
		return ls, fmt.Errorf("stamp %q does not start with YYYYMMDDHHMMSS", ls.Stamp)
	}
	if ls.At = StampTime(ls.Stamp, loc); ls.At.IsZero() {
		return ls, fmt.Errorf("stamp %q is not a date", ls.Stamp)
	}
	n, err := strconv.Atoi(f[3])
	if err != nil || n < 0 || !digits(f[3]) {
		return ls, fmt.Errorf("invoice count %q is not a number", f[3])
	}
	ls.Invoices = n
	return ls, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// paris is the practices' time zone, for dates in French text.
var paris = sync.OnceValue(func() *time.Location {
	if l, err := time.LoadLocation("Europe/Paris"); err == nil {
		return l
	}
	return time.FixedZone("CET", 3600)
})

// Paris is the practices' time zone, the one billing software writes its
// lot stamps in.
func Paris() *time.Location { return paris() }

// FrenchDate writes a time as French notices do: "24/11/2026 à 09:15".
func FrenchDate(t time.Time) string { return t.In(paris()).Format("02/01/2006 à 15:04") }
