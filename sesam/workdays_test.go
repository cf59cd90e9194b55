package sesam_test

import (
	"testing"
	"time"

	"github.com/sesam-relay/sesam-relay/sesam"
)

func parisZone(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	return loc
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, parisZone(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEasterMatchesKnownDates(t *testing.T) {
	for year, want := range map[int]string{
		2024: "2024-03-31", 2025: "2025-04-20", 2026: "2026-04-05", 2027: "2027-03-28",
		2028: "2028-04-16", 2029: "2029-04-01", 2030: "2030-04-21",
		1818: "1818-03-22", 2038: "2038-04-25", // the earliest and latest possible
	} {
		e := sesam.Easter(year)
		if got := time.Date(e.Year, e.Month, e.Day, 0, 0, 0, 0, time.UTC).Format("2006-01-02"); got != want {
			t.Errorf("Easter %d: %s, want %s", year, got, want)
		}
	}
}

// The delays of the relay's warnings, on the default calendar (Paris,
// closed on weekends and public holidays).
func TestWorkingDelaySkipsWeekendsAndHolidays(t *testing.T) {
	var cal sesam.Calendar
	cases := []struct {
		name, from string
		delay      time.Duration
		due        string
	}{
		{"Friday lot over a weekend", "2026-11-20 10:00", 48 * time.Hour, "2026-11-24 10:00"},
		{"Friday lot over Easter Monday", "2026-04-03 10:00", 48 * time.Hour, "2026-04-08 10:00"},
		{"Wednesday lot over Ascension Thursday", "2026-05-13 10:00", 48 * time.Hour, "2026-05-18 10:00"},
		{"Friday lot over Whit Monday", "2026-05-22 10:00", 24 * time.Hour, "2026-05-26 10:00"},
		{"14 July on a Tuesday", "2026-07-13 10:00", 24 * time.Hour, "2026-07-15 10:00"},
		{"1 May on a Friday", "2026-04-30 09:00", 48 * time.Hour, "2026-05-05 09:00"},
		{"Christmas to New Year", "2026-12-24 18:00", 48 * time.Hour, "2026-12-29 18:00"},
		{"a start on Saturday counts from Monday 0:00", "2026-11-21 15:00", 24 * time.Hour, "2026-11-24 00:00"},
		{"a start on a holiday counts from the next working day", "2026-11-11 08:00", 10 * time.Hour, "2026-11-12 10:00"},
		{"a delay ending at midnight", "2026-11-23 00:00", 24 * time.Hour, "2026-11-24 00:00"},
		{"no delay", "2026-11-21 15:00", 0, "2026-11-21 15:00"},
	}
	for _, c := range cases {
		from, want := at(t, c.from), at(t, c.due)
		if got := cal.AddWorking(from, c.delay); !got.Equal(want) {
			t.Errorf("%s: %s + %s working = %s, want %s", c.name, c.from, c.delay, got.In(want.Location()).Format("2006-01-02 15:04 Mon"), c.due)
		}
		if got := cal.WorkingTime(from, want); got != c.delay {
			t.Errorf("%s: WorkingTime(%s, %s) = %s, want %s", c.name, c.from, c.due, got, c.delay)
		}
	}
}

func TestWorkingDayKnowsTheHolidays(t *testing.T) {
	var cal sesam.Calendar
	alsace := sesam.Calendar{AlsaceMoselle: true}
	for _, c := range []struct {
		day            string
		france, alsace bool
	}{
		{"2026-01-01", false, false},
		{"2026-04-03", true, false}, // Good Friday: only in Alsace-Moselle
		{"2026-04-06", false, false},
		{"2026-05-14", false, false}, // Ascension
		{"2026-05-25", false, false}, // Whit Monday
		{"2026-07-14", false, false},
		{"2026-08-14", true, true},
		{"2026-12-25", false, false},
		{"2026-12-26", false, false}, // a Saturday anyway
		{"2025-12-26", true, false},  // a Friday: only in Alsace-Moselle
		{"2027-03-26", true, false},  // Good Friday 2027
		{"2026-11-23", true, true},
		{"2026-11-22", false, false}, // Sunday
	} {
		d := at(t, c.day+" 12:00")
		if got := cal.WorkingDay(d); got != c.france {
			t.Errorf("%s: working day %v, want %v", c.day, got, c.france)
		}
		if got := alsace.WorkingDay(d); got != c.alsace {
			t.Errorf("%s in Alsace-Moselle: working day %v, want %v", c.day, got, c.alsace)
		}
	}
	if name, ok := alsace.Holiday(at(t, "2025-12-26 08:00")); !ok || name != "Saint-Étienne" {
		t.Errorf("26 Dec in Alsace-Moselle: %q %v", name, ok)
	}
}

func TestAlsaceMoselleDelaysSkipGoodFridayAnd26December(t *testing.T) {
	alsace := sesam.Calendar{AlsaceMoselle: true}
	// Thursday before Easter 2026: Good Friday, the weekend, Easter Monday.
	if got, want := alsace.AddWorking(at(t, "2026-04-02 10:00"), 24*time.Hour), at(t, "2026-04-07 10:00"); !got.Equal(want) {
		t.Errorf("over Good Friday: %s, want %s", got, want)
	}
	if got, want := (sesam.Calendar{}).AddWorking(at(t, "2026-04-02 10:00"), 24*time.Hour), at(t, "2026-04-03 10:00"); !got.Equal(want) {
		t.Errorf("outside Alsace-Moselle, Good Friday works: %s, want %s", got, want)
	}
	// 2025: Christmas on Thursday, 26 on Friday.
	if got, want := alsace.AddWorking(at(t, "2025-12-24 10:00"), 24*time.Hour), at(t, "2025-12-29 10:00"); !got.Equal(want) {
		t.Errorf("over 25-26 Dec: %s, want %s", got, want)
	}
}

func TestExtraDaysAndClosedWeekdays(t *testing.T) {
	cal := sesam.Calendar{Extra: []sesam.Date{{2026, time.November, 23}}}
	if got, want := cal.AddWorking(at(t, "2026-11-20 10:00"), 48*time.Hour), at(t, "2026-11-25 10:00"); !got.Equal(want) {
		t.Errorf("over a practice's bridge day: %s, want %s", got, want)
	}
	saturdays := sesam.Calendar{Closed: []time.Weekday{time.Sunday}}
	if got, want := saturdays.AddWorking(at(t, "2026-11-21 10:00"), 24*time.Hour), at(t, "2026-11-23 10:00"); !got.Equal(want) {
		t.Errorf("a practice open on Saturday: %s, want %s", got, want)
	}
}

func TestEveryDayClosedNeverComesDue(t *testing.T) {
	cal := sesam.Calendar{Closed: []time.Weekday{0, 1, 2, 3, 4, 5, 6}}
	from := at(t, "2026-11-20 10:00")
	if got := cal.AddWorking(from, time.Hour); !got.Equal(sesam.Never) {
		t.Errorf("every day closed: due %s, want Never", got)
	}
	if got := cal.WorkingTime(from, from.AddDate(5, 0, 0)); got != 0 {
		t.Errorf("every day closed: %s of working time", got)
	}
	// A delay beyond the scanned span is not reached either.
	if got := (sesam.Calendar{}).AddWorking(from, 5*365*24*time.Hour); !got.Equal(sesam.Never) {
		t.Errorf("five years of working time: due %s, want Never", got)
	}
}

// The last Sundays of March and October last 23 and 25 hours in Paris:
// working time is real elapsed time within working days.
func TestClockChangesCountRealTime(t *testing.T) {
	var cal sesam.Calendar
	// The weekend is closed: Friday 10:00 + 48 h is still Tuesday 10:00,
	// though 95 h (March) or 97 h (October) have passed.
	for _, c := range []struct{ from, due string }{
		{"2026-03-27 10:00", "2026-03-31 10:00"},
		{"2026-10-23 10:00", "2026-10-27 10:00"},
	} {
		if got, want := cal.AddWorking(at(t, c.from), 48*time.Hour), at(t, c.due); !got.Equal(want) {
			t.Errorf("%s + 48 h over a clock change: %s, want %s", c.from, got, want)
		}
	}
	open := sesam.Calendar{Closed: []time.Weekday{}}
	for _, c := range []struct {
		day  string
		long time.Duration
	}{{"2026-03-29", 23 * time.Hour}, {"2026-10-25", 25 * time.Hour}, {"2026-03-28", 24 * time.Hour}} {
		start := at(t, c.day+" 00:00")
		if got := open.WorkingTime(start, start.AddDate(0, 0, 1)); got != c.long {
			t.Errorf("%s lasts %s, counted %s", c.day, c.long, got)
		}
	}
	// Saturday 10:00 + 24 h with every day open: Sunday 11:00 in March
	// (the clock jumped an hour), 09:00 in October.
	if got, want := open.AddWorking(at(t, "2026-03-28 10:00"), 24*time.Hour), at(t, "2026-03-29 11:00"); !got.Equal(want) {
		t.Errorf("24 h across the spring change: %s, want %s", got, want)
	}
	if got, want := open.AddWorking(at(t, "2026-10-24 10:00"), 24*time.Hour), at(t, "2026-10-25 09:00"); !got.Equal(want) {
		t.Errorf("24 h across the autumn change: %s, want %s", got, want)
	}
}

func TestCalendarReadsDaysInItsZone(t *testing.T) {
	// Monday 00:30 in Paris is Sunday 23:30 UTC: a working day in Paris.
	monday := at(t, "2026-11-23 00:30").UTC()
	if !(sesam.Calendar{}).WorkingDay(monday) {
		t.Error("Monday 00:30 Paris read as Sunday")
	}
	if (sesam.Calendar{Loc: time.UTC}).WorkingDay(monday) {
		t.Error("a calendar in UTC should read Sunday 23:30")
	}
}

func TestLotStampIsParisTimeOnAUTCMachine(t *testing.T) {
	paris := parisZone(t)
	saved := time.Local
	time.Local = time.UTC
	defer func() { time.Local = saved }()
	ls, err := sesam.ParseLotSubject("IR/12345678901234/2026112410150012345/00012")
	if err != nil {
		t.Fatal(err)
	}
	if got := ls.At.In(paris).Format("15:04"); got != "10:15" {
		t.Errorf("a 10:15 stamp is %s in Paris", got)
	}
	if got := ls.At.UTC().Format("15:04"); got != "09:15" {
		t.Errorf("a 10:15 winter stamp is %s UTC, want 09:15", got)
	}
	if got := sesam.FrenchDate(ls.At); got != "24/11/2026 à 10:15" {
		t.Errorf("shown as %q", got)
	}
	reunion := time.FixedZone("RET", 4*3600)
	ls, err = sesam.ParseLotSubjectIn("IR/12345678901234/2026112410150012345/00012", reunion)
	if err != nil || ls.At.UTC().Format("15:04") != "06:15" {
		t.Errorf("in a configured zone: %v %v", ls.At.UTC(), err)
	}
}
