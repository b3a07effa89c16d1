package results

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/chaoskv/chaos/checker/elle"
)

// edgeColor tells dependency kinds apart in cycle diagrams.
var edgeColor = map[string]string{"ww": "#1565c0", "wr": "#2e7d32", "rw": "#c62828", "process": "#6d4c41", "realtime": "#6a1b9a"}

// edgeKinds orders edgeColor's keys, so a page renders the same each time.
var edgeKinds = []string{"ww", "wr", "rw", "process", "realtime"}

// cut shortens s to at most n bytes on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := max(n, 0)
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}

// mopLines renders a transaction's micro-operations, one per line.
func mopLines(v any) []string {
	l, ok := v.([]any)
	if !ok {
		return []string{short(v, 40)}
	}
	var out []string
	for _, m := range l {
		mo, ok := m.([]any)
		if !ok || len(mo) != 3 {
			out = append(out, short(m, 40))
			continue
		}
		out = append(out, cut(fmt.Sprintf("%s %s %s", plain(mo[0]), plain(mo[1]), short(mo[2], 28)), 40))
	}
	return out
}

// plain renders a scalar without JSON quotes.
func plain(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return short(v, 24)
}

// cycleSVG lays a cycle anomaly out as a ring: transactions as boxes on a
// circle, each step an arrow labelled with its kind and key. id makes the
// arrowhead markers unique within the page.
func cycleSVG(a *elle.Anomaly, id int) template.HTML {
	n := len(a.Txns)
	if n == 0 || len(a.Steps) == 0 {
		return ""
	}
	const boxW, lineH = 190.0, 13.0
	lines := make([][]string, n)
	boxH := make([]float64, n)
	for i, t := range a.Txns {
		ls := append([]string{fmt.Sprintf("T%d: op %d, process %d, %s", i+1, t.Index, t.Process, t.Type)}, mopLines(t.Value)...)
		if len(ls) > 7 {
			ls = append(ls[:6], fmt.Sprintf("… %d more", len(ls)-6))
		}
		lines[i] = ls
		boxH[i] = float64(len(ls))*lineH + 8
	}
	// Neighbours on the ring sit a box width plus room for a label apart.
	r := 0.0
	if n > 1 {
		r = math.Max(150, (boxW+130)/(2*math.Sin(math.Pi/float64(n))))
	}
	maxH := 0.0
	for _, bh := range boxH {
		maxH = math.Max(maxH, bh)
	}
	w := 2*r + boxW + 200
	h := 2*r + maxH + 80
	cx, cy := w/2, h/2
	pos := make([][2]float64, n)
	for i := range n {
		ang := -math.Pi/2 + 2*math.Pi*float64(i)/float64(n)
		pos[i] = [2]float64{cx + r*math.Cos(ang), cy + r*math.Sin(ang)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="cycle" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img"><title>%s cycle</title><defs>`, w, h, w, h, esc(a.Type))
	for _, kind := range edgeKinds {
		c := edgeColor[kind]
		fmt.Fprintf(&b, `<marker id="arrow-%d-%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>`, id, kind, c)
	}
	b.WriteString(`</defs>`)
	for _, s := range a.Steps {
		if s.From < 0 || s.From >= n || s.To < 0 || s.To >= n {
			continue
		}
		color, ok := edgeColor[s.Type]
		kind := s.Type
		if !ok {
			color, kind = "#555", "process"
		}
		label := s.Type
		if s.Key != nil {
			label += " " + plain(s.Key)
		}
		p, q := pos[s.From], pos[s.To]
		var d string
		var lx, ly float64
		anchor := "middle"
		if s.From == s.To {
			d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", p[0]+boxW/2, p[1], p[0]+boxW/2+70, p[1]-60, p[0]+boxW/2+70, p[1]+60, p[0]+boxW/2, p[1]+4)
			lx, ly = p[0]+boxW/2+60, p[1]
			anchor = "start"
		} else {
			// Clip both ends to the boxes, then bend the edge outward
			// from the ring's centre so opposite edges do not overlap.
			a0 := clipBox(p, q, boxW, boxH[s.From])
			a1 := clipBox(q, p, boxW, boxH[s.To])
			mx, my := (a0[0]+a1[0])/2, (a0[1]+a1[1])/2
			dx, dy := a1[0]-a0[0], a1[1]-a0[1]
			l := math.Hypot(dx, dy)
			nx, ny := -dy/l, dx/l
			if (mx-cx)*nx+(my-cy)*ny < 0 {
				nx, ny = -nx, -ny
			}
			bend := 28.0
			c := [2]float64{mx + nx*bend*2, my + ny*bend*2}
			d = fmt.Sprintf("M%.1f,%.1f Q%.1f,%.1f %.1f,%.1f", a0[0], a0[1], c[0], c[1], a1[0], a1[1])
			lx, ly = mx+nx*(bend+4), my+ny*(bend+4)
			// Labels sit on the outer side of their curve.
			switch {
			case nx > 0.3:
				anchor = "start"
			case nx < -0.3:
				anchor = "end"
			}
		}
		dash := ""
		if s.Type == "rw" {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.8"%s marker-end="url(#arrow-%d-%s)"><title>%s</title></path>`, d, color, dash, id, kind, esc(s.Explanation))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="12" font-weight="bold" text-anchor="%s" fill="%s" stroke="#fff" stroke-width="3" paint-order="stroke">%s</text>`, lx, ly+4, anchor, color, esc(cut(label, 30)))
	}
	for i := range n {
		x, y := pos[i][0]-boxW/2, pos[i][1]-boxH[i]/2
		fmt.Fprintf(&b, `<g><rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" rx="4" fill="#fff" stroke="#333"/>`, x, y, boxW, boxH[i])
		for j, l := range lines[i] {
			weight := ""
			if j == 0 {
				weight = ` font-weight="bold"`
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10.5" font-family="monospace"%s>%s</text>`, x+5, y+14+float64(j)*lineH, weight, esc(l))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// clipBox returns where the segment from p (a box centre) towards q leaves
// the box of width w and height h around p.
func clipBox(p, q [2]float64, w, h float64) [2]float64 {
	dx, dy := q[0]-p[0], q[1]-p[1]
	if dx == 0 && dy == 0 {
		return p
	}
	t := math.Inf(1)
	if dx != 0 {
		t = math.Min(t, (w/2+4)/math.Abs(dx))
	}
	if dy != 0 {
		t = math.Min(t, (h/2+4)/math.Abs(dy))
	}
	t = math.Min(t, 1)
	return [2]float64{p[0] + dx*t, p[1] + dy*t}
}

// anomalyView is one transactional anomaly as the report shows it.
type anomalyView struct {
	Type, Explanation string
	Steps             []string
	Txns              []string
	Details           []string
	SVG               template.HTML
}

// decodeAnomaly reads an Elle anomaly, whether it is the checker's own
// value or its JSON form read back from results.json.
func decodeAnomaly(x any) (*elle.Anomaly, bool) {
	switch v := x.(type) {
	case *elle.Anomaly:
		return v, true
	case elle.Anomaly:
		return &v, true
	}
	var a elle.Anomaly
	if !roundTrip(x, &a) || (a.Explanation == "" && len(a.Txns) == 0) {
		return nil, false
	}
	return &a, true
}

func viewAnomaly(typ string, a *elle.Anomaly, id int) anomalyView {
	v := anomalyView{Type: typ, Explanation: a.Explanation, SVG: cycleSVG(a, id)}
	if a.Type != "" {
		v.Type = a.Type
	}
	for i, t := range a.Txns {
		v.Txns = append(v.Txns, fmt.Sprintf("T%d: op %d (invoked at %d), process %d, %s: %s", i+1, t.Index, t.InvokeIndex, t.Process, t.Type, short(t.Value, 400)))
	}
	for _, s := range a.Steps {
		line := fmt.Sprintf("T%d → T%d (%s)", s.From+1, s.To+1, s.Type)
		if s.Explanation != "" {
			line += ": " + s.Explanation
		}
		v.Steps = append(v.Steps, line)
	}
	if a.Key != nil {
		v.Details = append(v.Details, "key "+short(a.Key, 200))
	}
	if len(a.Values) > 0 {
		v.Details = append(v.Details, "values "+short(a.Values, 400))
	}
	if a.Mop != nil {
		v.Details = append(v.Details, "micro-op "+short(a.Mop, 200))
	}
	if a.Element != nil {
		v.Details = append(v.Details, "element "+short(a.Element, 200))
	}
	if a.Expected != nil {
		v.Details = append(v.Details, "expected "+short(a.Expected, 200))
	}
	return v
}
