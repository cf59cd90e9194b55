package sesam

import (
	"regexp"
	"slices"
	"time"
)

// A lot's stamp is 19 digits (YYYYMMDDHHMMSS and 5 more; ParseLotSubject
// accepts 14 and more). A return that quotes it is certainly that lot's.
// A longer run of digits quotes no stamp: "20261204153911000019999" is
// some other number that starts like one.
var stampRun = regexp.MustCompile(`\d{14,}`)

const maxStampLen = 19

// maxStamps bounds what one mail may make the matcher compare.
const maxStamps = 50

// quotedStamps adds the stamps quoted in a mail's first megabyte (header
// and text; EDI payloads are read where they are decoded) to have.
func quotedStamps(raw []byte, have []string) []string {
	return appendStamps(have, raw[:min(len(raw), 1<<20)])
}

func appendStamps(have []string, b []byte) []string {
	if len(have) >= maxStamps {
		return have
	}
	for _, m := range stampRun.FindAll(b, 4*maxStamps) {
		if len(m) > maxStampLen {
			continue
		}
		s := string(m)
		dup := false
		for _, h := range have {
			if h == s {
				dup = true
				break
			}
		}
		if !dup {
			have = append(have, s)
		}
		if len(have) >= maxStamps {
			break
		}
	}
	return have
}

// subjectStamp is a stamp inside a lot's Subject: IR/emitter/stamp/n.
var subjectStamp = regexp.MustCompile(`/[ \t]*(\d{14,19})[ \t]*/[ \t]*\d`)

// subjectStamps lists the stamps a mail quotes inside lot Subjects, in its
// first megabyte.
func subjectStamps(raw []byte) []string {
	var out []string
	for _, m := range subjectStamp.FindAllSubmatch(raw[:min(len(raw), 1<<20)], maxStamps) {
		if s := string(m[1]); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Quotes says whether a return quotes this stamp.
func (in Inbound) Quotes(stamp string) bool {
	if len(stamp) < 14 {
		return false
	}
	for _, s := range in.Stamps {
		if s == stamp {
			return true
		}
	}
	return false
}

// StampTime reads a stamp's first 14 digits (YYYYMMDDHHMMSS) as a time in
// loc, Europe/Paris when loc is nil: the billing software writes its
// practice's local time, whatever the relay box's own zone.
func StampTime(stamp string, loc *time.Location) time.Time {
	if loc == nil {
		loc = paris()
	}
	if len(stamp) < 14 {
		return time.Time{}
	}
	t, err := time.ParseInLocation("20060102150405", stamp[:14], loc)
	if err != nil {
		return time.Time{}
	}
	return t
}
