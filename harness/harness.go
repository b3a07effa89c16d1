// Package harness runs one test's lifecycle against a cluster a Backend
// provides. Run goes through its phases in order, each a function of its
// own that either completes or ends the test with its error:
//
//   - setup: create the cluster, arm the nemesis (refusing a fault the
//     cluster cannot inject), wait until it is healthy;
//   - run: drive concurrent workload clients and the nemesis for the time
//     (or op) limit, recording every invocation and completion;
//   - heal: end every fault and wait for the cluster to recover;
//   - final reads: read what the workload touched on fresh processes,
//     close the history and collect the nodes' files;
//   - check: judge the history with the checker the workload returns;
//   - store: write results.json and the report.
//
// Teardown is one path that runs after the phases whichever of them
// stopped, on setup failure and on interruption too: it collects node
// files not yet saved, removes the cluster, closes the history and records
// the run's status, end and timings in test.json. A configuration that
// cannot start (ErrConfig) fails before anything is created.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/harness/lifecycle"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
)

// Cluster is what a backend set up: how workload clients reach the system
// under test, and how the nemesis hurts it.
type Cluster struct {
	SUT workloads.SUT
	// Target receives the nemesis's faults; nil when the backend cannot
	// inject any (then a test with fault kinds is refused).
	Target nemesis.Target
	// Leaders finds each replica group's leader, for partition-leader;
	// nil when the backend cannot tell.
	Leaders nemesis.LeaderFunc
}

// Backend is the cluster the test runs against: Docker containers, or the
// simulator.
type Backend interface {
	// Setup creates and starts the cluster. dir is the run's directory in
	// the store; node files belong in dir/nodes/<node>/.
	Setup(ctx context.Context, dir string) (*Cluster, error)
	// WaitHealthy returns once every node serves requests, or with an
	// error when ctx ends first.
	WaitHealthy(ctx context.Context) error
	// Collect saves each node's logs into dir/nodes/<node>/.
	Collect(ctx context.Context, dir string) error
	// Close removes the cluster. The harness calls it on every path unless
	// told to leave the cluster running.
	Close(ctx context.Context) error
}

// ErrInterrupted is returned when the run's context ended before the test
// finished (Ctrl-C, SIGTERM).
var ErrInterrupted = errors.New("test interrupted")

// ErrConfig is wrapped by the errors of a test that could not start
// because its configuration is unusable (a missing workload, a bad name, a
// store that cannot be written). Nothing is left in the store then.
var ErrConfig = errors.New("unusable test configuration")

// Config is one test run.
type Config struct {
	Name     string // test name, the store's first path element
	Workload workloads.Workload
	Backend  Backend
	// Nemesis configures the faults; no kinds means none. Its Seed is
	// ignored: the nemesis is seeded from Seed.
	Nemesis nemesis.Config
	// CheckTimeout bounds the workload's checker (0: the checker's own
	// default); past it the verdict is unknown.
	CheckTimeout time.Duration

	Concurrency int           // worker count (default 10)
	Rate        float64       // total invocations per second; 0 = unpaced
	TimeLimit   time.Duration // how long the workload runs (default 60s)
	OpLimit     int64         // stop after this many invocations; 0 = no limit
	Seed        int64

	Store        string // store root (default "store")
	LeaveRunning bool   // skip Backend.Close

	OpTimeout        time.Duration // per client operation (default 5s)
	HealthyTimeout   time.Duration // for the cluster to come up (default 2m)
	RecoveryTimeout  time.Duration // for the cluster to recover after healing (default 30s)
	FinalReadTimeout time.Duration // for the final reads to succeed (default 60s)
	TeardownTimeout  time.Duration // for Backend.Close (default 1m)
	FlushInterval    time.Duration // history flush period (default 100ms)

	// Parameters are recorded verbatim in test.json next to the harness's
	// own.
	Parameters map[string]any
	// KvnodeVersion identifies the node binary, for test.json.
	KvnodeVersion string

	// Progress receives the status line (Terminal) or nothing (log lines
	// go through slog instead). Nil means no progress output.
	Progress io.Writer
	// Terminal says Progress is a terminal: rewrite one line in place.
	Terminal bool
	// ProgressInterval is how often progress is shown (default 250ms on a
	// terminal, 10s in logs).
	ProgressInterval time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 10
	}
	def(&c.TimeLimit, 60*time.Second)
	def(&c.OpTimeout, 5*time.Second)
	def(&c.HealthyTimeout, 2*time.Minute)
	def(&c.RecoveryTimeout, 30*time.Second)
	def(&c.FinalReadTimeout, 60*time.Second)
	def(&c.TeardownTimeout, time.Minute)
	def(&c.FlushInterval, 100*time.Millisecond)
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 10 * time.Second
		if c.Terminal {
			c.ProgressInterval = 250 * time.Millisecond
		}
	}
	if c.Store == "" {
		c.Store = "store"
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Workload == nil:
		return errors.New("harness: no workload")
	case c.Backend == nil:
		return errors.New("harness: no backend")
	case c.Workload.Checker() == nil:
		return fmt.Errorf("harness: workload %s has no checker", c.Workload.Name())
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("harness: rate %v is not a finite non-negative number", c.Rate)
	case c.OpLimit < 0:
		return fmt.Errorf("harness: op limit %d is negative", c.OpLimit)
	}
	return results.ValidateName(c.Name)
}

// Outcome is a finished test.
type Outcome struct {
	Valid   checker.Validity
	Dir     string // the run directory
	Summary results.Summary
}

type runner struct {
	cfg      Config
	sut      workloads.SUT
	nem      *nemesis.Nemesis
	active   activeFaults
	rec      *recorder
	pace     *pacer
	start    time.Time // workload phase start
	end      time.Time // workload phase end
	phaseOps int64     // completions during the workload phase
	nemErr   error     // why the nemesis stopped before it was told to

	// mu guards life, the run's sequence, which the worker goroutines
	// share; stopNemesis ends the nemesis once life says so.
	mu          sync.Mutex
	life        *lifecycle.Lifecycle
	stopNemesis context.CancelFunc

	// firstOp is when the first client operation was invoked, in
	// nanoseconds after the run's start; 0 until then.
	firstOp  atomic.Int64
	runStart time.Time
}

// reportFiles lists the run directory's entries for the report's links.
func reportFiles(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if n == results.ReportFile || n[0] == '.' {
			continue
		}
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (c Config) parameters() map[string]any {
	p := map[string]any{
		"workload":           c.Workload.Name(),
		"concurrency":        c.Concurrency,
		"rate":               c.Rate,
		"time-limit":         c.TimeLimit.String(),
		"op-limit":           c.OpLimit,
		"op-timeout":         c.OpTimeout.String(),
		"healthy-timeout":    c.HealthyTimeout.String(),
		"recovery-timeout":   c.RecoveryTimeout.String(),
		"final-read-timeout": c.FinalReadTimeout.String(),
		"leave-running":      c.LeaveRunning,
		"checker":            c.Workload.Checker(),
	}
	for k, v := range c.Parameters {
		p[k] = v
	}
	return p
}

// main runs the workers and the nemesis through the workload phase: until
// the time limit, the op limit or ctx ends it (lifecycle.Lifecycle rules
// which, and when the nemesis stops).
func (r *runner) main(ctx context.Context) {
	r.start = time.Now()
	stopAt := r.start.Add(r.cfg.TimeLimit)
	r.mu.Lock()
	r.life.Start(r.start.Sub(r.runStart))
	r.mu.Unlock()
	wctx, cancel := context.WithDeadline(ctx, stopAt)
	defer cancel()
	nctx, stopNemesis := context.WithCancel(wctx)
	defer stopNemesis()
	r.stopNemesis = stopNemesis
	if r.cfg.Rate > 0 {
		r.pace = &pacer{interval: time.Duration(float64(time.Second) / r.cfg.Rate)}
	}
	progressDone := make(chan struct{})
	progressStop := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(progressStop)
	}()

	var wg sync.WaitGroup
	if r.nem != nil {
		wg.Go(func() {
			if err := r.nem.Run(nctx); err != nil && nctx.Err() == nil {
				r.nemErr = err
				slog.Error("nemesis stopped early; the workload continues without faults", "err", err)
			}
		})
	}
	for i := range r.cfg.Concurrency {
		wg.Go(func() { r.worker(ctx, wctx, i, stopAt) })
	}
	wg.Wait()
	r.mu.Lock()
	r.end = r.runStart.Add(r.life.Tally().WorkloadEnd)
	r.mu.Unlock()
	r.phaseOps = r.completed()
	close(progressStop)
	<-progressDone
}

// now is the time since the run's start, the clock the lifecycle runs on.
func (r *runner) now() time.Duration { return time.Since(r.runStart) }

// next draws worker id's next invocation, or false once the workload
// phase is over for it; it stops the nemesis when the lifecycle says so.
func (r *runner) next(id int) (workloads.Invocation, bool) {
	r.mu.Lock()
	inv, ok := r.life.Next(id, r.now())
	stop := r.life.StopNemesis()
	r.mu.Unlock()
	if stop {
		r.stopNemesis()
	}
	return inv, ok
}

// leave ends worker id.
func (r *runner) leave(id int) {
	r.mu.Lock()
	r.life.Leave(id, r.now())
	stop := r.life.StopNemesis()
	r.mu.Unlock()
	if stop {
		r.stopNemesis()
	}
}

// invoked is how many operations the workload phase invoked.
func (r *runner) invoked() int64 {
	phase, _ := r.tally()
	return phase.Invoked
}

// tally returns the counts of the workload phase and of the final reads.
func (r *runner) tally() (phase, final workloads.Tally) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.life.Tally()
	return t.Phase, t.Final
}

// worker drives one logical client. ctx is the run's context (its ops are
// cancelled only by an interrupt); wctx ends with the workload phase.
func (r *runner) worker(ctx, wctx context.Context, id int, stopAt time.Time) {
	defer r.leave(id)
	r.mu.Lock()
	proc := r.life.Process(id)
	r.mu.Unlock()
	ack := make(chan struct{}, 1)
	var client workloads.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	for wctx.Err() == nil {
		if client == nil {
			c, err := r.cfg.Workload.NewClient(wctx, r.sut, proc)
			if err != nil {
				slog.Debug("open client", "process", proc, "err", err)
				sleepCtx(wctx, 100*time.Millisecond)
				continue
			}
			client = c
		}
		if !r.pace.wait(wctx, stopAt) {
			return
		}
		inv, ok := r.next(id)
		if !ok {
			return
		}
		comp := r.execute(ctx, client, proc, inv, ack, func(c workloads.Completion) workloads.Completion {
			r.mu.Lock()
			defer r.mu.Unlock()
			c = r.life.Complete(id, inv, c)
			proc = r.life.Process(id)
			return c
		})
		if comp.Type == history.Info {
			// The process is retired (workloads.Workers): its client goes
			// with it.
			client.Close()
			client = nil
		}
	}
}

// execute performs one invocation and records both its ends; complete
// turns the client's completion into the one recorded (workloads.Workers).
func (r *runner) execute(ctx context.Context, client workloads.Client, proc history.Process, inv workloads.Invocation, ack chan struct{}, complete func(workloads.Completion) workloads.Completion) workloads.Completion {
	if r.firstOp.Load() == 0 {
		r.firstOp.CompareAndSwap(0, int64(max(time.Since(r.runStart), 1)))
	}
	r.rec.invoke(history.Op{Type: history.Invoke, Process: proc, F: inv.F, Value: inv.Value}, ack)
	octx, cancel := context.WithTimeout(ctx, r.cfg.OpTimeout)
	comp := complete(client.Invoke(octx, inv))
	cancel()
	r.rec.complete(history.Op{Type: comp.Type, Process: proc, F: inv.F, Value: comp.Value, Error: comp.Error, Node: comp.Node})
	return comp
}

// finalReads performs the final reads the lifecycle hands out, on the
// processes it names, with their retries, and reports whether all
// succeeded in time.
func (r *runner) finalReads(ctx context.Context) bool {
	r.mu.Lock()
	r.life.Healed(r.now())
	r.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, r.cfg.FinalReadTimeout)
	defer cancel()
	ack := make(chan struct{}, 1)
	var client workloads.Client
	var clientProc history.Process
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	for {
		r.mu.Lock()
		inv, proc, ok := r.life.FinalRead(r.now())
		r.mu.Unlock()
		if !ok {
			break
		}
		if client != nil && clientProc != proc {
			// The last attempt ended in Info: its process is retired
			// with its client.
			client.Close()
			client = nil
		}
		if client == nil {
			c, err := r.cfg.Workload.NewClient(dctx, r.sut, proc)
			if err != nil {
				sleepCtx(dctx, finalRetry)
				if ctx.Err() != nil {
					return false
				}
				continue
			}
			client, clientProc = c, proc
		}
		var pause time.Duration
		r.execute(dctx, client, proc, inv, ack, func(c workloads.Completion) workloads.Completion {
			r.mu.Lock()
			defer r.mu.Unlock()
			c, pause = r.life.CompleteFinal(c)
			return c
		})
		if pause > 0 {
			sleepCtx(dctx, pause)
		}
		if ctx.Err() != nil {
			return false
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.life.Tally().FinalFailed) == 0
}

// finalRetry is the pause between attempts at a final read.
const finalRetry = 200 * time.Millisecond

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// pacer spaces invocations evenly across all workers: each worker reserves
// the next free slot. Slots never accumulate while workers are busy, so a
// slow period is not followed by a burst.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

// wait blocks until the caller's slot, and reports false if the slot lies
// past stop or ctx ended first. A nil pacer never waits.
func (p *pacer) wait(ctx context.Context, stop time.Time) bool {
	if p == nil {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	slot := p.next
	if slot.Before(now) {
		slot = now
	}
	p.next = slot.Add(p.interval)
	p.mu.Unlock()
	if !slot.Before(stop) {
		return false
	}
	if d := time.Until(slot); d > 0 {
		sleepCtx(ctx, d)
	}
	return ctx.Err() == nil
}

// stats summarizes a history for results.json.
func (r *runner) stats(ops []history.Op) map[string]any {
	byF := map[string]map[string]int{}
	nemesis := 0
	var last int64
	for i := range ops {
		op := &ops[i]
		if op.Time > last {
			last = op.Time
		}
		if op.Process.IsNemesis() {
			nemesis++
			continue
		}
		if op.Type == history.Invoke {
			continue
		}
		m := byF[op.F]
		if m == nil {
			m = map[string]int{}
			byF[op.F] = m
		}
		m[op.Type.String()]++
	}
	r.mu.Lock()
	tally := r.life.Tally()
	r.mu.Unlock()
	phase, final, maxProc := tally.Phase, tally.Final, tally.MaxProcess
	st := map[string]any{
		"ops":                  len(ops),
		"completions":          byF,
		"nemesis-ops":          nemesis,
		"invoked":              phase.Invoked,
		"ok":                   phase.Ok,
		"fail":                 phase.Fail,
		"info":                 phase.Info,
		"history-span":         time.Duration(last).String(),
		"max-process":          int64(maxProc),
		"workload-time":        r.end.Sub(r.start).String(),
		"workload-ops":         r.phaseOps,
		"workload-ops-per-sec": r.opsPerSec(),
	}
	// invoked = ok + fail + info counts the workload phase; the final
	// reads are counted apart.
	st["final-reads"] = map[string]int64{
		"invoked": final.Invoked,
		"ok":      final.Ok,
		"fail":    final.Fail,
		"info":    final.Info,
	}
	workloadEnd := r.end.Sub(r.runStart).Nanoseconds()
	st[results.WorkloadEndStat] = workloadEnd
	st["availability"] = results.AnalyzeAvailability(ops, workloadEnd)
	st["achieved-rate"] = r.invokeRate()
	return st
}

// invokeRate is the invocation rate of the workload phase.
func (r *runner) invokeRate() float64 {
	d := r.end.Sub(r.start).Seconds()
	if d <= 0 {
		return 0
	}
	return math.Round(float64(r.invoked())/d*10) / 10
}

// opsPerSec is the completion rate of the workload phase.
func (r *runner) opsPerSec() float64 {
	d := r.end.Sub(r.start).Seconds()
	if d <= 0 {
		return 0
	}
	return math.Round(float64(r.phaseOps)/d*10) / 10
}

// killReport returns what the kill fault (or lose-unsynced) did, when it ran, and a note for
// the verdict when more than a minority of nodes were down at once: a
// replication protocol without durable state may then lose acknowledged
// writes by design, so such a run tests a guarantee it does not make.
func (r *runner) killReport() (*nemesis.KillReport, string) {
	if r.nem == nil || !slices.Contains(r.cfg.Nemesis.Kinds, nemesis.Kill) && !slices.Contains(r.cfg.Nemesis.Kinds, nemesis.LoseUnsynced) {
		return nil, ""
	}
	k := r.nem.Kills()
	if !k.BeyondMinority {
		return &k, ""
	}
	return &k, fmt.Sprintf("kill policy %s: %d of %d nodes were down at once, more than a minority (a protocol without durable state may lose acknowledged writes in such a run by design)", k.Policy, k.PeakDown, k.Nodes)
}
