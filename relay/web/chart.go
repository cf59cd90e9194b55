package web

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/sesam-relay/sesam-relay/relay/control"
	"github.com/sesam-relay/sesam-relay/sesam"
)

// chartDays is how many days the charts of Lots show.
const chartDays = 30

// charts draws, for the last 30 days, the lots sent per day and the
// median delay from sending to the positive ARL, as SVG made here from
// numbers only (nothing an outsider wrote goes in).
func charts(lots []control.LotView, now time.Time) (perDay, delay template.HTML) {
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location()).AddDate(0, 0, -(chartDays - 1))
	count := make([]float64, chartDays)
	delays := make([][]float64, chartDays)
	for _, l := range lots {
		d := int(l.Submitted.In(now.Location()).Sub(start).Hours() / 24)
		if l.Submitted.Before(start) || d < 0 || d >= chartDays {
			continue
		}
		count[d]++
		if l.State != sesam.LotAcknowledged || l.Delivered.IsZero() {
			continue
		}
		for _, r := range l.Returns {
			if r.Class == sesam.ARLPositive && r.Received.After(l.Delivered) {
				delays[d] = append(delays[d], r.Received.Sub(l.Delivered).Hours())
				break
			}
		}
	}
	median := make([]float64, chartDays)
	for i, ds := range delays {
		if len(ds) > 0 {
			sort.Float64s(ds)
			median[i] = ds[len(ds)/2]
		}
	}
	return bars(count, start, "Lots envoyés par jour", "", "#24466b"),
		bars(median, start, "Délai médian jusqu'à l'accusé de réception (heures)", "h", "#2e7d32")
}

// bars is one bar chart: a value per day, the days under it every week.
func bars(v []float64, start time.Time, title, unit, color string) template.HTML {
	const w, h, left, bottom = 600, 160, 34, 24
	max := 0.0
	for _, x := range v {
		if x > max {
			max = x
		}
	}
	if max == 0 {
		max = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" role="img" aria-label="%s" class="graphe">`, w, h+bottom, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="0" y="12" font-size="12">%s</text>`, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="0" y="32" font-size="11" fill="#555">%s %s</text>`, trim(max), template.HTMLEscapeString(unit))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, left, h, w, h)
	bw := float64(w-left) / float64(len(v))
	for i, x := range v {
		bh := (x / max) * float64(h-40)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s : %s %s</title></rect>`,
			float64(left)+float64(i)*bw+1, float64(h)-bh, bw-2, bh, color, start.AddDate(0, 0, i).Format("02/01"), trim(x), template.HTMLEscapeString(unit))
		if i%7 == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#555">%s</text>`, float64(left)+float64(i)*bw, h+16, start.AddDate(0, 0, i).Format("02/01"))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func trim(x float64) string {
	if x == float64(int(x)) {
		return fmt.Sprintf("%d", int(x))
	}
	return strings.Replace(fmt.Sprintf("%.1f", x), ".", ",", 1) // 2,5 h
}
