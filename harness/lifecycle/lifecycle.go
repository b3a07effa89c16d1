// Package lifecycle is the one sequence of a test's run, the same in both
// worlds: the workload phase, stopping the nemesis, healing, the final
// reads and what the run's tally holds. It is a sans-IO state machine: it
// takes events (a worker asks for its next operation, an operation
// completed, the cluster is healed) stamped with the caller's clock, and
// answers with decisions (this invocation, that worker is done, stop the
// nemesis, this final read on that process, retry it after a pause). It
// never blocks, sleeps, reads a clock or starts a goroutine.
//
// Two drivers run it. harness.Run drives it from a goroutine per worker
// under a lock, on wall time, where Docker operations block. The
// simulator (kvnode/sim) drives it from its one event loop on virtual
// time, where every operation is a callback. Only the I/O differs between
// them: connecting clients, recording, injecting and healing faults,
// waiting. So the rules (when the workload phase ends, when the nemesis is
// told to stop, which processes the final reads run as and how long they
// may retry) are written once, and a change to them lands in both worlds.
//
// The package stands apart from package harness, which is Docker-agnostic
// but carries the store, the report and its plots: the simulator is a
// backend of the harness and needs the sequence, not the store. It sits
// beside package workloads rather than in it because the sequence also
// rules the nemesis and healing, which are not a workload's concern;
// workloads.Workers keeps the process bookkeeping the sequence builds on.
package lifecycle

import (
	"errors"
	"fmt"
	"time"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
)

// Phase is where a run is in its sequence.
type Phase int

// The phases in order.
const (
	// Ready is before Start.
	Ready Phase = iota
	// Workload: workers invoke operations while the nemesis runs.
	Workload
	// Heal: every worker has ended. The driver ends every fault, waits
	// for the cluster to recover and calls Healed.
	Heal
	// FinalReads: the driver runs the reads FinalRead hands out.
	FinalReads
	// Done: the final reads are over; the driver checks the history.
	Done
)

func (p Phase) String() string {
	switch p {
	case Ready:
		return "ready"
	case Workload:
		return "workload"
	case Heal:
		return "heal"
	case FinalReads:
		return "final reads"
	case Done:
		return "done"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Limits bound a run's phases. Zero fields mean no limit, except where
// noted.
type Limits struct {
	// Ops bounds the workload phase's invocations (the Workers' op
	// limit).
	Ops int64
	// Time bounds the workload phase from Start.
	Time time.Duration
	// FinalReads bounds the final reads from Healed, retries included; a
	// read not done by then failed. It must be positive.
	FinalReads time.Duration
	// Retry is the pause before a final read's next attempt.
	Retry time.Duration
}

// Lifecycle is one run's sequence. It is not safe for concurrent use: a
// driver with several goroutines holds a lock around every call.
type Lifecycle struct {
	w       *workloads.Workers
	lim     Limits
	phase   Phase
	ended   []bool // worker i has ended
	running int    // workers not ended
	stop    bool   // the nemesis is told to stop
	start   time.Duration
	end     time.Duration

	reads    []workloads.Invocation
	read     int // the final read under way
	proc     history.Process
	deadline time.Duration
	last     workloads.Completion // the current final read's last attempt
	tried    bool                 // the current final read has had an attempt
	failed   []string
}

// New returns the sequence of a run whose n workers draw from gen, within
// lim.
func New(gen workloads.Generator, n int, lim Limits) (*Lifecycle, error) {
	w, err := workloads.NewWorkers(gen, n, lim.Ops)
	if err != nil {
		return nil, err
	}
	return Over(w, n, lim)
}

// Over returns the sequence of a run over w's n workers; lim.Ops is
// ignored (w has its own op limit).
func Over(w *workloads.Workers, n int, lim Limits) (*Lifecycle, error) {
	if lim.FinalReads <= 0 {
		return nil, errors.New("lifecycle: the final reads need a positive time limit")
	}
	if lim.Time < 0 || lim.Retry < 0 {
		return nil, fmt.Errorf("lifecycle: negative limit (time %v, retry %v)", lim.Time, lim.Retry)
	}
	return &Lifecycle{w: w, lim: lim, ended: make([]bool, n), running: n}, nil
}

// Start begins the workload phase at now.
func (l *Lifecycle) Start(now time.Duration) {
	if l.phase == Ready {
		l.phase, l.start = Workload, now
	}
}

// Phase is the run's phase.
func (l *Lifecycle) Phase() Phase { return l.phase }

// Process is the process worker i invokes as now.
func (l *Lifecycle) Process(i int) history.Process { return l.w.Process(i) }

// Next is worker i's turn at now: the invocation to perform, or false when
// the worker is done (the op budget is spent, the time limit has passed,
// or the phase is over). A worker that was told it is done stays done.
func (l *Lifecycle) Next(i int, now time.Duration) (workloads.Invocation, bool) {
	if l.phase != Workload || l.ended[i] || l.lim.Time > 0 && now >= l.start+l.lim.Time {
		l.Leave(i, now)
		return workloads.Invocation{}, false
	}
	inv, ok := l.w.Next()
	if !ok {
		l.Leave(i, now)
		return workloads.Invocation{}, false
	}
	if l.w.Budgeted() {
		// Every operation is invoked: the nemesis stops hurting the
		// cluster so the outstanding ones and the final reads can end.
		l.stop = true
	}
	return inv, true
}

// Complete turns worker i's completion of inv into the one the history
// records (workloads.Workers.Complete); after an Info, Process(i) is a new
// process.
func (l *Lifecycle) Complete(i int, inv workloads.Invocation, c workloads.Completion) workloads.Completion {
	return l.w.Complete(i, inv, c)
}

// Leave ends worker i at now, for a driver whose worker stopped on its
// own (it was interrupted, or its next slot lies past the time limit).
// When the last worker ends, the workload phase is over: the nemesis is
// told to stop and the run moves to Heal.
func (l *Lifecycle) Leave(i int, now time.Duration) {
	if l.ended[i] {
		return
	}
	l.ended[i] = true
	l.running--
	if l.running == 0 && l.phase <= Workload {
		l.phase, l.end, l.stop = Heal, now, true
	}
}

// StopNemesis reports whether the nemesis must stop now: no further
// operation will be invoked. It is told once and stays told.
func (l *Lifecycle) StopNemesis() bool { return l.stop }

// Healed says the cluster is healed and recovered at now: the final reads
// begin, each on a process no operation has used.
func (l *Lifecycle) Healed(now time.Duration) {
	if l.phase != Heal {
		return
	}
	l.phase = FinalReads
	l.reads = l.w.FinalReads()
	l.deadline = now + l.lim.FinalReads
	l.proc = l.w.FinalProcess()
	l.finishIfDone()
}

// FinalRead is the final read to attempt at now and the process to run it
// as, or false when the final reads are over. The final reads run one at
// a time on one process, a new one after an Info; one not done by the
// deadline has failed, and so have those after it.
func (l *Lifecycle) FinalRead(now time.Duration) (workloads.Invocation, history.Process, bool) {
	if l.phase != FinalReads {
		return workloads.Invocation{}, 0, false
	}
	if now >= l.deadline {
		for ; l.read < len(l.reads); l.read++ {
			inv := l.reads[l.read]
			why := "never attempted"
			if l.tried {
				why = fmt.Sprintf("last attempt %s", l.last.Type)
				if l.last.Error != "" {
					why += ": " + l.last.Error
				}
			}
			l.failed = append(l.failed, fmt.Sprintf("final read %s %v did not succeed within %v of healing (%s)", inv.F, inv.Value, l.lim.FinalReads, why))
			l.tried = false
		}
		l.phase = Done
		return workloads.Invocation{}, 0, false
	}
	return l.reads[l.read], l.proc, true
}

// CompleteFinal records how the attempt at the current final read ended
// at now: the completion the history records and the pause before the
// next FinalRead (zero after a success).
func (l *Lifecycle) CompleteFinal(c workloads.Completion) (workloads.Completion, time.Duration) {
	if l.phase != FinalReads {
		return c, 0
	}
	inv := l.reads[l.read]
	l.w.InvokeFinal()
	c = l.w.CompleteFinal(inv, c)
	l.last, l.tried = c, true
	switch c.Type {
	case history.Ok:
		l.read++
		l.tried = false
		l.finishIfDone()
		return c, 0
	case history.Info:
		// The read may still take effect: its process is retired.
		l.proc = l.w.FinalProcess()
	}
	return c, l.lim.Retry
}

func (l *Lifecycle) finishIfDone() {
	if l.read >= len(l.reads) {
		l.phase = Done
	}
}

// Tally is what a run's sequence counted.
type Tally struct {
	// Phase counts the workload phase's operations, Final the final
	// reads' attempts.
	Phase, Final workloads.Tally
	// WorkloadStart and WorkloadEnd bound the workload phase on the
	// driver's clock; WorkloadEnd is zero while it runs.
	WorkloadStart, WorkloadEnd time.Duration
	// MaxProcess is the highest process number used.
	MaxProcess history.Process
	// FinalFailed says which final reads did not succeed in time; a run
	// whose final reads all succeeded has none.
	FinalFailed []string
}

// Tally returns the run's counts so far.
func (l *Lifecycle) Tally() Tally {
	return Tally{Phase: l.w.Phase(), Final: l.w.Final(), WorkloadStart: l.start, WorkloadEnd: l.end,
		MaxProcess: l.w.MaxProcess(), FinalFailed: l.failed}
}
