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
	"slices"
	"time"

	"github.com/chaoskv/chaos/checker"
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
	// (1s).
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
	// completed and the final reads began (zero for the sharded
	// workloads).
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

// runner drives one Config: the workload's clients, the nemesis, the
// history.
type runner struct {
	cfg     Config
	c       *Cluster
	workers *workloads.Workers
	codec   workloads.RegisterCodec
	hist    []history.Op
	res     *Result
	place   placement
	nem     *simNemesis
	active  int // clients with an op outstanding or about to start one
	healed  bool
	final   int // final reads outstanding
	done    bool
}

// worker is one client session: workload worker i (its process is
// r.workers.Process(i)), or a final read's (i < 0, proc its own).
type worker struct {
	cl   *Client
	i    int
	proc history.Process
}

func (r *runner) record(op history.Op) {
	op.Index = int64(len(r.hist))
	op.Time = int64(r.c.Now())
	r.hist = append(r.hist, op)
}

// Run runs one simulated test and checks its history. An error means the
// simulation itself could not run (bad config, a core that failed to
// start or misaddressed a message), never that the history is invalid.
func Run(cfg Config) (*Result, error) {
	cfg.defaults()
	if cfg.Keys < 1 || cfg.Clients < 1 || cfg.Ops < 0 {
		return nil, fmt.Errorf("sim: need Keys, Clients >= 1 and Ops >= 0 (got %d, %d, %d)", cfg.Keys, cfg.Clients, cfg.Ops)
	}
	wl, err := newWorkload(cfg.Workload, cfg.Keys, cfg.Reads)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if _, ok := wl.(workloads.TxnWorkload); ok {
		return runShardedAsRun(cfg)
	}
	kvw, ok := wl.(workloads.KVWorkload)
	if !ok {
		return nil, fmt.Errorf("sim: workload %s has neither a single-key nor a transactional codec", cfg.Workload)
	}
	if err := CheckNemesis(cfg.Workload, cfg.Nemesis); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
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
	r := &runner{cfg: cfg, c: c, workers: workers, codec: kvw.Codec(), res: &Result{Seed: cfg.Seed, Checker: kvw.Checker()}}
	r.place = newPlacement([]*Cluster{c}, [][]replica.NodeID{c.Peers()}, len(c.nodes))
	if r.nem, err = newSimNemesis(&r.place, cfg.Nemesis, cfg.Seed, cfg.Schedule, c.At, r.record, &r.res.Faults); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	r.nem.event = func(_ nemesis.Kind, seed uint64, done func()) { r.changeMembers(seed, done) }
	r.nem.begin()
	if cfg.Ops == 0 {
		// No op at all (an op limit of 0 would mean none to Workers).
		r.workloadDone()
	} else {
		for i := range cfg.Clients {
			w := &worker{cl: c.NewClient(cfg.Client), i: i, proc: workers.Process(i)}
			r.active++
			c.At(time.Duration(c.rng.Int63n(int64(cfg.Think)+1)), func() { r.next(w) })
		}
	}
	// Every op ends by its deadline, so the run is bounded; the limit only
	// guards against a simulator bug.
	limit := time.Duration(cfg.Ops+1)*(cfg.Client.deadline()+cfg.Think) + cfg.Settle + time.Hour
	c.RunUntil(func() bool { return r.done || c.err != nil }, limit)
	r.tally()
	if v := violation(c.err); v != nil {
		r.res.History, r.res.Virtual, r.res.Net = r.hist, c.Now(), c.Stats()
		r.res.Problems = append(r.res.Problems, v.Error())
		r.res.Check = checker.Result{Valid: checker.Invalid, Summary: "stopped at a safety violation"}
		r.res.Valid = checker.Invalid
		return r.res, nil
	}
	if c.err != nil {
		return nil, fmt.Errorf("sim seed %d: %w", cfg.Seed, c.err)
	}
	if !r.done {
		return nil, fmt.Errorf("sim seed %d: the run did not finish within %v of virtual time", cfg.Seed, limit)
	}
	r.res.History = r.hist
	r.res.Virtual = c.Now()
	r.res.Net = c.Stats()
	r.res.ReadIndexReads = c.ReadIndexReads()
	r.res.Check = check(r.res.Checker, r.hist, checker.Options{Timeout: cfg.CheckTimeout, Directory: cfg.CheckDir})
	r.res.Valid = r.res.Check.Valid
	if len(r.res.Problems) > 0 {
		r.res.Valid = checker.Invalid
	}
	return r.res, nil
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

// tally fills the result's counts from the workers' tallies.
func (r *runner) tally() {
	p, f := r.workers.Phase(), r.workers.Final()
	r.res.Ops = int(p.Invoked + f.Invoked)
	r.res.Ok, r.res.Fail, r.res.Info = int(p.Ok+f.Ok), int(p.Fail+f.Fail), int(p.Info+f.Info)
}

// next invokes w's next op, or ends w when the op budget is spent.
func (r *runner) next(w *worker) {
	inv, ok := r.workers.Next()
	if !ok {
		r.active--
		if r.active == 0 {
			r.workloadDone()
		}
		return
	}
	if r.workers.Budgeted() {
		// Every op is invoked: stop hurting the cluster so the
		// outstanding ones and the final reads can finish.
		r.nem.stop()
	}
	r.invoke(w, inv, func() {
		r.c.At(time.Duration(r.c.rng.Int63n(int64(r.cfg.Think)+1)), func() { r.next(w) })
	})
}

// invoke records the invocation, runs its op on w's client, records the
// completion and then calls after.
func (r *runner) invoke(w *worker, inv workloads.Invocation, after func()) {
	kop, err := r.codec.Op(inv)
	var op kv.Op
	if err == nil {
		op, err = kvOp(kop)
	}
	if err != nil {
		// The generator made an invocation its own codec rejects.
		r.c.fail(fmt.Errorf("workload %s: %w", r.cfg.Workload, err))
		return
	}
	if w.i < 0 {
		r.workers.InvokeFinal()
	}
	r.record(history.Op{Type: history.Invoke, Process: w.proc, F: inv.F, Value: inv.Value})
	err = w.cl.Invoke(op.Encode(), func(o client.Outcome) {
		c := r.codec.Complete(inv, kvResult(o))
		if w.i < 0 {
			c = r.workers.CompleteFinal(inv, c)
		} else {
			c = r.workers.Complete(w.i, inv, c)
		}
		r.record(history.Op{Type: c.Type, Process: w.proc, F: inv.F, Value: c.Value, Error: c.Error, Node: nodeName(o.Node)})
		if w.i >= 0 {
			// After an Info the process is retired (Jepsen semantics) and
			// the worker goes on as a new one.
			w.proc = r.workers.Process(w.i)
		}
		after()
	})
	if err != nil {
		r.c.fail(err)
	}
}

// workloadDone runs when every client op has completed: heal, let the
// cluster settle, then read every key once through fresh clients with a
// generous deadline. A final read that does not complete means the
// cluster did not recover from faults that are all gone.
func (r *runner) workloadDone() {
	r.nem.stop()
	r.res.WorkloadEnd = r.c.Now()
	r.c.At(r.cfg.Settle, func() {
		cc := r.cfg.Client
		cc.Deadline = 4 * max(cc.deadline(), 5*time.Second)
		reads := r.workers.FinalReads()
		r.final = len(reads)
		for _, inv := range reads {
			w := &worker{cl: r.c.NewClient(cc), i: -1, proc: r.workers.FinalProcess()}
			r.invoke(w, inv, func() {
				last := &r.hist[len(r.hist)-1]
				if last.Type != history.Ok {
					r.res.Problems = append(r.res.Problems, fmt.Sprintf("final %s %v did not complete (%s: %s) although every fault was healed %v earlier", inv.F, inv.Value, last.Type, last.Error, r.cfg.Settle))
				}
				r.final--
				if r.final == 0 {
					r.finish()
				}
			})
		}
	})
}

// finish lets followers catch up, then compares the replicas: two nodes
// that applied the same prefix must hold byte-identical state.
func (r *runner) finish() {
	r.c.At(500*time.Millisecond, func() {
		r.res.Problems = append(r.res.Problems, r.c.CompareReplicas()...)
		r.done = true
	})
}
