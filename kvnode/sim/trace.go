package sim

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/chaoskv/chaos/history"
)

// A run replays from its seed only while everything it does is a function
// of that seed. A core or a shell that reads the wall clock, iterates a map
// into its output or starts a goroutine breaks that silently: the seed still
// runs, but its replay command shows another run. CheckDeterminism runs a
// seed twice, records a trace of each run (every event the agenda executes,
// then every history op) and reports the first step where the two differ.

// traceEvent is one step of a run, reduced to what a second run of the same
// seed must repeat exactly: its time, kind, target, and a digest of the
// bytes it carries.
type traceEvent struct {
	at     int64
	kind   eventKind // 0 for a history op
	who    int32
	gen    uint64
	digest uint64
}

type trace struct {
	ev []traceEvent
}

// event records e as the cluster is about to execute it.
func (t *trace) event(e event) {
	h := fnv.New64a()
	switch {
	case e.pkt != nil:
		fmt.Fprintf(h, "%d/%t/", e.pkt.to, e.pkt.refused)
		h.Write(e.pkt.b)
		if e.pkt.cl != nil {
			fmt.Fprintf(h, "/client %d", e.pkt.cl.idx)
		}
	case e.msg != nil:
		if f, ok := e.msg.(*frame); ok {
			h.Write(f.b)
		} else {
			// A message passed by value (no codec): its type is all that
			// prints without pointers.
			fmt.Fprintf(h, "%T", e.msg)
		}
	}
	t.ev = append(t.ev, traceEvent{at: e.at, kind: e.kind, who: e.who, gen: e.gen, digest: h.Sum64()})
}

// ops appends the history: runs whose events agree can still record
// different ops (a nondeterministic workload or checker input), and the
// sharded workloads are traced by their history alone.
func (t *trace) ops(h []history.Op) {
	var b []byte
	for i := range h {
		b = history.AppendJSON(b[:0], &h[i])
		d := fnv.New64a()
		d.Write(b)
		t.ev = append(t.ev, traceEvent{at: h[i].Time, who: int32(i), digest: d.Sum64()})
	}
}

var eventNames = map[eventKind]string{
	evTick: "tick", evDeliver: "deliver", evRequest: "request", evReply: "reply",
	evTimer: "timer", evFunc: "func", evSync: "sync",
}

// line describes event i of the trace; hist is the run's history, which
// history-op entries print from.
func (t *trace) line(i int, hist []history.Op) string {
	if i >= len(t.ev) {
		return fmt.Sprintf("#%d: (the run ended after %d events)", i, len(t.ev))
	}
	e := t.ev[i]
	at := time.Duration(e.at)
	if e.kind == 0 {
		op := ""
		if int(e.who) < len(hist) {
			op = string(history.AppendJSON(nil, &hist[e.who]))
		}
		return fmt.Sprintf("#%d %v history op %d %s", i, at, e.who, op)
	}
	return fmt.Sprintf("#%d %v %s who=%d gen=%d bytes=%016x", i, at, eventNames[e.kind], e.who, e.gen, e.digest)
}

// Divergence is where two runs of one seed stopped agreeing.
type Divergence struct {
	Seed int64
	// Event is the index of the first step (in the traces: the executed
	// events, then the history) where the runs differ; Events counts each
	// run's steps.
	Event  int
	Events [2]int
	// First and Second describe each run's steps from Event on, up to the
	// number of lines asked for.
	First, Second []string
	// Err says how the runs' errors differ, when they do.
	Err string
}

// String prints the divergence over several lines: a headline, then the
// two runs' steps side by side.
func (d *Divergence) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d is not deterministic: two runs differ at step %d (of %d and %d steps)", d.Seed, d.Event, d.Events[0], d.Events[1])
	if d.Err != "" {
		fmt.Fprintf(&b, "; %s", d.Err)
	}
	for i := range max(len(d.First), len(d.Second)) {
		if i < len(d.First) {
			fmt.Fprintf(&b, "\n  first:  %s", d.First[i])
		}
		if i < len(d.Second) {
			fmt.Fprintf(&b, "\n  second: %s", d.Second[i])
		}
	}
	return b.String()
}

// CheckDeterminism runs cfg twice and compares the runs step by step. It
// returns the first run's result, and a Divergence (with up to lines steps
// of each run from the first difference on) when the runs differ. An error
// means both runs failed to simulate, the same way.
func CheckDeterminism(cfg Config, lines int) (*Result, *Divergence, error) {
	var tr [2]*trace
	var res [2]*Result
	var errs [2]error
	for i := range tr {
		tr[i] = &trace{}
		c := cfg
		c.trace = tr[i]
		res[i], errs[i] = Run(c)
		if res[i] != nil {
			tr[i].ops(res[i].History)
		}
	}
	first := -1
	for i := range max(len(tr[0].ev), len(tr[1].ev)) {
		if i >= len(tr[0].ev) || i >= len(tr[1].ev) || tr[0].ev[i] != tr[1].ev[i] {
			first = i
			break
		}
	}
	errText := func(err error) string {
		if err == nil {
			return "none"
		}
		return err.Error()
	}
	var errDiff string
	if errText(errs[0]) != errText(errs[1]) {
		errDiff = fmt.Sprintf("simulation errors: first run %s, second run %s", errText(errs[0]), errText(errs[1]))
	}
	if first < 0 && errDiff == "" {
		if errs[0] != nil {
			return nil, nil, errs[0]
		}
		return res[0], nil, nil
	}
	d := &Divergence{Seed: cfg.Seed, Event: first, Events: [2]int{len(tr[0].ev), len(tr[1].ev)}, Err: errDiff}
	if first < 0 {
		d.Event = len(tr[0].ev)
	}
	d.First = describe(tr[0], res[0], d.Event, lines)
	d.Second = describe(tr[1], res[1], d.Event, lines)
	return res[0], d, nil
}

// describe prints n steps of t from step from on.
func describe(t *trace, res *Result, from, n int) []string {
	var hist []history.Op
	if res != nil {
		hist = res.History
	}
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, t.line(i, hist))
		if i >= len(t.ev) {
			break
		}
	}
	return out
}
