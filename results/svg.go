package results

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// esc escapes text for HTML and SVG, both in element content and in
// quoted attributes.
func esc(s string) string { return template.HTMLEscapeString(s) }

// Outcome colours, shared by every plot and the timeline.
var typeColor = map[string]string{"ok": "#2e7d32", "fail": "#c62828", "info": "#f9a825"}

// faultPalette colours fault windows by kind, in order of appearance.
var faultPalette = []string{"#90caf9", "#ce93d8", "#ffcc80", "#a5d6a7", "#f48fb1", "#b0bec5", "#80deea", "#e6ee9c"}

// plot is a hand-written SVG chart with a time x axis in seconds.
type plot struct {
	b                     strings.Builder
	w, h                  float64 // whole image
	left, right, top, bot float64 // margins
	x0, x1, y0, y1        float64 // data ranges
	logY                  bool
	title, xLabel, yLabel string
	legend                [][2]string // label, colour
}

func newPlot(title, yLabel string, x1, y0, y1 float64, logY bool) *plot {
	if x1 <= 0 {
		x1 = 1
	}
	if logY {
		y0 = math.Max(y0, 1e-3)
		y0 = math.Pow(10, math.Floor(math.Log10(y0)))
		y1 = math.Pow(10, math.Ceil(math.Log10(math.Max(y1, y0*10))))
	} else {
		if y1 <= y0 {
			y1 = y0 + 1
		}
		y1 = niceCeil(y1)
	}
	p := &plot{w: 900, h: 300, left: 64, right: 16, top: 28, bot: 40, x0: 0, x1: x1, y0: y0, y1: y1,
		logY: logY, title: title, xLabel: "time (s)", yLabel: yLabel}
	return p
}

func (p *plot) px(x float64) float64 {
	return p.left + (x-p.x0)/(p.x1-p.x0)*(p.w-p.left-p.right)
}

func (p *plot) py(y float64) float64 {
	var f float64
	if p.logY {
		y = math.Max(y, p.y0)
		f = (math.Log10(y) - math.Log10(p.y0)) / (math.Log10(p.y1) - math.Log10(p.y0))
	} else {
		f = (y - p.y0) / (p.y1 - p.y0)
	}
	f = math.Min(math.Max(f, 0), 1)
	return p.h - p.bot - f*(p.h-p.top-p.bot)
}

// shade draws the fault windows behind the data, labelled at the top.
func (p *plot) shade(ws []window, colors map[string]string) {
	lane := map[string]int{}
	for _, w := range ws {
		if _, ok := lane[w.fault]; !ok {
			lane[w.fault] = len(lane)
		}
	}
	for _, w := range ws {
		x0, x1 := p.px(float64(w.start)/1e9), p.px(float64(w.end)/1e9)
		opacity := 0.35
		if x1-x0 < 3 {
			// An action over in a blink (a reconfiguration, say) would
			// vanish at this scale: a darker line and a tick above the
			// frame mark it.
			x1, opacity = x0+2, 0.7
			fmt.Fprintf(&p.b, `<path d="M%.1f %.1fl-4 -6h8z" fill="%s"/>`, x0+1, p.top, colors[w.fault])
		}
		if w.failed != "" {
			opacity = 0.12
		}
		fmt.Fprintf(&p.b, `<rect class="fault-shade" data-fault="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%.2f"><title>%s</title></rect>`,
			esc(w.fault), x0, p.top, x1-x0, p.h-p.top-p.bot, colors[w.fault], opacity, esc(w.describe()))
		if x1-x0 > 24 {
			fmt.Fprintf(&p.b, `<text x="%.1f" y="%.1f" font-size="10" fill="#333">%s</text>`, x0+2, p.top+10+10*float64(lane[w.fault]%3), esc(w.fault))
		}
	}
}

func (p *plot) axes() {
	b := &p.b
	x0, x1, y0, y1 := p.left, p.w-p.right, p.top, p.h-p.bot
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`, x0, y0, x1-x0, y1-y0)
	fmt.Fprintf(b, `<text x="%.1f" y="16" font-size="13" font-weight="bold">%s</text>`, p.left, esc(p.title))
	for _, t := range linearTicks(p.x0, p.x1, 10) {
		x := p.px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>`,
			x, y0, x, y1, x, y1+13, fmtTick(t))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`, (x0+x1)/2, p.h-6, esc(p.xLabel))
	var yt []float64
	if p.logY {
		for v := p.y0; v <= p.y1*1.0001; v *= 10 {
			yt = append(yt, v)
		}
	} else {
		yt = linearTicks(p.y0, p.y1, 5)
	}
	for _, t := range yt {
		y := p.py(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" font-size="10" text-anchor="end">%s</text>`,
			x0, y, x1, y, x0-4, y+3, fmtTick(t))
	}
	fmt.Fprintf(b, `<text transform="translate(12,%.1f) rotate(-90)" font-size="11" text-anchor="middle">%s</text>`, (y0+y1)/2, esc(p.yLabel))
}

func (p *plot) drawLegend() {
	x := p.w - p.right - 8
	for i := len(p.legend) - 1; i >= 0; i-- {
		l := p.legend[i]
		wd := float64(len(l[0]))*6.5 + 18
		x -= wd
		fmt.Fprintf(&p.b, `<rect x="%.1f" y="7" width="10" height="10" fill="%s"/><text x="%.1f" y="16" font-size="11">%s</text>`, x, l[1], x+13, esc(l[0]))
	}
}

// svg returns the finished chart. The body holds the data marks, drawn
// after the shading and the grid.
func (p *plot) svg(windows []window, colors map[string]string, body string) template.HTML {
	var out strings.Builder
	fmt.Fprintf(&out, `<svg class="plot" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img"><title>%s</title>`, p.w, p.h, p.w, p.h, esc(p.title))
	p.shade(windows, colors)
	p.axes()
	out.WriteString(p.b.String())
	out.WriteString(body)
	p.b.Reset()
	p.drawLegend()
	out.WriteString(p.b.String())
	out.WriteString(`</svg>`)
	return template.HTML(out.String())
}

// polyline draws a series of (x, y) data points.
func (p *plot) polyline(b *strings.Builder, xs, ys []float64, color string, dash bool) {
	if len(xs) == 0 {
		return
	}
	b.WriteString(`<polyline fill="none" stroke-width="1.5" stroke="` + color + `"`)
	if dash {
		b.WriteString(` stroke-dasharray="4 3"`)
	}
	b.WriteString(` points="`)
	for i := range xs {
		fmt.Fprintf(b, "%.1f,%.1f ", p.px(xs[i]), p.py(ys[i]))
	}
	b.WriteString(`"/>`)
}

// linearTicks returns about n round tick values covering [lo, hi].
func linearTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) || n < 1 {
		return []float64{lo}
	}
	step := niceStep((hi - lo) / float64(n))
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
		if len(out) > 50 {
			break
		}
	}
	return out
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func niceCeil(v float64) float64 {
	s := niceStep(v / 5)
	return math.Ceil(v/s) * s
}

func fmtTick(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6:
		return fmt.Sprintf("%.0e", v)
	case math.Abs(v) >= 1:
		return trimZeros(fmt.Sprintf("%.2f", v))
	default:
		return trimZeros(fmt.Sprintf("%.4f", v))
	}
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
