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
	// calmed is set once the faults are over (calm).
	calmed bool
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

// shardRuntimes runs the shard runtime of every replica of one shard
// group (cluster g), as the node hosting the replica runs it: a
// node.ShardGroup per incarnation of each replica, whose deliveries leave
// through clients on the replica's world node (so they share its
// partitions) and whose proposals go to the replica itself.
type shardRuntimes struct {
	w    *world
	g    int
	reps []*shardReplica // by the cluster's node index: the current incarnation's
}

// shardReplica is one incarnation of a replica's shard runtime: the
// node.ShardGroup and the shell it runs in.
type shardReplica struct {
	rts   *shardRuntimes
	i     int
	sg    *knode.ShardGroup[*Client]
	timer uint64   // the armed timer's generation; older ones are void
	held  []func() // what came while the node was paused
}

func (rts *shardRuntimes) cluster() *Cluster { return rts.w.clusters[rts.g] }

func (rts *shardRuntimes) started(i int) {
	w, c := rts.w, rts.cluster()
	r := &shardReplica{rts: rts, i: i}
	r.sg = &knode.ShardGroup[*Client]{
		Self: c.nodes[i].id,
		Env:  r,
		Runtime: knode.ShardRuntime[*Client]{
			Pump:    w.pump(),
			Session: c.nextSession(),
			Dial:    func(to replica.GroupID) (*Client, error) { return w.clientOf(to, 0), nil },
		},
	}
	rts.reps[i] = r
}

func (rts *shardRuntimes) stepped(i int) {
	rts.reps[i].sg.Observe(rts.cluster().nodes[i].rep.Core.Status())
}

func (rts *shardRuntimes) released(i int, rd *replica.Ready) { rts.reps[i].sg.Released(rd) }

func (rts *shardRuntimes) resumed(i int) {
	r := rts.reps[i]
	held := r.held
	r.held = nil
	for _, fn := range held {
		r.run(fn)
	}
}

// run runs fn as r's node would: never once r's incarnation has ended,
// and after the pause while the node is paused.
func (r *shardReplica) run(fn func()) {
	n := r.rts.cluster().nodes[r.i]
	switch {
	case r.rts.reps[r.i] != r || !n.up:
	case n.paused:
		r.held = append(r.held, fn)
	default:
		fn()
	}
}

func (r *shardReplica) now() time.Duration { return time.Duration(r.rts.w.now()) }

// look runs f, the group's Tick or Timer, over the replica.
func (r *shardReplica) look(f func(time.Duration, replica.Status, *txn.Group)) {
	n := r.rts.cluster().nodes[r.i]
	f(r.now(), n.rep.Core.Status(), n.sm.(*txn.Group))
}

// Kick ticks the runtime at once, as the node's next event.
func (r *shardReplica) Kick() { r.rts.w.at(0, func() { r.run(func() { r.look(r.sg.Tick) }) }) }

// WakeAt replaces the replica's timer.
func (r *shardReplica) WakeAt(at time.Duration) {
	r.timer++
	gen := r.timer
	r.rts.w.at(max(at-r.now(), 0), func() {
		r.run(func() {
			if gen == r.timer {
				r.look(r.sg.Timer)
			}
		})
	})
}

// Deliver sends s from the replica's world node; a delivery between
// groups the world cut off from each other fails at once.
func (r *shardReplica) Deliver(s knode.Send[*Client]) {
	w := r.rts.w
	if w.groupCut[[2]replica.GroupID{replica.GroupID(r.rts.g), s.To}] {
		r.sg.Delivered(r.now(), s, nil)
		return
	}
	w.cutFor(s.Via, w.members[r.rts.g][r.i])
	err := s.Via.Invoke(s.Op, func(o client.Outcome) {
		var ans []byte
		if o.Result == client.OK {
			ans = o.Value
		}
		r.run(func() { r.sg.Delivered(r.now(), s, ans) })
	})
	if err != nil {
		w.fail(err)
	}
}

// Propose submits req at the replica.
func (r *shardReplica) Propose(req replica.Request) {
	c := r.rts.cluster()
	c.Submit(c.nodes[r.i].id, req)
}

// txnWorker is one workload client: a simulated client session whose
// Router routes each transaction to the group owning its lowest shard,
// learns configurations from the controller and decides its outcome, as
// the real sharded client does.
type txnWorker struct {
	w        *world
	cl       *Client
	deadline time.Duration // a transaction's, retries included
}

func (w *world) newWorker() *txnWorker {
	groups := map[replica.GroupID]*Cluster{w.ctl: w.clusters[0]}
	for g := 1; g < len(w.clusters); g++ {
		groups[replica.GroupID(g)] = w.clusters[g]
	}
	cl, err := newClient(w.clusters[0], ClientConfig{Attempt: 200 * time.Millisecond}, groups, w.ctl, w.nextSession)
	if err != nil {
		panic(fmt.Sprintf("sim: transaction client: %v", err)) // the world's own groups are always valid
	}
	return &txnWorker{w: w, cl: cl, deadline: w.cfg.TxnDeadline}
}

// invoke runs the transactions inv's codec asks for one after another and
// calls done with the completion the codec makes of their answers.
func (tw *txnWorker) invoke(inv workloads.Invocation, done func(workloads.Completion)) {
	var next func(s workloads.TxnStep)
	next = func(s workloads.TxnStep) {
		if s.Done() {
			done(s.Completion)
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

// txn runs one transaction to its end, without recording it, and passes
// its results to cb, or the error that ended it: marked
// workloads.Definite when the transaction certainly applied nothing,
// else an unknown outcome.
func (tw *txnWorker) txn(ops []txn.MicroOp, cb func(res []txn.MicroResult, err error)) {
	w := tw.w
	op := client.TxnOp(ops)
	op.Deadline = time.Unix(0, w.now()).Add(tw.deadline)
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

// RunSharded runs one simulated test of a sharded cluster with a
// transactional workload, as Run does for a Config but with every knob of
// the sharded world, and returns the world's counts besides the verdict.
func RunSharded(cfg ShardedConfig) (*ShardedResult, error) {
	cfg.defaults()
	res, w, err := runSharded(cfg, time.Second, checker.Options{})
	if err != nil {
		return nil, err
	}
	sr := w.res
	sr.History, sr.Ok, sr.Fail, sr.Info, sr.Faults = res.History, res.Ok, res.Fail, res.Info, res.Faults
	sr.Check, sr.Problems, sr.Valid, sr.Virtual = res.Check, res.Problems, res.Valid, res.Virtual
	return sr, nil
}

// runSharded runs cfg (with defaults applied) through the run's one
// sequence (drive) on a sharded world, settling for settle after healing,
// and judges it with opts.
func runSharded(cfg ShardedConfig, settle time.Duration, opts checker.Options) (*Result, *world, error) {
	if cfg.Nodes < 3 || cfg.Groups < 2 || cfg.Clients < 1 || cfg.Keys < 1 {
		return nil, nil, fmt.Errorf("sim: sharded run needs Nodes >= 3, Groups >= 2, Clients and Keys >= 1 (got %d, %d, %d, %d)", cfg.Nodes, cfg.Groups, cfg.Clients, cfg.Keys)
	}
	if err := CheckNemesis(cfg.Workload, cfg.Nemesis); err != nil {
		return nil, nil, fmt.Errorf("sim: %w", err)
	}
	w, admin, err := newShardWorld(cfg)
	if err != nil {
		return nil, nil, err
	}
	seq := sequence{seed: cfg.Seed, clients: cfg.Clients, ops: cfg.Ops, think: cfg.Think, settle: settle, opDeadline: cfg.TxnDeadline,
		nemesis: cfg.Nemesis, schedule: cfg.Schedule, checker: w.res.Checker, check: opts}
	res, err := seq.drive(&shardedRun{world: w, admin: admin}, w.workers)
	return res, w, err
}

// shardedRun is a sharded world as the run's sequence drives it (simWorld).
type shardedRun struct {
	*world
	admin *Client // the controller's client that joined the first groups
}

func (s *shardedRun) virtual() time.Duration { return time.Duration(s.now()) }
func (s *shardedRun) random() *rand.Rand     { return s.rng }
func (s *shardedRun) failure() error         { return s.err }
func (s *shardedRun) places() *placement     { return &s.placement }
func (s *shardedRun) report(*Result)         {}

// begin makes the reconfig nemesis's events changes at the controller,
// and starts the shard moves of MoveEvery, which stop with nm.
func (s *shardedRun) begin(nm *simNemesis) {
	w := s.world
	nm.event = func(_ nemesis.Kind, seed uint64, done func()) { w.shardChangeVia(s.admin, nm, seed, done) }
	if w.cfg.MoveEvery <= 0 {
		return
	}
	mover := w.clientOf(w.ctl, 0)
	var move func()
	move = func() {
		if nm.stopped {
			return
		}
		w.shardChangeVia(mover, nm, w.rng.Uint64(), func() {})
		w.at(w.cfg.MoveEvery, move)
	}
	w.at(w.cfg.MoveEvery, move)
}

// session is a transaction client; a final read's has a generous deadline.
func (s *shardedRun) session(final bool) simSession {
	tw := s.newWorker()
	if final {
		tw.deadline = 20 * time.Second
	}
	return tw
}

func (s *shardedRun) compare() []string {
	var out []string
	for g, c := range s.clusters {
		for _, p := range c.CompareReplicas() {
			out = append(out, fmt.Sprintf("group %d: %s", g, p))
		}
	}
	return out
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
		c := w.clusters[g]
		rts := &shardRuntimes{w: w, g: g, reps: make([]*shardReplica, len(c.nodes))}
		c.runtime = rts
		for i := range c.nodes {
			rts.started(i)
			rts.stepped(i) // its first look at the replica
		}
	}
	admin := w.clientOf(w.ctl, 0)
	joined := false
	admin.Invoke(shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{1: w.members[1], 2: w.members[2]}}.Encode(), func(o client.Outcome) { joined = o.Result == client.OK })
	if !w.runUntil(func() bool { return joined }, 10*time.Second) {
		return nil, nil, fmt.Errorf("sim seed %d: the controller did not accept the first join", cfg.Seed)
	}

	return w, admin, nil
}
