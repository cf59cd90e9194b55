package sesam

import (
	"slices"
	"time"
)

// Date is a civil date, with no time and no zone: a day the practice is
// closed is the same day whatever the machine's clock says.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the date t falls on in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return Date{y, m, d}
}

// add returns the date n days later (or earlier), normalised.
func (d Date) add(n int) Date {
	y, m, dd := time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC).Date()
	return Date{y, m, dd}
}

// Easter returns Easter Sunday of a year in the Gregorian calendar (the
// anonymous algorithm, also known as Meeus/Jones/Butcher).
func Easter(year int) Date {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return Date{year, time.Month(month), day}
}

// Calendar says which days a practice works, for delays that count working
// days: "no acknowledgement after 48 h" must not fire on Sunday for a lot
// sent on Friday, and the FSE deadlines are in working days (jours ouvrés).
//
// The zero Calendar is a practice in Europe/Paris, closed on Saturdays,
// Sundays and the French public holidays.
type Calendar struct {
	// AlsaceMoselle adds the local holidays of Bas-Rhin, Haut-Rhin and
	// Moselle: Good Friday and 26 December.
	AlsaceMoselle bool
	// Extra holds days the practice adds (a bridge day, the local fête).
	Extra []Date
	// Closed lists the weekdays the practice does not work. Nil means
	// Saturday and Sunday; a non-nil empty slice means every weekday works.
	Closed []time.Weekday
	// Loc is the zone days are read in; nil means Europe/Paris.
	Loc *time.Location
}

// maxScanDays bounds every walk over the calendar: delays beyond it are not
// counted, so even a calendar with every day closed answers at once.
const maxScanDays = 400

// Never is what AddWorking returns when the delay cannot be reached within
// maxScanDays (a calendar with every day closed): a time no clock reaches.
var Never = time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC)

func (c Calendar) loc() *time.Location {
	if c.Loc != nil {
		return c.Loc
	}
	return paris()
}

// Holiday returns the French name of the public holiday (or the practice's
// extra day) that t falls on in the calendar's zone.
func (c Calendar) Holiday(t time.Time) (string, bool) {
	return c.holiday(DateOf(t, c.loc()))
}

// fixedHolidays are the public holidays on the same day every year.
var fixedHolidays = map[Date]string{
	{0, time.January, 1}:   "jour de l'an",
	{0, time.May, 1}:       "fête du Travail",
	{0, time.May, 8}:       "victoire 1945",
	{0, time.July, 14}:     "fête nationale",
	{0, time.August, 15}:   "Assomption",
	{0, time.November, 1}:  "Toussaint",
	{0, time.November, 11}: "armistice 1918",
	{0, time.December, 25}: "Noël",
}

func (c Calendar) holiday(d Date) (string, bool) {
	if name, ok := fixedHolidays[Date{0, d.Month, d.Day}]; ok {
		return name, true
	}
	if c.AlsaceMoselle && d.Month == time.December && d.Day == 26 {
		return "Saint-Étienne", true
	}
	e := Easter(d.Year)
	switch d {
	case e.add(1):
		return "lundi de Pâques", true
	case e.add(39):
		return "Ascension", true
	case e.add(50):
		// Also the "journée de solidarité" in many workplaces, but still
		// a public holiday: the funds' offices close.
		return "lundi de Pentecôte", true
	case e.add(-2):
		if c.AlsaceMoselle {
			return "vendredi saint", true
		}
	}
	if slices.Contains(c.Extra, d) {
		return "jour de fermeture du cabinet", true
	}
	return "", false
}

func (c Calendar) closed(w time.Weekday) bool {
	if c.Closed == nil {
		return w == time.Saturday || w == time.Sunday
	}
	return slices.Contains(c.Closed, w)
}

func (c Calendar) working(d Date) bool {
	w := time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()
	if c.closed(w) {
		return false
	}
	_, hol := c.holiday(d)
	return !hol
}

// WorkingDay reports whether t falls on a working day in the calendar's zone.
func (c Calendar) WorkingDay(t time.Time) bool {
	return c.working(DateOf(t, c.loc()))
}

// days calls fn for each day from the one holding from, at most
// maxScanDays, with the instants the day starts and ends (real instants:
// a day of a clock change lasts 23 or 25 hours), until fn returns false.
func (c Calendar) days(from time.Time, fn func(d Date, start, end time.Time) bool) {
	loc := c.loc()
	d := DateOf(from, loc)
	start := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
	for range maxScanDays {
		next := d.add(1)
		end := time.Date(next.Year, next.Month, next.Day, 0, 0, 0, 0, loc)
		if !fn(d, start, end) {
			return
		}
		d, start = next, end
	}
}

// WorkingTime returns the time elapsed between from and to that falls on
// working days, in real time (a working day of a clock change counts 23 or
// 25 hours). It is zero when to is not after from, and counts at most
// maxScanDays days from from, far beyond any delay the relay waits for.
func (c Calendar) WorkingTime(from, to time.Time) time.Duration {
	var sum time.Duration
	if !to.After(from) {
		return 0
	}
	c.days(from, func(d Date, start, end time.Time) bool {
		if !start.Before(to) {
			return false
		}
		if c.working(d) {
			sum += latest(to, end).Sub(earliest(from, start))
		}
		return true
	})
	return sum
}

// AddWorking returns the first instant at which WorkingTime(from, result)
// reaches d: a lot delivered on Friday at 10:00 with 48 h to wait is due on
// Tuesday at 10:00, on Wednesday over Easter Monday. It returns Never when
// d is not reached within maxScanDays (every day closed).
func (c Calendar) AddWorking(from time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return from
	}
	due := Never
	c.days(from, func(day Date, start, end time.Time) bool {
		if !c.working(day) {
			return true
		}
		s := earliest(from, start)
		if left := end.Sub(s); d > left {
			d -= left
			return true
		}
		due = s.Add(d)
		return false
	})
	return due
}

// earliest is the later of t and the day's start: where counting begins.
func earliest(t, start time.Time) time.Time {
	if t.After(start) {
		return t
	}
	return start
}

// latest is the earlier of t and the day's end: where counting stops.
func latest(t, end time.Time) time.Time {
	if t.Before(end) {
		return t
	}
	return end
}
