package sim

import (
	"fmt"
	"math/rand"
	"slices"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	knode "github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
	"github.com/chaoskv/chaos/kvnode/wlops"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// ShardedConfig is one simulated test of a sharded cluster: a shard
// controller group and Groups shard groups of three replicas each, placed
// round a ring of Nodes nodes, so that every node hosts replicas of
// several groups and a node fault hits them all.
type ShardedConfig struct {
	Seed     int64
	Protocol string // replication core ("paxos")
	Nodes    int    // nodes (5)
	Groups   int    // shard groups (3); groups 1 and 2 start joined
	Ops      int    // transactions (300)
	Clients  int    // concurrent clients (5)
	Keys     int    // keys in use at once, or the bank's accounts (8)
	// Workload is a transactional workload of package workloads:
	// list-append (default), rw-register or bank.
	Workload string
	// Nemesis are the fault kinds, none when empty; each world node a
	// fault hits is every replica it hosts, and reconfig changes the
	// shard configuration through the controller. Schedule sets their
	// rhythm.
	Nemesis  []nemesis.Kind
	Schedule NemesisSchedule
	// MoveEvery, when set, makes a shard change (Join, Leave or Move) at
	// the controller this often until every transaction is invoked,
	// besides any reconfig of the Nemesis.
	MoveEvery time.Duration
	// Think bounds the pause between a client's transactions (100ms).
	Think time.Duration
	// AbandonAfter is how long a coordinator waits for votes before its
	// runtime abandons (aborts) the transaction (drawn from the seed, see
	// shardPump).
	AbandonAfter time.Duration
	// TxnDeadline bounds one transaction, retries included, before its
	// outcome is declared unknown (3s).
	TxnDeadline time.Duration
}

func (c *ShardedConfig) defaults() {
	if c.Protocol == "" {
		c.Protocol = "paxos"
	}
	if c.Nodes == 0 {
		c.Nodes = 5
	}
	if c.Groups == 0 {
		c.Groups = 3
	}
	if c.Ops == 0 {
		c.Ops = 300
	}
	if c.Clients == 0 {
		c.Clients = 5
	}
	if c.Keys == 0 {
		c.Keys = 8
	}
	if c.Workload == "" {
		c.Workload = "list-append"
	}
	if c.Think == 0 {
		c.Think = 100 * time.Millisecond
	}
	if c.TxnDeadline == 0 {
		c.TxnDeadline = 3 * time.Second
	}
	c.Schedule.defaults()
}

// ShardedResult is the outcome of RunSharded.
type ShardedResult struct {
	Seed    int64
	History []history.Op
	// Ok, Fail (aborted) and Info count transaction completions; Moves
	// counts controller changes made during the run; Faults the fault
	// windows the nemesis opened.
	Ok, Fail, Info, Moves, Faults int
	// Cross counts committed transactions that spanned groups; Aborts
	// counts aborted attempts (each retried while its deadline allows).
	Cross, Aborts int
	Check         checker.Result
	Problems      []string
	Valid         checker.Validity
	Checker       checker.Checker // the workload's, which judged the history
	Virtual       time.Duration
}

// world is several replica groups (each a Cluster) on one virtual clock,
// with the runtime that moves their requests between groups.
type world struct {
	cfg ShardedConfig
	rng *rand.Rand
	// placement's clusters: 0 is the controller, g the shard group g.
	placement
	ctl      replica.GroupID // the controller's group id (Groups+1)
	pumps    []*groupRuntime
	hist     []history.Op
	res      *ShardedResult
	err      error
	sessions uint64
	// workers hold the workload's generator (seeded with the run's seed)
	// and its processes, and codec is the workload's, as chaos run drives
	// them.
	workers *workloads.Workers
	codec   workloads.TxnCodec
	// groupCut[{a, b}] stops group a's runtime from delivering anything to
	// group b: the two groups are cut off from each other while each
	// still has its majority.
	groupCut map[[2]replica.GroupID]bool
	// txo checks two-phase commit on every step of every group.
	txo *txnOracle
}

func (w *world) now() int64 { return w.clusters[0].now }

// step runs the earliest event of any cluster; ties go to the lower
// cluster index, so a run stays a function of the seed.
func (w *world) step() bool {
	best := -1
	var at int64
	for i, c := range w.clusters {
		if c.agenda.len() > 0 && (best < 0 || c.agenda.peekTime() < at) {
			best, at = i, c.agenda.peekTime()
		}
	}
	if best < 0 {
		return false
	}
	for _, c := range w.clusters {
		c.now = at
	}
	w.clusters[best].Step()
	for _, c := range w.clusters {
		if c.err != nil && w.err == nil {
			w.err = c.err
		}
	}
	return true
}

// cluster returns group g's cluster.
func (w *world) cluster(g replica.GroupID) *Cluster {
	if g == w.ctl {
		return w.clusters[0]
	}
	return w.clusters[g]
}

// nextSession hands out client session ids, unique in the world.
func (w *world) nextSession() uint64 {
	w.sessions++
	return 1<<40 + w.sessions
}

// fail stops the run at its first simulator error.
func (w *world) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// at schedules fn on the controller cluster's agenda.
func (w *world) at(d time.Duration, fn func()) { w.clusters[0].At(d, fn) }

func (w *world) runUntil(cond func() bool, limit time.Duration) bool {
	end := w.now() + int64(limit)
	for !cond() && w.err == nil {
		if !w.step() || w.now() > end {
			return cond()
		}
	}
	return cond()
}

// clientOf returns a new simulated client of group g that runs on world
// node at: it cannot reach the nodes that node cannot hear (at 0: a client
// outside the cluster, never cut off).
func (w *world) clientOf(g replica.GroupID, at replica.NodeID) *Client {
	cl, err := newClient(w.clusters[0], ClientConfig{Attempt: 200 * time.Millisecond, Deadline: time.Second}, map[replica.GroupID]*Cluster{g: w.cluster(g)}, 0, w.nextSession)
	if err != nil {
		panic(fmt.Sprintf("sim: client of group %d: %v", g, err)) // the world's own groups are always valid
	}
	w.cutFor(cl, at)
	return cl
}

// cutFor cuts cl off the nodes that world node at cannot hear.
func (w *world) cutFor(cl *Client, at replica.NodeID) {
	clear(cl.cut)
	if at == 0 {
		return
	}
	for n := 1; n < len(cl.cut); n++ {
		cl.cut[n] = !w.hears(at, replica.NodeID(n))
	}
}

// groupRuntime carries out, for one shard group, what its
// node.ShardRuntime decides on the group's current leader: it sends the
// deliveries through clients that run on the leader's node (so they share
// its partitions) and submits the proposals at the leader, as the
// server's shard runtime does. Like the server's, it ticks on events (a
// replica released applied entries, the leader changed, a delivery ended)
// and at the time the runtime's Wake asks for.
type groupRuntime struct {
	w      *world
	g      int
	rt     knode.ShardRuntime[*Client]
	lead   replica.NodeID // the leader at the last tick
	kicked bool           // a tick is scheduled now
	timed  bool           // a timer tick is scheduled, at timer
	timer  time.Duration
	gen    uint64 // the current timer's; older timers are void
}

// released is the group's cluster's Releasing hook: applied entries or a
// new leader may give the runtime something to do.
func (rt *groupRuntime) released(_ replica.NodeID, rd *replica.Ready) {
	if len(rd.Results) > 0 || rt.w.clusters[rt.g].Leader() != rt.lead {
		rt.kick()
	}
}

// kick schedules a tick now, once however many events ask for it.
func (rt *groupRuntime) kick() {
	if rt.kicked {
		return
	}
	rt.kicked = true
	rt.w.at(0, func() {
		rt.kicked = false
		rt.tick()
	})
}

func (rt *groupRuntime) tick() {
	w := rt.w
	c := w.clusters[rt.g]
	var v knode.ShardView
	lead := c.Leader()
	rt.lead = lead
	if lead != 0 {
		if n := c.nodes[lead-1]; n.up && !n.paused {
			v, _ = knode.View(n.id, n.rep.Core.Status(), n.sm)
		}
	}
	now := time.Duration(w.now())
	sends, props := rt.rt.Tick(now, v)
	for _, s := range sends {
		rt.deliver(s, w.members[rt.g][lead-1])
	}
	for _, req := range props {
		rt.propose(lead, req)
	}
	if at, ok := rt.rt.Wake(); ok && (!rt.timed || at < rt.timer) {
		rt.timed, rt.timer = true, at
		rt.gen++
		gen := rt.gen
		w.at(max(at-now, 0), func() {
			if gen == rt.gen {
				rt.timed = false
				rt.tick()
			}
		})
	}
}

// deliver sends s from world node at and reports the answer.
func (rt *groupRuntime) deliver(s knode.Send[*Client], at replica.NodeID) {
	w := rt.w
	if s.Err != nil || w.groupCut[[2]replica.GroupID{replica.GroupID(rt.g), s.To}] {
		rt.rt.Answered(time.Duration(w.now()), s, nil)
		rt.kick()
		return
	}
	w.cutFor(s.Via, at)
	err := s.Via.Invoke(s.Op, func(o client.Outcome) {
		var ans []byte
		if o.Result == client.OK {
			ans = o.Value
		}
		if req, ok := rt.rt.Answered(time.Duration(w.now()), s, ans); ok {
			rt.propose(w.clusters[rt.g].Leader(), req)
		}
		rt.kick()
	})
	if err != nil {
		w.err = err
	}
}

// propose submits req at the group's leader, if there is one.
func (rt *groupRuntime) propose(lead replica.NodeID, req replica.Request) {
	if lead != 0 {
		rt.w.clusters[rt.g].Submit(lead, req)
	}
}

// txnWorker is one workload client: a simulated client session whose
// Router routes each transaction to the group owning its lowest shard,
// learns configurations from the controller and decides its outcome, as
// the real sharded client does.
type txnWorker struct {
	w    *world
	i    int // the workload worker, or -1 for a final read
	proc history.Process
	cl   *Client
}

func (w *world) newWorker(i int, proc history.Process) *txnWorker {
	groups := map[replica.GroupID]*Cluster{w.ctl: w.clusters[0]}
	for g := 1; g < len(w.clusters); g++ {
		groups[replica.GroupID(g)] = w.clusters[g]
	}
	cl, err := newClient(w.clusters[0], ClientConfig{Attempt: 200 * time.Millisecond}, groups, w.ctl, w.nextSession)
	if err != nil {
		panic(fmt.Sprintf("sim: transaction client: %v", err)) // the world's own groups are always valid
	}
	return &txnWorker{w: w, i: i, proc: proc, cl: cl}
}

// invoke records inv, runs the transactions its codec asks for one after
// another, records the completion the codec makes of their answers, and
// then calls done.
func (tw *txnWorker) invoke(inv workloads.Invocation, done func()) {
	if tw.i < 0 {
		tw.w.workers.InvokeFinal()
	}
	tw.w.record(history.Op{Type: history.Invoke, Process: tw.proc, F: inv.F, Value: inv.Value})
	var next func(s workloads.TxnStep)
	next = func(s workloads.TxnStep) {
		if s.Done() {
			c := s.Completion
			tw.complete(inv, c)
			done()
			return
		}
		ops, err := wlops.MicroOps(s.Ops)
		if err != nil {
			tw.w.fail(fmt.Errorf("workload %s: %w", tw.w.cfg.Workload, err))
			return
		}
		tw.txn(ops, func(res []txn.MicroResult, err error) { next(s.Next(wlops.MicroResults(res), err)) })
	}
	next(tw.w.codec.Start(inv))
}

// complete records the completion of inv on tw's process; after an Info
// the process is retired (Jepsen semantics) and the worker goes on as a
// new one.
func (tw *txnWorker) complete(inv workloads.Invocation, c workloads.Completion) {
	w := tw.w
	if tw.i < 0 {
		c = w.workers.CompleteFinal(inv, c)
	} else {
		c = w.workers.Complete(tw.i, inv, c)
	}
	w.record(history.Op{Type: c.Type, Process: tw.proc, F: inv.F, Value: c.Value, Error: c.Error, Node: c.Node})
	if tw.i >= 0 {
		tw.proc = w.workers.Process(tw.i)
	}
}

// txn runs one transaction to its end, without recording it, and passes
// its results to cb, or the error that ended it: marked
// workloads.Definite when the transaction certainly applied nothing,
// else an unknown outcome.
func (tw *txnWorker) txn(ops []txn.MicroOp, cb func(res []txn.MicroResult, err error)) {
	w := tw.w
	op := client.TxnOp(ops)
	op.Deadline = time.Unix(0, w.now()).Add(w.cfg.TxnDeadline)
	err := tw.cl.Run(op, func(o client.Outcome) {
		w.res.Aborts += o.Aborts
		switch o.Result {
		case client.OK:
			if msg := w.txo.answered(txn.TxnID{Client: tw.cl.Session(), Seq: o.Seq}); msg != "" {
				w.fail(&Violation{Step: *w.clusters[0].steps, At: time.Duration(w.now()), Group: "client", Node: o.Node, What: msg})
				return
			}
			if w.cross(tw.cl, ops) {
				w.res.Cross++
			}
			cb(o.Txn.Results, nil)
		case client.Failed:
			cb(nil, workloads.Definite(o.Cause))
		default:
			cb(nil, o.Cause)
		}
	})
	if err != nil {
		w.fail(err)
	}
}

// cross reports whether ops span groups under cl's latest configuration.
func (w *world) cross(cl *Client, ops []txn.MicroOp) bool {
	first := shardctl.ShardOf(ops[0].Key)
	for _, o := range ops[1:] {
		if shardctl.ShardOf(o.Key) != first {
			cfg := cl.r.Config()
			for _, o := range ops[1:] {
				if cfg.Shards[shardctl.ShardOf(o.Key)] != cfg.Shards[first] {
					return true
				}
			}
			return false
		}
	}
	return false
}

func (w *world) record(op history.Op) {
	op.Index = int64(len(w.hist))
	op.Time = w.now()
	w.hist = append(w.hist, op)
}

// RunSharded runs one simulated test of a sharded cluster with a
// transactional workload and checks the history with the workload's
// checker.
func RunSharded(cfg ShardedConfig) (*ShardedResult, error) {
	cfg.defaults()
	if cfg.Nodes < 3 || cfg.Groups < 2 || cfg.Clients < 1 || cfg.Keys < 1 {
		return nil, fmt.Errorf("sim: sharded run needs Nodes >= 3, Groups >= 2, Clients and Keys >= 1 (got %d, %d, %d, %d)", cfg.Nodes, cfg.Groups, cfg.Clients, cfg.Keys)
	}
	w, admin, err := newShardWorld(cfg)
	if err != nil {
		return nil, err
	}
	if err := CheckNemesis(cfg.Workload, cfg.Nemesis); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	nm, err := newSimNemesis(&w.placement, cfg.Nemesis, cfg.Seed, cfg.Schedule, w.at, w.record, &w.res.Faults)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	nm.event = func(_ nemesis.Kind, seed uint64, done func()) { w.shardChangeVia(admin, nm, seed, done) }
	active, stop := cfg.Clients, false
	var next func(tw *txnWorker)
	next = func(tw *txnWorker) {
		inv, ok := w.workers.Next()
		if !ok {
			active--
			return
		}
		if w.workers.Budgeted() {
			// Every transaction is invoked: stop hurting the cluster so
			// the outstanding ones and the final reads can finish.
			stop = true
			nm.stop()
		}
		after := func() {
			w.at(time.Duration(w.rng.Int63n(int64(cfg.Think)+1)), func() { next(tw) })
		}
		tw.invoke(inv, after)
	}
	for i := 0; i < cfg.Clients; i++ {
		tw := w.newWorker(i, w.workers.Process(i))
		w.at(time.Duration(w.rng.Int63n(int64(cfg.Think)+1)), func() { next(tw) })
	}
	nm.begin()
	if cfg.MoveEvery > 0 {
		mover := w.clientOf(w.ctl, 0)
		var move func()
		move = func() {
			if stop {
				return
			}
			w.shardChangeVia(mover, nm, w.rng.Uint64(), func() {})
			w.at(cfg.MoveEvery, move)
		}
		w.at(cfg.MoveEvery, move)
	}
	limit := time.Duration(cfg.Ops+10) * (cfg.TxnDeadline + cfg.Think)
	w.runUntil(func() bool { return active == 0 }, limit)
	if v := violation(w.err); v != nil {
		return w.stopped(v), nil
	}
	if w.err != nil {
		return nil, fmt.Errorf("sim seed %d: %w", cfg.Seed, w.err)
	}
	if active != 0 {
		return nil, fmt.Errorf("sim seed %d: the workload did not finish within %v of virtual time", cfg.Seed, limit)
	}
	// Healed and restarted: every key must be readable again.
	nm.stop()
	w.heal()
	w.calm()
	for n := 1; n <= cfg.Nodes; n++ {
		w.restart(replica.NodeID(n))
	}
	w.cfg.TxnDeadline = 20 * time.Second
	for _, inv := range w.workers.FinalReads() {
		tw := w.newWorker(-1, w.workers.FinalProcess())
		finished := false
		tw.invoke(inv, func() { finished = true })
		w.runUntil(func() bool { return finished }, 30*time.Second)
		if v := violation(w.err); v != nil {
			return w.stopped(v), nil
		}
		if last := w.hist[len(w.hist)-1]; !finished || last.Type != history.Ok {
			w.res.Problems = append(w.res.Problems, fmt.Sprintf("final %s %v did not complete after healing", inv.F, inv.Value))
		}
	}
	if w.err != nil {
		return nil, fmt.Errorf("sim seed %d: %w", cfg.Seed, w.err)
	}
	for g, c := range w.clusters {
		for _, p := range c.CompareReplicas() {
			w.res.Problems = append(w.res.Problems, fmt.Sprintf("group %d: %s", g, p))
		}
	}
	w.tally()
	w.res.History = w.hist
	w.res.Virtual = time.Duration(w.now())
	w.res.Check = check(w.res.Checker, w.hist, checker.Options{})
	w.res.Valid = w.res.Check.Valid
	if len(w.res.Problems) > 0 {
		w.res.Valid = checker.Invalid
	}
	return w.res, nil
}

// tally fills the result's counts of completions from the workers'.
func (w *world) tally() {
	p, f := w.workers.Phase(), w.workers.Final()
	w.res.Ok, w.res.Fail, w.res.Info = int(p.Ok+f.Ok), int(p.Fail+f.Fail), int(p.Info+f.Info)
}

// stopped is the result of a run that a safety violation stopped: invalid,
// with the history up to that point.
func (w *world) stopped(v *Violation) *ShardedResult {
	w.tally()
	w.res.History, w.res.Virtual = w.hist, time.Duration(w.now())
	w.res.Problems = append(w.res.Problems, v.Error())
	w.res.Check = checker.Result{Valid: checker.Invalid, Summary: "stopped at a safety violation"}
	w.res.Valid = checker.Invalid
	return w.res
}

// shardChangeVia reads the latest configuration through admin, plans a
// change of it with nemesis.PlanReconfig and asks the controller for it
// (nothing when admin is still busy); nm records the action and its
// outcome as chaos run's reconfig nemesis does. done is called when the
// controller has answered, or at once when nothing was asked.
func (w *world) shardChangeVia(admin *Client, nm *simNemesis, seed uint64, done func()) {
	if admin.Busy() {
		done()
		return
	}
	admin.Invoke(shardctl.Op{Kind: shardctl.Query, Num: -1}.Encode(), func(o client.Outcome) {
		r, err := shardctl.DecodeReply(o.Value)
		if o.Result != client.OK || err != nil || r.Err != "" || admin.Busy() {
			nm.do("reconfig", map[string]any{"op": "query"}, nil, fmt.Sprintf("the controller did not answer: %v %v %s", o.Result, err, r.Err))
			done()
			return
		}
		a, err := nemesis.PlanReconfig(seed, w.layout(&r.Config))
		if err != nil {
			nm.do("reconfig", map[string]any{"op": "none"}, nil, err.Error())
			done()
			return
		}
		op := shardctl.Op{Kind: shardctl.Move, Shard: a.Shard, GID: replica.GroupID(a.Group)}
		switch a.Op {
		case "join":
			op = shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{replica.GroupID(a.Group): w.members[a.Group]}}
		case "leave":
			op = shardctl.Op{Kind: shardctl.Leave, GIDs: []replica.GroupID{replica.GroupID(a.Group)}}
		}
		w.res.Moves++
		admin.Invoke(op.Encode(), func(o client.Outcome) {
			defer done()
			r, err := shardctl.DecodeReply(o.Value)
			switch {
			case o.Result != client.OK:
				nm.do("reconfig", a.Value(), nil, fmt.Sprintf("the controller's answer: %v", o.Result))
			case err != nil || r.Err != "":
				nm.do("reconfig", a.Value(), nil, fmt.Sprintf("the controller refused: %v %s", err, r.Err))
			default:
				nm.do("reconfig", a.Value(), map[string]any{"config": int64(r.Config.Num)}, "")
			}
		})
	})
}

// layout is a shard configuration as the nemesis sees it.
func (w *world) layout(c *shardctl.Config) nemesis.ShardLayout {
	l := nemesis.ShardLayout{Num: c.Num}
	for _, g := range c.Shards {
		l.Shards = append(l.Shards, uint32(g))
	}
	for g := 1; g <= w.cfg.Groups; g++ {
		l.All = append(l.All, uint32(g))
		if _, ok := c.Groups[replica.GroupID(g)]; ok {
			l.Joined = append(l.Joined, uint32(g))
		}
	}
	return l
}

// runShardedAsRun runs a transactional Config on a sharded cluster:
// Replicas is the number of nodes, and the nemesis list and its schedule
// are honoured as given.
func runShardedAsRun(cfg Config) (*Result, error) {
	if cfg.Factory != nil {
		return nil, fmt.Errorf("sim: a replication Factory runs only under the register workload's single group, not under %s", cfg.Workload)
	}
	sr, err := RunSharded(ShardedConfig{Seed: cfg.Seed, Workload: cfg.Workload, Protocol: cfg.Protocol, Nodes: max(cfg.Replicas, 3), Ops: cfg.Ops, Clients: cfg.Clients, Keys: cfg.Keys,
		Nemesis: cfg.Nemesis, Schedule: cfg.Schedule})
	if err != nil {
		return nil, err
	}
	res := &Result{Seed: sr.Seed, History: sr.History, Ok: sr.Ok, Fail: sr.Fail, Info: sr.Info, Check: sr.Check, Problems: sr.Problems, Valid: sr.Valid, Checker: sr.Checker, Virtual: sr.Virtual, Faults: sr.Faults}
	for _, op := range sr.History {
		if op.Type == history.Invoke {
			res.Ops++
		}
	}
	return res, nil
}

// newShardWorld builds the clusters and runtimes of cfg (with defaults
// applied) and joins groups 1 and 2; it returns the world and the client
// that did the join.
func newShardWorld(cfg ShardedConfig) (*world, *Client, error) {
	wl, err := newWorkload(cfg.Workload, cfg.Keys, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("sim: %w", err)
	}
	tw, ok := wl.(workloads.TxnWorkload)
	if !ok {
		return nil, nil, fmt.Errorf("sim: workload %s is not transactional; a sharded cluster runs transactions", cfg.Workload)
	}
	workers, err := workloads.NewWorkers(tw.NewGenerator(cfg.Seed), cfg.Clients, int64(cfg.Ops))
	if err != nil {
		return nil, nil, fmt.Errorf("sim: %w", err)
	}
	w := &world{cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)), res: &ShardedResult{Seed: cfg.Seed, Checker: tw.Checker()}, ctl: replica.GroupID(cfg.Groups + 1),
		workers: workers, codec: tw.Codec(), txo: newTxnOracle()}
	for g := 0; g <= cfg.Groups; g++ {
		var mem []replica.NodeID
		for i := 0; i < 3; i++ {
			mem = append(mem, replica.NodeID((g+i)%cfg.Nodes+1))
		}
		gid := replica.GroupID(g)
		newSM := func() replica.StateMachine { return txn.NewGroup(gid) }
		if g == 0 {
			gid = w.ctl
			newSM = func() replica.StateMachine { return shardctl.New() }
		}
		label := fmt.Sprintf("group %d (nodes %v as 1-3)", gid, mem)
		c, err := NewCluster(ClusterConfig{Seed: w.rng.Int63(), Replicas: 3, Protocol: cfg.Protocol, NewStateMachine: newSM, SnapshotEvery: snapshotEvery(cfg.Seed), Label: label, Group: gid, MayDecide: txn.MayDecide})
		if err != nil {
			return nil, nil, fmt.Errorf("sim: group %d: %w", gid, err)
		}
		c.ids = slices.Clone(mem) // clients know nodes by their world ids
		c.oracle.txn = w.txo
		if g > 0 {
			c.steps = w.clusters[0].steps
		}
		w.clusters = append(w.clusters, c)
		w.members = append(w.members, mem)
	}
	w.placement = newPlacement(w.clusters, w.members, cfg.Nodes)
	for g := 1; g <= cfg.Groups; g++ {
		rt := &groupRuntime{w: w, g: g}
		rt.rt = knode.ShardRuntime[*Client]{
			Pump:    shardPump(cfg, w.ctl),
			Session: w.clusters[g].nextSession(),
			Dial:    func(to replica.GroupID) (*Client, error) { return w.clientOf(to, 0), nil },
		}
		w.pumps = append(w.pumps, rt)
		w.clusters[g].Releasing = rt.released
		rt.kick()
	}
	admin := w.clientOf(w.ctl, 0)
	joined := false
	admin.Invoke(shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{1: w.members[1], 2: w.members[2]}}.Encode(), func(o client.Outcome) { joined = o.Result == client.OK })
	if !w.runUntil(func() bool { return joined }, 10*time.Second) {
		return nil, nil, fmt.Errorf("sim seed %d: the controller did not accept the first join", cfg.Seed)
	}

	return w, admin, nil
}
