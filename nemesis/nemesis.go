package nemesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/chaoskv/chaos/history"
)

// Recorder receives the nemesis's history ops. Process is always
// history.NemesisProcess; the recorder assigns Index and Time. Calls come
// from the nemesis's goroutines but never overlap, and each invoke is
// followed directly by its info completion.
type Recorder func(op history.Op)

// Config configures a Nemesis.
type Config struct {
	// Kinds are the fault kinds to mix: one schedule per class of kinds,
	// each step of a schedule picking one of its kinds at random.
	Kinds []Kind
	// Interval is the mean quiet time between faults and the mean time a
	// fault is held (DefaultInterval when zero).
	Interval time.Duration
	// Seed determines every choice the nemesis makes.
	Seed int64
	// LossPercent is the loss fault's drop percentage (DefaultLossPercent
	// when zero).
	LossPercent int
	// Latency is the latency fault's delay (DefaultDelay ± DefaultJitter
	// when zero).
	Latency LatencySpec
	// KillPolicy bounds how many nodes a kill takes down ("" means
	// KillMinority).
	KillPolicy KillPolicy
	// ReconfigTimeout bounds one reconfig or membership action
	// (DefaultReconfigTimeout when zero).
	ReconfigTimeout time.Duration
	// TearWrites makes lose-unsynced keep a random prefix of each
	// victim's newest unsynced write.
	TearWrites bool
	// ClockSkew bounds the clock faults' shift (DefaultClockSkew when
	// zero); StrobePeriod is clock-strobe's flip interval
	// (DefaultStrobePeriod when zero).
	ClockSkew    time.Duration
	StrobePeriod time.Duration
	// Leaders finds the current leaders; required for partition-leader.
	Leaders LeaderFunc
	// Sleep waits d or until ctx ends; nil means a real timer. Tests
	// replace it to run schedules without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Log receives progress messages; nil means slog.Default().
	Log *slog.Logger
}

// Nemesis runs seeded schedules of faults against a Target and records
// every action. Kinds of different classes (partitions; pause and kill;
// loss; latency) run on independent schedules, so with --nemesis
// partition,kill a kill may land inside a partition, as in Jepsen's
// combined nemeses; kinds of one class take turns, since they act on the
// same thing. Its methods may be called from different goroutines (Run in
// one, HealAll from a shutdown path), but Run must have returned before
// HealAll is expected to leave the cluster whole.
type Nemesis struct {
	t      Target
	cfg    Config
	rec    Recorder
	scheds []*Schedule
	log    *slog.Logger

	mu          sync.Mutex
	killed      map[string]bool
	killKind    Kind // Kill or LoseUnsynced: the one that killed the nodes in killed
	paused      map[string]bool
	skewed      map[string]bool    // nodes whose clock is shifted
	clockKind   Kind               // the clock fault of the nodes in skewed
	strobes     map[string]*strobe // running clock-strobes by node
	partitioned Kind               // the partition in force, "" for none
	lossy       bool
	slow        bool
	peakDown    int // the most nodes killed at once
}

// New checks cfg and returns a Nemesis for t.
func New(t Target, cfg Config, rec Recorder) (*Nemesis, error) {
	if t == nil || rec == nil {
		return nil, fmt.Errorf("nemesis: target and recorder are required")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.LossPercent == 0 {
		cfg.LossPercent = DefaultLossPercent
	}
	if cfg.Latency.IsZero() {
		cfg.Latency = LatencySpec{Delay: DefaultDelay, Jitter: DefaultJitter}
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.StrobePeriod == 0 {
		cfg.StrobePeriod = DefaultStrobePeriod
	}
	if cfg.ClockSkew < time.Millisecond || cfg.StrobePeriod < time.Millisecond {
		return nil, fmt.Errorf("nemesis: clock skew and strobe period must be at least 1ms, got %v and %v", cfg.ClockSkew, cfg.StrobePeriod)
	}
	if cfg.ReconfigTimeout <= 0 {
		cfg.ReconfigTimeout = DefaultReconfigTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.LossPercent < 1 || cfg.LossPercent > 100 {
		return nil, fmt.Errorf("nemesis: loss percentage must be 1..100, got %d", cfg.LossPercent)
	}
	if _, err := ParseKillPolicy(string(cfg.KillPolicy)); err != nil {
		return nil, err
	}
	for _, k := range cfg.Kinds {
		// This Nemesis drives a Target on real time, as the Docker
		// backend does; the kinds only the simulator applies stop here.
		if err := Docker.Supported(k); err != nil {
			return nil, err
		}
	}
	if slices.Contains(cfg.Kinds, PartitionLeader) && cfg.Leaders == nil {
		return nil, fmt.Errorf("nemesis: partition-leader needs a way to find the current leaders")
	}
	if _, ok := t.(Reconfigurer); slices.Contains(cfg.Kinds, Reconfig) && !ok {
		return nil, errNoReconfigurer
	}
	if _, ok := t.(Memberer); slices.Contains(cfg.Kinds, Membership) && !ok {
		return nil, errNoMemberer
	}
	if _, ok := t.(DiskLoser); slices.Contains(cfg.Kinds, LoseUnsynced) && !ok {
		return nil, errNoDiskLoser
	}
	if _, ok := t.(Clocker); slices.ContainsFunc(cfg.Kinds, Kind.IsClock) && !ok {
		return nil, errNoClocker
	}
	scheds, err := Schedules(cfg.Kinds, cfg.Interval, cfg.Seed)
	if err != nil {
		return nil, err
	}
	return &Nemesis{t: t, cfg: cfg, rec: rec, scheds: scheds, log: cfg.Log,
		killed: make(map[string]bool), paused: make(map[string]bool),
		skewed: make(map[string]bool), strobes: make(map[string]*strobe)}, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run injects faults until ctx ends: on each class's schedule, quiet,
// start a fault, hold it, stop it, and again. It returns nil when ctx ends
// (faults in progress stay until HealAll) and the first error when the
// target fails a fault, after stopping the other schedules. With no kinds
// it just waits for ctx.
func (n *Nemesis) Run(ctx context.Context) error {
	if len(n.scheds) == 0 {
		<-ctx.Done()
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, sched := range n.scheds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.loop(ctx, sched); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// loop runs one schedule until ctx ends or the target fails.
func (n *Nemesis) loop(ctx context.Context, sched *Schedule) error {
	for {
		step := sched.Next()
		if n.cfg.Sleep(ctx, step.Quiet) != nil {
			return nil
		}
		if step.Kind == Reconfig || step.Kind == Membership {
			n.mu.Lock()
			var err error
			if step.Kind == Reconfig {
				err = n.reconfigure(ctx, step.Seed)
			} else {
				err = n.changeMembers(ctx, step.Seed)
			}
			n.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				return err
			}
			continue
		}
		f, err := n.plan(ctx, step)
		if errors.Is(err, errNoLeader) {
			// Between leaders (an election in progress) there is nobody
			// to isolate; say so in the history and try the next step.
			n.mu.Lock()
			_ = n.do(StartF(step.Kind), map[string]any{"kind": string(step.Kind)}, func() error { return err })
			n.mu.Unlock()
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := n.Start(ctx, f); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if n.cfg.Sleep(ctx, step.Hold) != nil {
			return nil
		}
		if err := n.Stop(ctx, f); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// plan decides a step's fault, asking for the leaders when needed.
func (n *Nemesis) plan(ctx context.Context, step Step) (Fault, error) {
	var leaders []string
	if step.Kind == PartitionLeader {
		var err error
		if leaders, err = n.cfg.Leaders(ctx); err != nil {
			if ctx.Err() != nil {
				return Fault{}, err
			}
			return Fault{}, fmt.Errorf("%w: %v", errNoLeader, err)
		}
		if len(leaders) == 0 {
			return Fault{}, fmt.Errorf("%w: the cluster reports none", errNoLeader)
		}
	}
	return Plan(step, n.t.Nodes(), leaders, Params{LossPercent: n.cfg.LossPercent, Latency: n.cfg.Latency,
		Kill: n.cfg.KillPolicy, Tear: n.cfg.TearWrites, ClockSkew: n.cfg.ClockSkew, StrobePeriod: n.cfg.StrobePeriod})
}

// errNoLeader means partition-leader found no leader to isolate.
var errNoLeader = errors.New("nemesis: partition-leader: no current leader")

// StartF and StopF are the history functions of a fault's two halves,
// the same in every backend so that reports shade the same windows.
func StartF(k Kind) string {
	switch {
	case k.IsPartition():
		return "start-partition"
	case k == Kill:
		return "kill"
	case k == Pause:
		return "pause"
	}
	return "start-" + string(k)
}

// StopF is StartF's counterpart for a fault's end.
func StopF(k Kind) string {
	switch {
	case k.IsPartition():
		return "stop-partition"
	case k == Kill:
		return "start"
	case k == Pause:
		return "resume"
	}
	return "stop-" + string(k)
}

// do records an invoke, runs fn, and records the info completion carrying
// the same value and fn's error, if any.
func (n *Nemesis) do(f string, value map[string]any, fn func() error) error {
	return n.doWith(f, value, func() (map[string]any, error) { return nil, fn() })
}

// doWith is do whose fn also returns what it learnt, added to the
// completion's value.
func (n *Nemesis) doWith(f string, value map[string]any, fn func() (map[string]any, error)) error {
	n.rec(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: f, Value: value})
	extra, err := fn()
	if len(extra) > 0 {
		v := make(map[string]any, len(value)+len(extra))
		maps.Copy(v, value)
		maps.Copy(v, extra)
		value = v
	}
	done := history.Op{Type: history.Info, Process: history.NemesisProcess, F: f, Value: value}
	if err != nil {
		done.Error = err.Error()
		n.log.Warn("nemesis action failed", "f", f, "err", err)
	} else {
		n.log.Info("nemesis", "f", f, "value", value)
	}
	n.rec(done)
	return err
}

// Start injects f and records it.
func (n *Nemesis) Start(ctx context.Context, f Fault) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case f.Kind == LoseUnsynced:
		n.killKind = f.Kind
		return n.doWith(StartF(f.Kind), f.Value(), func() (map[string]any, error) {
			extra := map[string]any{}
			err := n.loseUnsynced(ctx, f, extra)
			return extra, err
		})
	case f.Kind.IsClock():
		n.clockKind = f.Kind
		return n.do(StartF(f.Kind), f.Value(), func() error { return n.startClock(ctx, f) })
	}
	return n.do(StartF(f.Kind), f.Value(), func() error {
		switch {
		case f.Kind.IsPartition():
			if err := f.Grudge.Validate(n.t.Nodes()); err != nil {
				return fmt.Errorf("nemesis: %w", err)
			}
			n.partitioned = f.Kind
			return n.t.Partition(ctx, f.Grudge)
		case f.Kind == Loss:
			n.lossy = true
			return n.t.Loss(ctx, f.Percent)
		case f.Kind == Latency:
			n.slow = true
			return n.t.Latency(ctx, f.Latency)
		case f.Kind == Kill:
			n.killKind = f.Kind
			var errs []error
			for _, node := range f.Nodes {
				n.killed[node] = true
				errs = append(errs, n.t.Kill(ctx, node))
			}
			n.peakDown = max(n.peakDown, len(n.killed))
			return errors.Join(errs...)
		case f.Kind == Pause:
			var errs []error
			for _, node := range f.Nodes {
				n.paused[node] = true
				errs = append(errs, n.t.Pause(ctx, node))
			}
			return errors.Join(errs...)
		}
		return fmt.Errorf("nemesis: unknown fault kind %q", string(f.Kind))
	})
}

// Stop ends f and records it.
func (n *Nemesis) Stop(ctx context.Context, f Fault) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case f.Kind.IsPartition():
		return n.stopPartition(ctx)
	case f.Kind == Loss:
		return n.stopLoss(ctx)
	case f.Kind == Latency:
		return n.stopLatency(ctx)
	case f.Kind == Kill || f.Kind == LoseUnsynced:
		return n.startNodes(ctx, f.Kind, f.Nodes)
	case f.Kind == Pause:
		return n.resumeNodes(ctx, f.Nodes)
	case f.Kind.IsClock():
		return n.resetClocks(ctx, f.Kind, f.Nodes)
	}
	return fmt.Errorf("nemesis: unknown fault kind %q", string(f.Kind))
}

func (n *Nemesis) stopPartition(ctx context.Context) error {
	return n.do(StopF(Partition), map[string]any{"kind": string(n.partitioned), "healed": true}, func() error {
		if err := n.t.Partition(ctx, nil); err != nil {
			return err
		}
		n.partitioned = ""
		return nil
	})
}

func (n *Nemesis) stopLoss(ctx context.Context) error {
	return n.do(StopF(Loss), map[string]any{"kind": string(Loss), "percent": int64(0)}, func() error {
		if err := n.t.Loss(ctx, 0); err != nil {
			return err
		}
		n.lossy = false
		return nil
	})
}

func (n *Nemesis) stopLatency(ctx context.Context) error {
	return n.do(StopF(Latency), map[string]any{"kind": string(Latency), "delay_ms": 0.0}, func() error {
		if err := n.t.Latency(ctx, LatencySpec{}); err != nil {
			return err
		}
		n.slow = false
		return nil
	})
}

// startNodes starts nodes that kind (Kill or LoseUnsynced) took down.
func (n *Nemesis) startNodes(ctx context.Context, kind Kind, nodes []string) error {
	return n.do(StopF(kind), map[string]any{"kind": string(kind), "nodes": anyList(nodes)}, func() error {
		var errs []error
		for _, node := range nodes {
			if err := n.t.Start(ctx, node); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(n.killed, node)
		}
		return errors.Join(errs...)
	})
}

func (n *Nemesis) resumeNodes(ctx context.Context, nodes []string) error {
	return n.do(StopF(Pause), map[string]any{"kind": string(Pause), "nodes": anyList(nodes)}, func() error {
		var errs []error
		for _, node := range nodes {
			if err := n.t.Resume(ctx, node); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(n.paused, node)
		}
		return errors.Join(errs...)
	})
}

// HealAll ends every fault this nemesis started and has not ended: it heals
// the network, resumes paused nodes, starts killed ones and sets shifted
// clocks back, recording each
// action. It tries everything even when one action fails, and returns the
// joined errors. Give it a context that is still live (for example
// context.WithoutCancel of the test's) when called after a cancellation.
func (n *Nemesis) HealAll(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	if n.partitioned != "" {
		errs = append(errs, n.stopPartition(ctx))
	}
	if n.lossy {
		errs = append(errs, n.stopLoss(ctx))
	}
	if n.slow {
		errs = append(errs, n.stopLatency(ctx))
	}
	if nodes := n.marked(n.paused); len(nodes) > 0 {
		errs = append(errs, n.resumeNodes(ctx, nodes))
	}
	if nodes := n.marked(n.killed); len(nodes) > 0 {
		errs = append(errs, n.startNodes(ctx, n.killKind, nodes))
	}
	if nodes := n.marked(n.skewed); len(nodes) > 0 {
		errs = append(errs, n.resetClocks(ctx, n.clockKind, nodes))
	}
	return errors.Join(errs...)
}

// marked returns the marked nodes in the target's node order.
func (n *Nemesis) marked(m map[string]bool) []string {
	var out []string
	for _, node := range n.t.Nodes() {
		if m[node] {
			out = append(out, node)
		}
	}
	return out
}
