package results

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// call is one client operation: its invocation and its completion.
type call struct {
	start, end int64 // ns since the test started; end is -1 when it never completed
	proc       int64
	f          string
	typ        history.Type // ok, fail or info (info also for never completed)
	inv, comp  int          // positions in the history; comp is -1 when never completed
	expected   bool         // a fail that is the op's normal answer (ExpectedFail)
	final      bool         // a final read, invoked after the workload phase
	group      string       // the node or group that served it, when recorded
}

func (c *call) latency() int64 { return c.end - c.start }

// window is one fault's time in effect, from the completion of the op that
// started it to the completion of the op that ended it (or the history's
// end when nothing ended it).
//
// Nemesis ops that neither start nor stop a held fault (a reconfiguration,
// a clock bump, any kind a later nemesis adds) are events: their window
// runs from the op's invocation to its completion, in a lane named by f.
// A nemesis op that reported an error is drawn too, marked failed, but
// is not a fault window for availability.
type window struct {
	fault      string // partition, kill, pause, reconfig, ...
	start, end int64
	open       bool   // never ended within the history
	value      string // what the starting op said (nodes, grudge)
	stopValue  string
	event      bool   // an action with a duration, not a held fault
	failed     string // the error of a nemesis op that failed
}

// describe says what w was, for a tooltip.
func (w *window) describe() string {
	s := fmt.Sprintf("%s %s–%s", w.fault, secs(w.start), secs(w.end))
	if w.open {
		s += " (never ended in the history)"
	}
	if w.value != "" {
		s += ": " + w.value
	}
	if w.failed != "" {
		s += "\nfailed: " + cut(w.failed, 300)
	}
	return s
}

// isFault reports whether w counts as a fault for availability.
func (w *window) isFault() bool { return w.failed == "" }

// nemesisEvent is one nemesis op completion (or a lone record), for the
// nemesis table.
type nemesisEvent struct {
	Time  int64
	F     string
	Value string
	Err   string
}

// analysis is what the report draws from a history, computed in one pass
// plus sorts, so a million ops take well under a second or two.
type analysis struct {
	ops         int
	calls       []call // sorted by start
	fs          []string
	span        int64 // last op time
	counts      map[string]map[history.Type]int
	totals      map[history.Type]int
	windows     []window
	configs     []configSpan // replica group configurations, by membership changes
	nemesis     []nemesisEvent
	pairWarning string
	// workloadEnd is when the workload phase ended, when known (0
	// otherwise); calls invoked after it are final reads.
	workloadEnd int64
}

// faultOf names the fault an op starts or stops, and whether it starts it.
// Jepsen's conventions: start-X/stop-X, kill/start, pause/resume. In a
// Jepsen history (jepsen), a plain start with no kill open and a plain
// stop are the generic nemesis's, which Jepsen calls "nemesis".
func faultOf(f string, jepsen bool, open map[string]int) (fault string, starts, ok bool) {
	_, killed := open["kill"]
	switch {
	case f == "kill", f == "pause":
		return f, true, true
	case jepsen && f == "start" && !killed:
		return "nemesis", true, true
	case jepsen && f == "stop":
		return "nemesis", false, true
	case f == "start":
		return "kill", false, true
	case f == "resume":
		return "pause", false, true
	case strings.HasPrefix(f, "start-"):
		return strings.TrimPrefix(f, "start-"), true, true
	case strings.HasPrefix(f, "stop-"):
		return strings.TrimPrefix(f, "stop-"), false, true
	}
	return "", false, false
}

// analyze walks a history. It never fails: a malformed history (a
// completion without an invocation, say) still gives a report, with the
// problem named in pairWarning.
func analyze(ops []history.Op) *analysis {
	a := &analysis{
		ops:    len(ops),
		counts: map[string]map[history.Type]int{},
		totals: map[history.Type]int{},
		// About half the ops are client invocations: growing the slice
		// instead would copy it a dozen times.
		calls: make([]call, 0, len(ops)/2+1),
	}
	outstanding := map[history.Process]int{} // process -> index into a.calls
	openWin := map[string]int{}              // fault -> index into a.windows
	fset := map[string]bool{}
	nemInvoked := map[string][]int{} // f -> nemesis invocations not yet completed
	openConfig := map[string]int{}   // group -> index into a.configs of its current configuration
	// Jepsen logs each nemesis action as two info ops, before and after;
	// a history whose nemesis never invokes is read that way: the first
	// of each f opens the action, the next completes it.
	jepsen := !slices.ContainsFunc(ops, func(op history.Op) bool { return op.Process.IsNemesis() && op.Type == history.Invoke })
	orphans := 0
	for i := range ops {
		op := &ops[i]
		if op.Time > a.span {
			a.span = op.Time
		}
		if op.Process.IsNemesis() {
			if op.Type == history.Invoke || jepsen && len(nemInvoked[op.F]) == 0 {
				nemInvoked[op.F] = append(nemInvoked[op.F], i)
				continue
			}
			invokedAt := op.Time
			if q := nemInvoked[op.F]; len(q) > 0 {
				invokedAt = ops[q[0]].Time
				nemInvoked[op.F] = q[1:]
			}
			a.nemesisOp(op, invokedAt, openWin, jepsen)
			a.memberChange(op, openConfig)
			a.nemesis = append(a.nemesis, nemesisEvent{Time: op.Time, F: op.F, Value: short(op.Value, 200), Err: op.Error})
			continue
		}
		if op.Type == history.Invoke {
			if _, busy := outstanding[op.Process]; busy {
				// The earlier invocation never completed; it stays info.
				orphans++
			}
			outstanding[op.Process] = len(a.calls)
			a.calls = append(a.calls, call{start: op.Time, end: -1, proc: int64(op.Process), f: op.F, typ: history.Info, inv: i, comp: -1})
			continue
		}
		j, busy := outstanding[op.Process]
		if !busy {
			orphans++
			continue
		}
		delete(outstanding, op.Process)
		c := &a.calls[j]
		c.end, c.typ, c.comp = op.Time, op.Type, i
		c.expected, c.group = ExpectedFail(op), op.Node
	}
	// A nemesis action still outstanding at the history's end may be in
	// effect to the end.
	var pending []int
	for _, q := range nemInvoked {
		pending = append(pending, q...)
	}
	slices.Sort(pending)
	for _, i := range pending {
		op := &ops[i]
		if _, _, held := faultOf(op.F, jepsen, openWin); held {
			a.nemesisOp(op, op.Time, openWin, jepsen)
			continue
		}
		a.windows = append(a.windows, window{fault: op.F, start: op.Time, event: true, open: true, value: faultLabel(op.Value)})
	}
	for _, w := range openWin {
		a.windows[w].open = true
	}
	for i := range a.windows {
		if a.windows[i].open {
			a.windows[i].end = a.span
		}
	}
	for i := range a.configs {
		if a.configs[i].end < 0 {
			a.configs[i].end = a.span
		}
	}
	if orphans > 0 {
		a.pairWarning = fmt.Sprintf("%d ops did not pair up (a completion without an invocation, or an invocation while the process had one outstanding)", orphans)
	}
	for i := range a.calls {
		c := &a.calls[i]
		m := a.counts[c.f]
		if m == nil {
			m = map[history.Type]int{}
			a.counts[c.f] = m
			fset[c.f] = true
		}
		m[c.typ]++
		a.totals[c.typ]++
	}
	for f := range fset {
		a.fs = append(a.fs, f)
	}
	sort.Strings(a.fs)
	// Invocations are appended in history order, which the recorder
	// writes in time order; sort anyway, stably, for histories that are
	// not.
	if !slices.IsSortedFunc(a.calls, func(x, y call) int { return cmpInt(x.start, y.start) }) {
		slices.SortStableFunc(a.calls, func(x, y call) int { return cmpInt(x.start, y.start) })
	}
	sort.SliceStable(a.windows, func(i, j int) bool { return a.windows[i].start < a.windows[j].start })
	return a
}

// nemesisOp follows fault windows through one nemesis completion (or an
// invocation never completed) of an op invoked at invokedAt.
func (a *analysis) nemesisOp(op *history.Op, invokedAt int64, open map[string]int, jepsen bool) {
	at := op.Time
	fault, starts, held := faultOf(op.F, jepsen, open)
	if !held || op.Error != "" {
		// An event, or a fault action that failed: drawn over the time it
		// took, in its own lane.
		w := window{fault: op.F, start: invokedAt, end: at, event: true, value: faultLabel(op.Value), failed: op.Error}
		if held {
			w.fault = fault
		}
		a.windows = append(a.windows, w)
		return
	}
	if starts {
		if _, already := open[fault]; already {
			return
		}
		open[fault] = len(a.windows)
		a.windows = append(a.windows, window{fault: fault, start: at, end: at, value: faultLabel(op.Value)})
		return
	}
	if w, isOpen := open[fault]; isOpen {
		a.windows[w].end = at
		a.windows[w].stopValue = faultLabel(op.Value)
		delete(open, fault)
	}
}

// faultLabel names what a fault hit in a few words: the components of a
// partition, or the nodes of a kill or pause, when the nemesis recorded
// them so; otherwise the value itself.
//
// A map with an "op" (a reconfiguration: {"op": "move", "shard": 3,
// "group": 2}) reads as "move group=2 shard=3".
func faultLabel(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return short(v, 200)
	}
	for _, k := range []string{"components", "nodes"} {
		if x, ok := m[k]; ok {
			return short(x, 200)
		}
	}
	if op, ok := m["op"].(string); ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "op" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString(op)
		for _, k := range keys {
			b.WriteString(" " + k + "=")
			appendDisplay(&b, m[k], 200)
		}
		return cut(b.String(), 200)
	}
	return short(v, 200)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// short renders a history value for display, cut to at most n bytes.
// Strings are quoted Go-style rather than as JSON, so that '<' reads as
// '<' once the page escapes it.
func short(v any, n int) string {
	if v == nil {
		return ""
	}
	var b strings.Builder
	appendDisplay(&b, v, n+1)
	return cut(b.String(), n)
}

// appendDisplay writes v to b until b holds more than limit bytes.
func appendDisplay(b *strings.Builder, v any, limit int) {
	if b.Len() > limit {
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("nil")
	case string:
		b.WriteString(strconv.Quote(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(' ')
			}
			if b.Len() > limit {
				break
			}
			appendDisplay(b, e, limit)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			if b.Len() > limit {
				break
			}
			b.WriteString(strconv.Quote(k))
			b.WriteString(": ")
			appendDisplay(b, x[k], limit)
		}
		b.WriteByte('}')
	case json.Number:
		b.WriteString(string(x))
	case bool, int, int64, uint64, float64:
		b.Write(history.AppendValue(nil, v))
	default:
		// Other types (typed maps and slices, structs) print as their
		// JSON form would after a trip through results.json.
		var generic any
		if roundTrip(v, &generic) {
			switch generic.(type) {
			case []any, map[string]any, string, json.Number:
				appendDisplay(b, generic, limit)
				return
			}
		}
		b.Write(history.AppendValue(nil, v))
	}
}

func secs(ns int64) string { return fmt.Sprintf("%.2fs", float64(ns)/1e9) }
