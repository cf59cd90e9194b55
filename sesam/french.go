package sesam

import (
	"fmt"
	"time"
)

// Plural writes a count with its noun, singular for 0 and 1 as French
// does: "1 facture", "12 factures".
func Plural(n int, one, many string) string {
	if n < 2 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// FrenchDuration writes a delay as a practitioner reads it: "3 jours",
// "24 h", "4 h 30", "20 min", "5 s".
func FrenchDuration(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d >= 2*day && d%day == 0:
		return Plural(int(d/day), "jour", "jours")
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%d h %02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute)/time.Minute))
	}
	return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
}
