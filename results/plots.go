package results

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// Bounds that keep a report of any history small and quick to open.
const (
	// maxPointsPerSeries caps the evenly spaced samples of one latency
	// series (one f, one outcome); each time bucket also keeps its
	// extremes, so spikes survive the downsampling.
	maxPointsPerSeries = 3000
	latencyBuckets     = 300
	// timeBuckets is the resolution of the quantile and throughput lines.
	timeBuckets = 120
	// maxFs caps the latency plots: one per function.
	maxFs = 8
)

var outcomeTypes = []history.Type{history.Ok, history.Fail, history.Info}

func (a *analysis) faultColors() map[string]string {
	m := map[string]string{}
	for _, w := range a.windows {
		if _, ok := m[w.fault]; !ok {
			m[w.fault] = faultPalette[len(m)%len(faultPalette)]
		}
	}
	return m
}

func (a *analysis) spanSecs() float64 { return math.Max(float64(a.span)/1e9, 1e-3) }

// latencyPlots draws one scatter plot per function: latency (log scale)
// against invocation time, coloured by outcome, fault windows shaded.
func (a *analysis) latencyPlots() []template.HTML {
	colors := a.faultColors()
	var out []template.HTML
	fs := a.fs
	if len(fs) > maxFs {
		fs = fs[:maxFs]
	}
	minL, maxL := math.Inf(1), 0.0
	for i := range a.calls {
		if c := &a.calls[i]; c.end >= 0 {
			l := float64(c.latency()) / 1e6
			minL, maxL = math.Min(minL, l), math.Max(maxL, l)
		}
	}
	if math.IsInf(minL, 1) {
		minL, maxL = 1, 10
	}
	for _, f := range fs {
		p := newPlot("latency of "+f, "latency (ms)", a.spanSecs(), minL, maxL, true)
		var body strings.Builder
		for _, t := range outcomeTypes {
			if a.counts[f][t] == 0 {
				continue
			}
			name := t.String()
			p.legend = append(p.legend, [2]string{fmt.Sprintf("%s (%d)", name, a.counts[f][t]), typeColor[name]})
			fmt.Fprintf(&body, `<g fill="%s" fill-opacity="0.7">`, typeColor[name])
			for _, c := range a.sample(f, t) {
				fmt.Fprintf(&body, `<circle cx="%.1f" cy="%.1f" r="1.6"/>`, p.px(float64(c.start)/1e9), p.py(float64(c.latency())/1e6))
			}
			body.WriteString(`</g>`)
		}
		out = append(out, p.svg(a.windows, colors, body.String()))
	}
	return out
}

// sample returns a bounded subset of the completed calls of one f and
// outcome: every stride-th call, plus the slowest and the fastest of each
// time bucket.
func (a *analysis) sample(f string, t history.Type) []*call {
	n := a.counts[f][t]
	stride := max(1, (n+maxPointsPerSeries-1)/maxPointsPerSeries)
	type ext struct{ lo, hi *call }
	var buckets []ext
	if stride > 1 {
		buckets = make([]ext, latencyBuckets)
	}
	var out []*call
	k := 0
	for i := range a.calls {
		c := &a.calls[i]
		if c.f != f || c.typ != t || c.end < 0 {
			continue
		}
		if k%stride == 0 {
			out = append(out, c)
		} else if buckets != nil {
			b := &buckets[min(latencyBuckets-1, int(c.start*latencyBuckets/max(a.span, 1)))]
			if b.lo == nil || c.latency() < b.lo.latency() {
				b.lo = c
			}
			if b.hi == nil || c.latency() > b.hi.latency() {
				b.hi = c
			}
		}
		k++
	}
	for _, b := range buckets {
		if b.lo != nil {
			out = append(out, b.lo)
		}
		if b.hi != nil && b.hi != b.lo {
			out = append(out, b.hi)
		}
	}
	return out
}

// quantilePlot draws latency quantiles of ok calls per time bucket.
func (a *analysis) quantilePlot() template.HTML {
	per := make([][]float64, timeBuckets)
	bw := float64(max(a.span, 1)) / timeBuckets
	minL, maxL := math.Inf(1), 0.0
	for i := range a.calls {
		c := &a.calls[i]
		if c.typ != history.Ok {
			continue
		}
		b := min(timeBuckets-1, int(float64(c.start)/bw))
		l := float64(c.latency()) / 1e6
		per[b] = append(per[b], l)
		minL, maxL = math.Min(minL, l), math.Max(maxL, l)
	}
	if math.IsInf(minL, 1) {
		minL, maxL = 1, 10
	}
	p := newPlot("latency quantiles of ok ops", "latency (ms)", a.spanSecs(), minL, maxL, true)
	qs := []struct {
		name  string
		q     float64
		color string
	}{{"p50", 0.5, "#1565c0"}, {"p95", 0.95, "#6a1b9a"}, {"p99", 0.99, "#ef6c00"}, {"max", 1, "#b71c1c"}}
	xs := make([][]float64, len(qs))
	ys := make([][]float64, len(qs))
	for b, ls := range per {
		if len(ls) == 0 {
			continue
		}
		slices.Sort(ls)
		x := (float64(b) + 0.5) * bw / 1e9
		for i, q := range qs {
			xs[i] = append(xs[i], x)
			ys[i] = append(ys[i], ls[min(len(ls)-1, int(q.q*float64(len(ls))))])
		}
	}
	var body strings.Builder
	for i, q := range qs {
		p.legend = append(p.legend, [2]string{q.name, q.color})
		p.polyline(&body, xs[i], ys[i], q.color, q.name == "max")
	}
	return p.svg(a.windows, a.faultColors(), body.String())
}

// throughputPlot draws completions per second by outcome.
func (a *analysis) throughputPlot() template.HTML {
	bw := float64(max(a.span, 1)) / timeBuckets
	counts := map[history.Type][]float64{}
	for _, t := range outcomeTypes {
		counts[t] = make([]float64, timeBuckets)
	}
	for i := range a.calls {
		c := &a.calls[i]
		if c.end < 0 {
			continue
		}
		counts[c.typ][min(timeBuckets-1, int(float64(c.end)/bw))]++
	}
	top := 1.0
	for _, t := range outcomeTypes {
		for b := range counts[t] {
			counts[t][b] /= bw / 1e9
			top = math.Max(top, counts[t][b])
		}
	}
	p := newPlot("throughput", "completions / s", a.spanSecs(), 0, top, false)
	var body strings.Builder
	for _, t := range outcomeTypes {
		if a.totals[t] == 0 {
			continue
		}
		xs := make([]float64, timeBuckets)
		for b := range xs {
			xs[b] = (float64(b) + 0.5) * bw / 1e9
		}
		p.legend = append(p.legend, [2]string{t.String(), typeColor[t.String()]})
		p.polyline(&body, xs, counts[t], typeColor[t.String()], false)
	}
	return p.svg(a.windows, a.faultColors(), body.String())
}

// availRow is one line of an availability table.
type availRow struct {
	Label, From, To string
	OpCounts
	Percent, Stall string
}

type availView struct {
	Summary string
	Rows    []availRow
	Groups  []availRow
}

func newAvailRow(label string, from, to int64, c OpCounts, st *Stall) availRow {
	r := availRow{Label: label, OpCounts: c, Percent: "no ops"}
	if from >= 0 {
		r.From, r.To = secs(from), secs(to)
	}
	if f := c.Answered(); f >= 0 {
		r.Percent = fmt.Sprintf("%.1f%%", 100*f)
	}
	if st != nil {
		r.Stall = fmt.Sprintf("%.2fs (%s–%s)", st.Seconds, secs(st.FromNS), secs(st.ToNS))
	}
	return r
}

// availabilityView lays av out for the report's tables.
func availabilityView(av Availability) availView {
	v := availView{}
	if av.Invoked > 0 {
		v.Summary = fmt.Sprintf("Overall %.1f%% answered; the longest stretch with no ok operation lasted %.2fs, from %s to %s.",
			100*av.Answered, av.LongestNoOK.Seconds, secs(av.LongestNoOK.FromNS), secs(av.LongestNoOK.ToNS))
	}
	v.Rows = append(v.Rows, newAvailRow("whole workload", -1, -1, av.OpCounts, &av.LongestNoOK))
	for _, w := range av.Windows {
		label := w.Fault
		if w.Value != "" {
			label += " " + w.Value
		}
		if w.Open {
			label += " (never healed)"
		}
		v.Rows = append(v.Rows, newAvailRow(cut(label, 80), w.FromNS, w.ToNS, w.OpCounts, &w.LongestNoOK))
	}
	if len(av.Windows) > 0 {
		v.Rows = append(v.Rows, newAvailRow("during any fault", -1, -1, av.DuringFaults, nil))
	}
	v.Rows = append(v.Rows, newAvailRow("outside every fault", -1, -1, av.OutsideFaults, nil))
	for _, g := range av.Groups {
		v.Groups = append(v.Groups, newAvailRow(g.Group, -1, -1, g.OpCounts, &g.LongestNoOK))
	}
	return v
}

// availabilityPlot draws the answered and ok fractions of each second's
// invocations, with the longest stretch without an ok marked below.
func (a *analysis) availabilityPlot(av Availability) template.HTML {
	p := newPlot("availability per second", "share of invocations", a.spanSecs(), 0, 1, false)
	var body strings.Builder
	series := []struct {
		name, color string
		dash        bool
		v           func(c OpCounts) float64
	}{
		{"answered (ok + expected fail)", "#2e7d32", false, func(c OpCounts) float64 { return c.Answered() }},
		{"ok", "#1565c0", true, func(c OpCounts) float64 { return float64(c.OK) / float64(c.Invoked) }},
	}
	for _, se := range series {
		p.legend = append(p.legend, [2]string{se.name, se.color})
		var xs, ys []float64
		flush := func() {
			if len(xs) == 1 {
				fmt.Fprintf(&body, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`, p.px(xs[0]), p.py(ys[0]), se.color)
			}
			p.polyline(&body, xs, ys, se.color, se.dash)
			xs, ys = nil, nil
		}
		for _, sec := range av.PerSecond {
			if sec.Invoked == 0 {
				flush()
				continue
			}
			xs = append(xs, float64(sec.Second)+0.5)
			ys = append(ys, se.v(sec.OpCounts))
		}
		flush()
	}
	if st := av.LongestNoOK; st.ToNS > st.FromNS {
		x0, x1 := p.px(float64(st.FromNS)/1e9), p.px(float64(st.ToNS)/1e9)
		y := p.h - p.bot - 6
		p.legend = append(p.legend, [2]string{"longest with no ok", "#b71c1c"})
		fmt.Fprintf(&body, `<rect x="%.1f" y="%.1f" width="%.1f" height="5" fill="#b71c1c"><title>longest with no ok: %.2fs, %s–%s</title></rect>`,
			x0, y, math.Max(x1-x0, 1), st.Seconds, secs(st.FromNS), secs(st.ToNS))
	}
	return p.svg(a.windows, a.faultColors(), body.String())
}

// nemesisTimeline draws one lane per fault kind with its windows as bars.
//
// Below the faults, one lane per replica group whose membership changed
// shows each of its configurations, one bar each, labelled with its
// members.
func (a *analysis) nemesisTimeline() template.HTML {
	if len(a.windows) == 0 && len(a.configs) == 0 {
		return ""
	}
	colors := a.faultColors()
	var lanes []string
	lane := map[string]int{}
	for _, w := range a.windows {
		if _, ok := lane[w.fault]; !ok {
			lane[w.fault] = len(lanes)
			lanes = append(lanes, w.fault)
		}
	}
	for _, c := range a.configs {
		if _, ok := lane[c.lane()]; !ok {
			lane[c.lane()] = len(lanes)
			lanes = append(lanes, c.lane())
		}
	}
	p := newPlot("nemesis timeline", "", a.spanSecs(), 0, 1, false)
	p.left, p.h = 110, 40+22*float64(len(lanes))+20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img"><title>nemesis timeline</title>`, p.w, p.h, p.w, p.h)
	fmt.Fprintf(&b, `<text x="%.1f" y="16" font-size="13" font-weight="bold">nemesis timeline</text>`, p.left)
	for i, l := range lanes {
		y := p.top + float64(i)*22
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`, p.left-6, y+14, esc(l))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, p.left, y+10, p.w-p.right, y+10)
	}
	for _, w := range a.windows {
		y := p.top + float64(lane[w.fault])*22
		x0, x1 := p.px(float64(w.start)/1e9), p.px(float64(w.end)/1e9)
		if x1-x0 < 3 {
			x1 = x0 + 3
		}
		style := `fill-opacity="1" stroke="#555" stroke-width="0.5"`
		if w.failed != "" {
			style = `fill-opacity="0.35" stroke="#b71c1c" stroke-width="1" stroke-dasharray="3 2"`
		}
		fmt.Fprintf(&b, `<rect class="nemesis-window" data-fault="%s" x="%.1f" y="%.1f" width="%.1f" height="16" rx="3" fill="%s" %s><title>%s</title></rect>`,
			esc(w.fault), x0, y+2, x1-x0, colors[w.fault], style, esc(w.describe()))
		label := w.value
		if w.failed != "" {
			label = "failed " + label
		}
		if x1-x0 > 40 && label != "" {
			label = cut(label, int((x1-x0-4)/6)-1)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10">%s</text>`, x0+3, y+14, esc(label))
		}
	}
	nth := map[string]int{}
	for _, c := range a.configs {
		y := p.top + float64(lane[c.lane()])*22
		x0, x1 := p.px(float64(c.start)/1e9), p.px(float64(c.end)/1e9)
		if x1-x0 < 3 {
			x1 = x0 + 3
		}
		// Neighbouring configurations alternate shades, so that each
		// change shows as an edge.
		fill := [2]string{"#c5cae9", "#e8eaf6"}[nth[c.lane()]%2]
		nth[c.lane()]++
		label := strings.Join(c.members, " ")
		fmt.Fprintf(&b, `<rect class="config-span" data-lane="%s" x="%.1f" y="%.1f" width="%.1f" height="16" fill="%s" stroke="#555" stroke-width="0.5"><title>%s</title></rect>`,
			esc(c.lane()), x0, y+2, x1-x0, fill, esc(c.describe()))
		if x1-x0 > 40 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10">%s</text>`, x0+3, y+14, esc(cut(label, int((x1-x0-4)/6)-1)))
		}
	}
	yAxis := p.top + float64(len(lanes))*22 + 4
	for _, t := range linearTicks(0, p.x1, 10) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>`, p.px(t), yAxis+10, fmtTick(t))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">time (s)</text>`, (p.left+p.w)/2, yAxis+24)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
