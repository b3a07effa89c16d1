// Package sim is kvnode's deterministic simulator: a second shell, beside
// kvnode/server, around the same node code. Every simulated node runs the
// real protocol cores, state machines and wire codecs inside node.Replica
// (the persist-then-release pipeline, client answering), every replica of
// a shard group runs node.ShardGroup (the shard runtime as a node hosts
// it, sharded.go), and every simulated client runs client.Router (the real
// client's routing, retries and failed-versus-unknown decision), all in one
// goroutine on a virtual clock. Between them the simulator owns only the
// world: a network that carries encoded frames (peer messages, client
// requests and answers) and loses, duplicates, delays and reorders them,
// partitions nodes with arbitrary grudges, and crashes and restarts them
// from a simulated disk that loses unsynced writes at a crash (disk.go).
// Clients record a Jepsen-shaped history, which the workload's own checker
// judges; safety oracles check every step (oracle.go), and faults can be
// aimed at protocol moments (a crash right after a promise, a swizzle of
// the links).
//
// The simulator has no workloads of its own. It drives the harness's
// (package workloads, every name chaos run accepts) exactly as chaos run
// does: the workload's seeded generator, its sans-IO codec, which decides
// each completion's ok, fail or info, its final reads and its Checker.
// Only the I/O differs: the simulated clients carry the codec's operations
// (workload.go). The register runs on one replica group, where every
// single-group fault (membership, clock, disk) applies. The transactional
// workloads (list-append, rw-register, bank) all run on a sharded cluster
// (RunSharded), not also on one group: kvnode's transactions exist to span
// groups, so that is where their anomalies live, and one driver of the
// transactional codec (txnWorker.invoke) is smaller than two. The old
// single-group append workload is gone with it; list-append on a sharded
// cluster checks exactly-once appends through Elle, and
// TestConcurrentAppendsExactlyOnce checks the sessions' promise on one
// group directly.
//
// Nor has the simulator a run sequence of its own. A run is
// harness/lifecycle's state machine, the one chaos run drives on wall
// time, driven here on virtual time (drive): it decides when the workload
// phase ends and the nemesis stops, when the final reads start, on which
// processes and with what retries. Each world (simWorld: groupWorld, one
// replica group; shardedRun, a sharded cluster) supplies only the I/O:
// its clock and event loop, client sessions, where faults land, its own
// nemesis events and how its replicas are compared.
//
// A run is a pure function of its Config: one seed drives every random
// choice (math/rand), events at equal times run in scheduling order, and
// nothing depends on map iteration order, so a seed replays exactly.
// CheckDeterminism (trace.go) tests that promise for a seed instead of
// trusting it, and Shrink (shrink.go) builds on it: a failing seed's
// smaller variants are reruns with fewer ops, clients and faults.
package sim

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/harness/lifecycle"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// Config is one simulated test. Zero fields take the defaults in
// parentheses.
type Config struct {
	Seed int64
	// Protocol is the replication core's registered name ("paxos").
	Protocol string
	// Factory overrides Protocol (tests use it for deliberately broken
	// cores).
	Factory  Factory
	Replicas int // group size (5)
	// Spares are nodes that start empty outside the group, for the
	// membership nemesis to add (2 when it runs, else 0).
	Spares int
	// Workload is a workloads.Names() name ("register"). The register
	// runs on one replica group; the transactional workloads run on a
	// sharded cluster (RunSharded), the only place kvnode's transactions
	// span groups.
	Workload string
	// Nemesis are the fault kinds (none when empty); each must be one
	// the simulator and the workload's world can inject (CheckNemesis).
	Nemesis []nemesis.Kind
	Ops     int // client ops to invoke, final reads not counted (1000)
	Clients int // concurrent clients (10)
	Keys    int // keys in use at once, or the bank's accounts (5)
	// Reads is how many of every ten register ops are reads (4); the rest
	// are half writes, half cas.
	Reads int
	// Net is the network outside fault windows (DefaultNetwork).
	Net      Network
	Client   ClientConfig
	Schedule NemesisSchedule
	// Think bounds the random pause between a client's ops (200ms), which
	// spreads the default 1000 ops over about ten simulated seconds.
	Think time.Duration
	// SnapshotEvery, ElectionTicks, HeartbeatTicks, MaxBatch and
	// MaxInflight go to the cores (500, 10, 2, 64, 32).
	SnapshotEvery                 uint64
	ElectionTicks, HeartbeatTicks int
	MaxBatch, MaxInflight         int
	// CheckTimeout bounds the linearizability search (30s); past it the
	// verdict is unknown.
	CheckTimeout time.Duration
	// CheckDir, when set, receives the checker's visualization of keys
	// that are not linearizable (register workload).
	CheckDir string
	// Settle is how long the healed cluster runs before the final reads
	// (1s), in either world.
	Settle time.Duration

	// syncLies is ClusterConfig.syncLies, for tests.
	syncLies bool
	// trace, when set, records every event the run executes, for
	// CheckDeterminism.
	trace *trace
}

func (c *Config) defaults() {
	if c.Protocol == "" {
		c.Protocol = "paxos"
	}
	if c.Replicas == 0 {
		c.Replicas = 5
	}

	if c.Workload == "" {
		c.Workload = "register"
	}
	if c.Ops == 0 {
		c.Ops = 1000
	}
	if c.Clients == 0 {
		c.Clients = 10
	}
	if c.Keys == 0 {
		c.Keys = 5
	}
	if c.Reads == 0 {
		c.Reads = 4
	}
	if c.Net == (Network{}) {
		c.Net = DefaultNetwork
	}
	if c.Think == 0 {
		c.Think = 200 * time.Millisecond
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 500
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = 30 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = time.Second
	}
	c.Schedule.defaults()
}

// Result is the outcome of one run.
type Result struct {
	Seed    int64
	History []history.Op
	// Ops counts client ops invoked, final reads included; Ok, Fail and
	// Info count their completions.
	Ops, Ok, Fail, Info int
	// Check is the checkers' verdict; Problems lists what the simulator
	// itself found wrong (replicas that diverged, final reads that never
	// completed), each of which makes the run invalid.
	Check    checker.Result
	Problems []string
	Valid    checker.Validity
	// Checker is the workload's checker that judged the history, as
	// chaos run records it.
	Checker checker.Checker
	Virtual time.Duration // simulated time the run took
	Net     NetStats
	// ReadIndexReads counts reads that leaders confirmed by read index
	// and answered without a log entry.
	ReadIndexReads int64
	// Faults counts the fault windows the nemesis opened (events such as
	// reconfig included); WorkloadEnd is when the last client op
	// completed and healing began.
	Faults      int
	WorkloadEnd time.Duration
}

// HistoryJSONL returns the history as JSON lines.
func (r *Result) HistoryJSONL() []byte {
	var b bytes.Buffer
	w := history.NewWriter(&b)
	for i := range r.History {
		_ = w.Write(&r.History[i]) // a bytes.Buffer does not fail
	}
	_ = w.Flush()
	return b.Bytes()
}

// Run runs one simulated test and checks its history. An error means the
// simulation itself could not run (bad config, a core that failed to
// start or misaddressed a message), never that the history is invalid.
//
// The register runs on one replica group (groupWorld), the transactional
// workloads on a sharded cluster (world, as RunSharded builds it); either
// way one sequence (drive) runs the test.
func Run(cfg Config) (*Result, error) {
	cfg.defaults()
	if cfg.Keys < 1 || cfg.Clients < 1 || cfg.Ops < 0 {
		return nil, fmt.Errorf("sim: need Keys, Clients >= 1 and Ops >= 0 (got %d, %d, %d)", cfg.Keys, cfg.Clients, cfg.Ops)
	}
	wl, err := newWorkload(cfg.Workload, cfg.Keys, cfg.Reads)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	check := checker.Options{Timeout: cfg.CheckTimeout, Directory: cfg.CheckDir}
	switch wl := wl.(type) {
	case workloads.KVWorkload:
		if err := CheckNemesis(cfg.Workload, cfg.Nemesis); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		g, err := newGroupWorld(cfg, wl)
		if err != nil {
			return nil, err
		}
		seq := sequence{seed: cfg.Seed, clients: cfg.Clients, ops: cfg.Ops, think: cfg.Think, settle: cfg.Settle, opDeadline: cfg.Client.deadline(),
			nemesis: cfg.Nemesis, schedule: cfg.Schedule, checker: wl.Checker(), check: check}
		return seq.drive(g, g.workers)
	case workloads.TxnWorkload:
		if cfg.Factory != nil {
			return nil, fmt.Errorf("sim: a replication Factory runs only under the register workload's single group, not under %s", cfg.Workload)
		}
		// Replicas is the number of nodes; the sharded world's own
		// defaults hold for the rest.
		scfg := ShardedConfig{Seed: cfg.Seed, Workload: cfg.Workload, Protocol: cfg.Protocol, Nodes: max(cfg.Replicas, 3), Ops: cfg.Ops, Clients: cfg.Clients, Keys: cfg.Keys,
			Nemesis: cfg.Nemesis, Schedule: cfg.Schedule}
		scfg.defaults()
		res, _, err := runSharded(scfg, cfg.Settle, check)
		return res, err
	}
	return nil, fmt.Errorf("sim: workload %s has neither a single-key nor a transactional codec", cfg.Workload)
}

// simWorld is a simulated cluster as the run's one sequence drives it:
// one replica group (groupWorld) or a sharded cluster (shardedRun). It
// supplies the I/O on virtual time; the sequence and its rules are
// lifecycle.Lifecycle's.
type simWorld interface {
	// virtual is the world's clock.
	virtual() time.Duration
	// at runs fn after d of virtual time.
	at(d time.Duration, fn func())
	// random draws the clients' think times.
	random() *rand.Rand
	// runUntil runs events until cond holds or limit has passed.
	runUntil(cond func() bool, limit time.Duration) bool
	// failure is the first simulator error, which stops the run.
	failure() error
	// places is where faults land.
	places() *placement
	// begin sets up what the world does besides the nemesis's kinds: its
	// membership or reconfig events, its own shard moves. They stop with
	// nm.
	begin(nm *simNemesis)
	// session opens a client session for a workload worker, or for the
	// final reads (final), which get a generous deadline.
	session(final bool) simSession
	// calm ends the world's own fault-time settings once the faults are
	// over, before the final reads (the sharded world's seeded abandon
	// timer, see shardPump).
	calm()
	// compare compares the replicas once the run is over.
	compare() []string
	// report adds the world's own counts to res.
	report(res *Result)
}

// simSession is one client session of a world.
type simSession interface {
	// invoke performs inv and calls done with the workload codec's
	// completion and the node that answered.
	invoke(inv workloads.Invocation, done func(workloads.Completion))
}

// sequence is a run's parameters as drive uses them in either world.
type sequence struct {
	seed          int64
	clients, ops  int
	think, settle time.Duration
	opDeadline    time.Duration // an op's deadline, retries included
	nemesis       []nemesis.Kind
	schedule      NemesisSchedule
	checker       checker.Checker
	check         checker.Options
}

// finalReadTime bounds the final reads (lifecycle.Limits.FinalReads);
// finalRetry is the pause between attempts at one.
const (
	finalReadTime = 30 * time.Second
	finalRetry    = 200 * time.Millisecond
)

// driver runs one sequence in a world: the workload's workers, the
// nemesis, healing, final reads and the history, all as callbacks on the
// world's event loop, with lifecycle.Lifecycle deciding each step.
type driver struct {
	seq   sequence
	w     simWorld
	life  *lifecycle.Lifecycle
	nem   *simNemesis
	hist  []history.Op
	res   *Result
	final simSession // the final reads' session, and its process
	fproc history.Process
	done  bool
}

func (d *driver) record(op history.Op) {
	op.Index = int64(len(d.hist))
	op.Time = int64(d.w.virtual())
	d.hist = append(d.hist, op)
}

// drive runs seq in w with workers, and checks the history.
func (seq sequence) drive(w simWorld, workers *workloads.Workers) (*Result, error) {
	life, err := lifecycle.Over(workers, seq.clients, lifecycle.Limits{FinalReads: finalReadTime, Retry: finalRetry})
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	d := &driver{seq: seq, w: w, life: life, res: &Result{Seed: seq.seed, Checker: seq.checker}}
	if d.nem, err = newSimNemesis(w.places(), seq.nemesis, seq.seed, seq.schedule, w.at, d.record, &d.res.Faults); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	w.begin(d.nem)
	d.nem.begin()
	life.Start(w.virtual())
	for i := range seq.clients {
		s := w.session(false)
		w.at(d.pause(), func() { d.next(i, s) })
	}
	// Every op ends by its deadline, so the run is bounded; the limit only
	// guards against a simulator bug.
	limit := time.Duration(seq.ops+10)*(seq.opDeadline+seq.think) + seq.settle + finalReadTime + time.Hour
	w.runUntil(func() bool { return d.done || w.failure() != nil }, limit)
	t := life.Tally()
	d.res.Ops = int(t.Phase.Invoked + t.Final.Invoked)
	d.res.Ok, d.res.Fail, d.res.Info = int(t.Phase.Ok+t.Final.Ok), int(t.Phase.Fail+t.Final.Fail), int(t.Phase.Info+t.Final.Info)
	d.res.WorkloadEnd = t.WorkloadEnd
	d.res.History, d.res.Virtual = d.hist, w.virtual()
	w.report(d.res)
	if v := violation(w.failure()); v != nil {
		d.res.Problems = append(d.res.Problems, v.Error())
		d.res.Check = checker.Result{Valid: checker.Invalid, Summary: "stopped at a safety violation"}
		d.res.Valid = checker.Invalid
		return d.res, nil
	}
	if err := w.failure(); err != nil {
		return nil, fmt.Errorf("sim seed %d: %w", seq.seed, err)
	}
	if !d.done {
		return nil, fmt.Errorf("sim seed %d: the run did not finish within %v of virtual time", seq.seed, limit)
	}
	d.res.Check = check(d.res.Checker, d.hist, seq.check)
	d.res.Valid = d.res.Check.Valid
	if len(d.res.Problems) > 0 {
		d.res.Valid = checker.Invalid
	}
	return d.res, nil
}

// pause is a client's think time before its next op.
func (d *driver) pause() time.Duration {
	return time.Duration(d.w.random().Int63n(int64(d.seq.think) + 1))
}

// next is worker i's turn: invoke its next op on s, or end it.
func (d *driver) next(i int, s simSession) {
	inv, ok := d.life.Next(i, d.w.virtual())
	if d.life.StopNemesis() {
		d.nem.stop()
	}
	if !ok {
		if d.life.Phase() == lifecycle.Heal {
			d.heal()
		}
		return
	}
	proc := d.life.Process(i)
	d.record(history.Op{Type: history.Invoke, Process: proc, F: inv.F, Value: inv.Value})
	s.invoke(inv, func(c workloads.Completion) {
		c = d.life.Complete(i, inv, c)
		d.record(history.Op{Type: c.Type, Process: proc, F: inv.F, Value: c.Value, Error: c.Error, Node: c.Node})
		d.w.at(d.pause(), func() { d.next(i, s) })
	})
}

// heal runs when every worker has ended: every fault ends (the nemesis's
// windows, and as a safety net any partition or crashed node left), the
// cluster settles, and the final reads begin.
func (d *driver) heal() {
	d.nem.stop()
	p := d.w.places()
	p.heal()
	d.w.calm()
	for n := range p.names {
		p.restart(replica.NodeID(n + 1))
	}
	d.w.at(d.seq.settle, func() {
		d.life.Healed(d.w.virtual())
		d.finalRead()
	})
}

// finalRead runs the final read the lifecycle hands out, or finishes the
// run when they are over. A final read that does not succeed means the
// cluster did not recover from faults that are all gone.
func (d *driver) finalRead() {
	inv, proc, ok := d.life.FinalRead(d.w.virtual())
	if !ok {
		d.res.Problems = append(d.res.Problems, d.life.Tally().FinalFailed...)
		d.finish()
		return
	}
	if d.final == nil || d.fproc != proc {
		d.final, d.fproc = d.w.session(true), proc
	}
	d.record(history.Op{Type: history.Invoke, Process: proc, F: inv.F, Value: inv.Value})
	d.final.invoke(inv, func(c workloads.Completion) {
		c, pause := d.life.CompleteFinal(c)
		d.record(history.Op{Type: c.Type, Process: proc, F: inv.F, Value: c.Value, Error: c.Error, Node: c.Node})
		d.w.at(pause, d.finalRead)
	})
}

// finish lets followers catch up, then compares the replicas: two nodes
// that applied the same prefix must hold byte-identical state.
func (d *driver) finish() {
	d.w.at(500*time.Millisecond, func() {
		d.res.Problems = append(d.res.Problems, d.w.compare()...)
		d.done = true
	})
}

// check judges h with c, a workload's checker as chaos run uses it; a
// history the checker cannot read is unknown.
func check(c checker.Checker, h []history.Op, opts checker.Options) checker.Result {
	res, err := checker.Check(c, h, opts)
	if err != nil {
		return checker.Result{Checker: c.Name(), Valid: checker.Unknown, Summary: "cannot check: " + err.Error()}
	}
	return res
}

func (cc ClientConfig) deadline() time.Duration {
	if cc.Deadline == 0 {
		return time.Second
	}
	return cc.Deadline
}

// groupWorld is one replica group running a single-key workload.
type groupWorld struct {
	cfg     Config
	c       *Cluster
	place   placement
	nem     *simNemesis
	workers *workloads.Workers
	codec   workloads.RegisterCodec
}

// newGroupWorld builds the replica group of cfg (with defaults applied)
// for the single-key workload kvw.
func newGroupWorld(cfg Config, kvw workloads.KVWorkload) (*groupWorld, error) {
	if cfg.Spares == 0 && slices.Contains(cfg.Nemesis, nemesis.Membership) {
		cfg.Spares = 2
	}
	c, err := NewCluster(ClusterConfig{
		Seed: cfg.Seed, Replicas: cfg.Replicas, Spares: cfg.Spares, Protocol: cfg.Protocol, Factory: cfg.Factory,
		NewStateMachine: func() replica.StateMachine { return kv.NewStore() },
		ElectionTicks:   cfg.ElectionTicks, HeartbeatTicks: cfg.HeartbeatTicks,
		SnapshotEvery: cfg.SnapshotEvery, MaxBatch: cfg.MaxBatch, MaxInflight: cfg.MaxInflight,
		Net: cfg.Net, syncLies: cfg.syncLies,
	})
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	c.trace = cfg.trace
	workers, err := workloads.NewWorkers(kvw.NewGenerator(cfg.Seed), cfg.Clients, int64(cfg.Ops))
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	g := &groupWorld{cfg: cfg, c: c, workers: workers, codec: kvw.Codec()}
	g.place = newPlacement([]*Cluster{c}, [][]replica.NodeID{c.Peers()}, len(c.nodes))
	return g, nil
}

func (g *groupWorld) virtual() time.Duration        { return g.c.Now() }
func (g *groupWorld) at(d time.Duration, fn func()) { g.c.At(d, fn) }
func (g *groupWorld) random() *rand.Rand            { return g.c.rng }
func (g *groupWorld) failure() error                { return g.c.err }
func (g *groupWorld) places() *placement            { return &g.place }

// calm: one replica group has no fault-time settings of its own.
func (g *groupWorld) calm()             {}
func (g *groupWorld) compare() []string { return g.c.CompareReplicas() }
func (g *groupWorld) runUntil(cond func() bool, limit time.Duration) bool {
	return g.c.RunUntil(cond, limit)
}

func (g *groupWorld) begin(nm *simNemesis) {
	g.nem = nm
	nm.event = func(_ nemesis.Kind, seed uint64, done func()) { g.changeMembers(seed, done) }
}

func (g *groupWorld) report(res *Result) {
	res.Net, res.ReadIndexReads = g.c.Stats(), g.c.ReadIndexReads()
}

// kvSession is a simulated client running the workload's single-key ops.
type kvSession struct {
	g  *groupWorld
	cl *Client
}

func (g *groupWorld) session(final bool) simSession {
	cc := g.cfg.Client
	if final {
		cc.Deadline = 4 * max(cc.deadline(), 5*time.Second)
	}
	return &kvSession{g: g, cl: g.c.NewClient(cc)}
}

func (s *kvSession) invoke(inv workloads.Invocation, done func(workloads.Completion)) {
	g := s.g
	kop, err := g.codec.Op(inv)
	var op kv.Op
	if err == nil {
		op, err = kvOp(kop)
	}
	if err != nil {
		// The generator made an invocation its own codec rejects.
		g.c.fail(fmt.Errorf("workload %s: %w", g.cfg.Workload, err))
		return
	}
	err = s.cl.Invoke(op.Encode(), func(o client.Outcome) {
		c := g.codec.Complete(inv, kvResult(o))
		c.Node = nodeName(o.Node)
		done(c)
	})
	if err != nil {
		g.c.fail(err)
	}
}
