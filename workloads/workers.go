package workloads

import (
	"fmt"

	"github.com/chaoskv/chaos/history"
)

// Tally counts operations by how they ended.
type Tally struct {
	Invoked, Ok, Fail, Info int64
}

// Completed is how many of the invoked operations have ended.
func (t Tally) Completed() int64 { return t.Ok + t.Fail + t.Info }

func (t *Tally) count(typ history.Type) {
	switch typ {
	case history.Ok:
		t.Ok++
	case history.Fail:
		t.Fail++
	default:
		t.Info++
	}
}

// Workers is the bookkeeping a test keeps around its generator, the same
// in both worlds: chaos run calls it from a goroutine per worker under a
// lock, chaos sim from its one event loop on virtual time. It decides
// which process a worker invokes as, when the op budget is spent, what a
// completion means for the history, and which processes the final reads
// run as; the caller does the I/O and the recording.
//
// Process numbering follows Jepsen: worker w starts as process w, and a
// process whose operation ended in Info is retired for good (the request
// may still take effect at any later time), its worker continuing as
// process p+n for n workers. Final reads run as fresh processes above
// every number used before.
type Workers struct {
	gen   Generator
	n     int
	limit int64
	procs []history.Process
	max   history.Process
	phase Tally // the workload phase
	final Tally // the final reads
}

// NewWorkers returns the bookkeeping for n workers drawing from gen, with
// at most opLimit invocations in the workload phase (0: no limit).
func NewWorkers(gen Generator, n int, opLimit int64) (*Workers, error) {
	if n < 1 {
		return nil, fmt.Errorf("workers: need at least one worker, got %d", n)
	}
	if opLimit < 0 {
		return nil, fmt.Errorf("workers: negative op limit %d", opLimit)
	}
	w := &Workers{gen: gen, n: n, limit: opLimit, procs: make([]history.Process, n), max: history.Process(n - 1)}
	for i := range w.procs {
		w.procs[i] = history.Process(i)
	}
	return w, nil
}

// Process is the process worker i currently invokes as.
func (w *Workers) Process(i int) history.Process { return w.procs[i] }

// Next draws the next invocation, or reports false once the op
// budget is spent.
func (w *Workers) Next() (Invocation, bool) {
	if w.limit > 0 && w.phase.Invoked >= w.limit {
		return Invocation{}, false
	}
	w.phase.Invoked++
	return w.gen.Next(), true
}

// Budgeted reports whether the op budget is spent: no further Next will
// yield an invocation.
func (w *Workers) Budgeted() bool { return w.limit > 0 && w.phase.Invoked >= w.limit }

// Complete turns worker i's completion of inv into the one the history
// records, counts it and, after an Info, retires the worker's process.
// A completion of a type that is not an outcome is unknown (Info), and a
// completion other than Ok without a value carries the invocation's, as
// Jepsen records them.
func (w *Workers) Complete(i int, inv Invocation, c Completion) Completion {
	c = normalize(inv, c)
	w.phase.count(c.Type)
	if c.Type == history.Info {
		w.procs[i] += history.Process(w.n)
		w.max = max(w.max, w.procs[i])
	}
	return c
}

// FinalReads returns the generator's final reads; they run one at a
// time, each on a process from FinalProcess.
func (w *Workers) FinalReads() []Invocation {
	return w.gen.FinalReads()
}

// FinalProcess returns a process no operation has used: for the first
// final read, and again after a final read ended in Info.
func (w *Workers) FinalProcess() history.Process {
	w.max++
	return w.max
}

// InvokeFinal counts one attempt at a final read.
func (w *Workers) InvokeFinal() { w.final.Invoked++ }

// CompleteFinal turns a final read's completion into the one the history
// records and counts it, as Complete does for the workload phase.
func (w *Workers) CompleteFinal(inv Invocation, c Completion) Completion {
	c = normalize(inv, c)
	w.final.count(c.Type)
	return c
}

// Phase counts the workload phase's operations.
func (w *Workers) Phase() Tally { return w.phase }

// Final counts the final reads' attempts.
func (w *Workers) Final() Tally { return w.final }

// MaxProcess is the highest process number used so far.
func (w *Workers) MaxProcess() history.Process { return w.max }

func normalize(inv Invocation, c Completion) Completion {
	switch c.Type {
	case history.Ok, history.Fail, history.Info:
	default:
		c.Error = fmt.Sprintf("client returned completion type %v: %s", c.Type, c.Error)
		c.Type = history.Info
	}
	if c.Value == nil && c.Type != history.Ok {
		c.Value = inv.Value
	}
	return c
}
