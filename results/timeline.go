package results

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// maxTimelineCalls bounds the timeline page; a longer history shows its
// first maxTimelineCalls operations and says so.
const maxTimelineCalls = 10000

// timelineLanes maps processes to lanes: when the run's concurrency is
// known, process p runs on worker p mod concurrency (a process that
// crashed continues as p+concurrency), as in Jepsen's timeline; otherwise
// one lane per process.
func timelineLanes(t Test, calls []call) (lane func(int64) int, n int, names []string) {
	conc := 0
	switch c := t.Parameters["concurrency"].(type) {
	case int:
		conc = c
	case int64:
		conc = int(c)
	case float64:
		conc = int(c)
	}
	if conc > 0 && conc <= 1000 {
		for i := range conc {
			names = append(names, fmt.Sprintf("worker %d", i))
		}
		lane = func(p int64) int {
			if p < 0 {
				return 0
			}
			return int(p % int64(conc))
		}
		return lane, conc, names
	}
	seen := map[int64]int{}
	var procs []int64
	for i := range calls {
		if _, ok := seen[calls[i].proc]; !ok {
			seen[calls[i].proc] = 0
			procs = append(procs, calls[i].proc)
		}
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i] < procs[j] })
	for i, p := range procs {
		seen[p] = i
		names = append(names, fmt.Sprintf("process %d", p))
	}
	return func(p int64) int { return seen[p] }, len(procs), names
}

// renderTimeline writes timeline.html: one column per worker, time going
// down, each operation a bar from its invocation to its completion,
// coloured by outcome, with its details on hover; fault windows shaded.
func renderTimeline(w io.Writer, t Test, a *analysis, ops []history.Op) error {
	calls := a.calls
	note := ""
	if len(calls) > maxTimelineCalls {
		note = fmt.Sprintf("Showing the first %d of %d operations.", maxTimelineCalls, len(calls))
		calls = calls[:maxTimelineCalls]
	}
	lane, nLanes, names := timelineLanes(t, calls)
	end := int64(1)
	for i := range calls {
		end = max(end, calls[i].start, calls[i].end)
	}
	if len(calls) < len(a.calls) {
		// Unfinished calls of a cut history would otherwise stretch it.
		end = max(end, calls[len(calls)-1].start)
	} else {
		end = max(end, a.span)
	}
	const laneW, top, left = 70.0, 30.0, 70.0
	height := math.Min(math.Max(float64(len(calls))*6, 600), 60000)
	scale := height / float64(end)
	width := left + laneW*float64(max(nLanes, 1)) + 10
	y := func(ns int64) float64 { return top + float64(ns)*scale }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img"><title>timeline</title>`, width, height+top+20, width, height+top+20)
	colors := a.faultColors()
	for _, win := range a.windows {
		if win.start > end {
			continue
		}
		y0, y1 := y(win.start), y(min(win.end, end))
		// The label stays in the left margin, clear of the bars; the
		// tooltip holds the details.
		opacity, label := 0.3, cut(win.fault, 12)
		if win.failed != "" {
			opacity, label = 0.12, "✗ "+label
		}
		fmt.Fprintf(&b, `<rect class="fault-shade" data-fault="%s" x="0" y="%.1f" width="%.0f" height="%.1f" fill="%s" fill-opacity="%.2f"><title>%s</title></rect><text x="2" y="%.1f" font-size="9">%s</text>`,
			esc(win.fault), y0, width, math.Max(y1-y0, 2), colors[win.fault], opacity, esc(win.describe()), y0+10, esc(label))
	}
	for i, n := range names {
		fmt.Fprintf(&b, `<text x="%.1f" y="18" font-size="11" text-anchor="middle">%s</text>`, left+laneW*(float64(i)+0.5), esc(n))
	}
	for _, tk := range linearTicks(0, float64(end)/1e9, int(height/80)) {
		yy := y(int64(tk * 1e9))
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%ss</text>`, left, yy, width, yy, left-4, yy+3, fmtTick(tk))
	}
	for i := range calls {
		c := &calls[i]
		l := lane(c.proc)
		e := c.end
		state := c.typ.String()
		if e < 0 {
			e, state = end, "never completed"
		}
		x := left + laneW*float64(l) + 3
		y0 := y(c.start)
		h := math.Max(y(e)-y0, 2)
		inv := &ops[c.inv]
		title := fmt.Sprintf("process %d %s %s", c.proc, c.f, short(inv.Value, 150))
		if c.comp >= 0 {
			comp := &ops[c.comp]
			title += fmt.Sprintf("\n→ %s %s\n%.2f ms, %s–%s", state, short(comp.Value, 150), float64(c.latency())/1e6, secs(c.start), secs(c.end))
			if comp.Error != "" {
				title += "\nerror: " + cut(comp.Error, 200)
			}
			if comp.Node != "" {
				title += "\nnode: " + cut(comp.Node, 50)
			}
		} else {
			title += "\n→ never completed"
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s" fill-opacity="0.8"><title>%s</title></rect>`,
			x, y0, laneW-6, h, typeColor[c.typ.String()], esc(title))
		if h >= 12 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9" fill="#fff">%s</text>`, x+2, y0+9, esc(cut(c.f, 10)))
		}
	}
	b.WriteString(`</svg>`)
	return timelineTmpl.Execute(w, map[string]any{
		"Test": t, "Note": note, "SVG": template.HTML(b.String()),
	})
}

var timelineTmpl = template.Must(template.New("timeline").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Test.Name}}: timeline</title>
<style>` + pageStyle + `body{max-width:none}</style></head><body>
<h1>{{.Test.Name}}: timeline</h1>
<p><a href="report.html">back to the report</a> &middot; time runs down; each bar is one operation from invocation to completion:
<span class="ok">ok</span>, <span class="fail">fail</span>, <span class="info">info</span>; shaded bands are faults and other nemesis actions (✗: the action failed). Hover for details.</p>
{{with .Note}}<p class="note">{{.}}</p>{{end}}
{{.SVG}}
</body></html>
`))
