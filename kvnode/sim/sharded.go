package sim

import (
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strconv"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	knode "github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// Transactional workloads over a sharded cluster, checked by Elle.
const (
	// WorkloadListAppend: transactions of appends of unique values and
	// reads of whole lists, over keys in any shards.
	WorkloadListAppend = "list-append"
	// WorkloadRWRegister: transactions of writes of unique values and
	// reads, over keys in any shards.
	WorkloadRWRegister = "rw-register"
	// WorkloadBank: accounts (one key each, 10 apiece at the start) and
	// transfers that read both balances, then write both guarded by
	// txn.Check; reads see every account. Checked by checker/bank.
	WorkloadBank = "bank"
)

// bankStart is every account's opening balance.
const bankStart = 10

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
	Keys     int    // keys (8)
	Workload string // WorkloadListAppend (default), WorkloadRWRegister or WorkloadBank
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
	// runtime abandons (aborts) the transaction (500ms).
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
		c.Workload = WorkloadListAppend
	}
	if c.Think == 0 {
		c.Think = 100 * time.Millisecond
	}
	if c.AbandonAfter == 0 {
		c.AbandonAfter = 500 * time.Millisecond
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
	appends  int64
	// groupCut[{a, b}] stops group a's runtime from delivering anything to
	// group b: the two groups are cut off from each other while each
	// still has its majority.
	groupCut map[[2]replica.GroupID]bool
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
	proc history.Process
	cl   *Client
}

func (w *world) newWorker(proc history.Process) *txnWorker {
	groups := map[replica.GroupID]*Cluster{w.ctl: w.clusters[0]}
	for g := 1; g < len(w.clusters); g++ {
		groups[replica.GroupID(g)] = w.clusters[g]
	}
	cl, err := newClient(w.clusters[0], ClientConfig{Attempt: 200 * time.Millisecond}, groups, w.ctl, w.nextSession)
	if err != nil {
		panic(fmt.Sprintf("sim: transaction client: %v", err)) // the world's own groups are always valid
	}
	return &txnWorker{w: w, proc: proc, cl: cl}
}

func skey(k int64) string { return "k" + strconv.FormatInt(k, 10) }

// run invokes a transaction and records it; value is its Jepsen form.
func (tw *txnWorker) run(ops []txn.MicroOp, value []any, done func()) {
	tw.w.record(history.Op{Type: history.Invoke, Process: tw.proc, F: "txn", Value: value})
	tw.txn(ops, func(typ history.Type, res []txn.MicroResult, why string) {
		v := any(value)
		if typ == history.Ok {
			v = tw.w.jepsen(res)
		}
		tw.complete(history.Op{Type: typ, F: "txn", Value: v, Error: why})
		done()
	})
}

// complete records a completion of tw's process and counts it.
func (tw *txnWorker) complete(op history.Op) {
	w := tw.w
	op.Process = tw.proc
	w.record(op)
	switch op.Type {
	case history.Ok:
		w.res.Ok++
	case history.Fail:
		w.res.Fail++
	default:
		w.res.Info++
		tw.proc += history.Process(w.cfg.Clients + w.cfg.Keys)
	}
}

// txn runs one transaction to its end, without recording it, and passes
// the outcome to cb.
func (tw *txnWorker) txn(ops []txn.MicroOp, cb func(typ history.Type, res []txn.MicroResult, why string)) {
	w := tw.w
	op := client.TxnOp(ops)
	op.Deadline = time.Unix(0, w.now()).Add(w.cfg.TxnDeadline)
	err := tw.cl.Run(op, func(o client.Outcome) {
		w.res.Aborts += o.Aborts
		switch o.Result {
		case client.OK:
			if w.cross(tw.cl, ops) {
				w.res.Cross++
			}
			cb(history.Ok, o.Txn.Results, "")
		case client.Failed:
			why := o.Cause.Error()
			if errors.Is(o.Cause, txn.ErrCheckFailed) {
				why = "check failed"
			}
			cb(history.Fail, nil, why)
		default:
			cb(history.Info, nil, o.Cause.Error())
		}
	})
	if err != nil && w.err == nil {
		w.err = err
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

// jepsen turns committed results into the workload's micro-op values.
func (w *world) jepsen(res []txn.MicroResult) []any {
	v := make([]any, len(res))
	for i, r := range res {
		k, _ := strconv.ParseInt(r.Key[1:], 10, 64)
		switch {
		case r.F == txn.Read && w.cfg.Workload == WorkloadRWRegister:
			var x any
			if r.Found {
				x, _ = strconv.ParseInt(r.Value, 10, 64)
			}
			v[i] = []any{"r", k, x}
		case r.F == txn.Read:
			l := []any{}
			for _, e := range r.List {
				x, _ := strconv.ParseInt(e, 10, 64)
				l = append(l, x)
			}
			v[i] = []any{"r", k, l}
		default:
			x, _ := strconv.ParseInt(r.Value, 10, 64)
			v[i] = []any{r.F, k, x}
		}
	}
	return v
}

func (w *world) record(op history.Op) {
	op.Index = int64(len(w.hist))
	op.Time = w.now()
	w.hist = append(w.hist, op)
}

// RunSharded runs one simulated test of a sharded cluster with the
// list-append workload and checks the history with Elle for strict
// serializability.
func RunSharded(cfg ShardedConfig) (*ShardedResult, error) {
	cfg.defaults()
	switch cfg.Workload {
	case WorkloadListAppend, WorkloadRWRegister, WorkloadBank:
	default:
		return nil, fmt.Errorf("sim: unknown sharded workload %q (want %s, %s or %s)", cfg.Workload, WorkloadListAppend, WorkloadRWRegister, WorkloadBank)
	}
	if cfg.Nodes < 3 || cfg.Groups < 2 || cfg.Clients < 1 || cfg.Keys < 1 {
		return nil, fmt.Errorf("sim: sharded run needs Nodes >= 3, Groups >= 2, Clients and Keys >= 1 (got %d, %d, %d, %d)", cfg.Nodes, cfg.Groups, cfg.Clients, cfg.Keys)
	}
	if err := CheckNemesis(cfg.Workload, cfg.Nemesis); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	w, admin, err := newShardWorld(cfg)
	if err != nil {
		return nil, err
	}
	nm, err := newSimNemesis(&w.placement, cfg.Nemesis, cfg.Seed, cfg.Schedule, w.at, w.record, &w.res.Faults)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	nm.event = func(_ nemesis.Kind, seed uint64, done func()) { w.shardChangeVia(admin, nm, seed, done) }
	invoked, active, stop := 0, cfg.Clients, false
	var next func(tw *txnWorker)
	next = func(tw *txnWorker) {
		if invoked >= cfg.Ops {
			active--
			return
		}
		invoked++
		if invoked == cfg.Ops {
			// Every transaction is invoked: stop hurting the cluster so
			// the outstanding ones and the final reads can finish.
			stop = true
			nm.stop()
		}
		after := func() {
			w.at(time.Duration(w.rng.Int63n(int64(cfg.Think)+1)), func() { next(tw) })
		}
		if cfg.Workload == WorkloadBank {
			w.bankOp(tw, after)
			return
		}
		ops, value := w.genTxn()
		tw.run(ops, value, after)
	}
	if cfg.Workload == WorkloadBank {
		if err := w.openAccounts(); err != nil {
			return nil, err
		}
	}
	for i := 0; i < cfg.Clients; i++ {
		tw := w.newWorker(history.Process(i))
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
	for n := 1; n <= cfg.Nodes; n++ {
		w.restart(replica.NodeID(n))
	}
	for k := 0; k < cfg.Keys; k++ {
		if cfg.Workload == WorkloadBank && k > 0 {
			break
		}
		tw := w.newWorker(history.Process(10000 + k))
		tw.w.cfg.TxnDeadline = 20 * time.Second
		finished := false
		if cfg.Workload == WorkloadBank {
			w.bankRead(tw, func() { finished = true })
		} else {
			tw.run([]txn.MicroOp{{F: txn.Read, Key: skey(int64(k))}}, []any{[]any{"r", int64(k), nil}}, func() { finished = true })
		}
		w.runUntil(func() bool { return finished }, 30*time.Second)
		if v := violation(w.err); v != nil {
			return w.stopped(v), nil
		}
		if last := w.hist[len(w.hist)-1]; !finished || last.Type != history.Ok {
			w.res.Problems = append(w.res.Problems, fmt.Sprintf("final read of key %d did not complete after healing", k))
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
	w.res.History = w.hist
	w.res.Virtual = time.Duration(w.now())
	// The workload's checker, as chaos run and chaos check build it; bank
	// also knows its accounts and their constant total.
	var chkr checker.Checker
	if cfg.Workload == WorkloadBank {
		total := int64(bankStart * cfg.Keys)
		var accts []string
		for k := 0; k < cfg.Keys; k++ {
			accts = append(accts, skey(int64(k)))
		}
		chkr = bank.New(&total, accts)
	} else if chkr, err = workloads.CheckerFor(cfg.Workload, nil); err != nil {
		return nil, fmt.Errorf("sim seed %d: %w", cfg.Seed, err)
	}
	chk, err := checker.Check(chkr, w.hist, checker.Options{})
	if err != nil {
		return nil, fmt.Errorf("sim seed %d: check: %w", cfg.Seed, err)
	}
	w.res.Check = chk
	w.res.Valid = chk.Valid
	if len(w.res.Problems) > 0 {
		w.res.Valid = checker.Invalid
	}
	return w.res, nil
}

// stopped is the result of a run that a safety violation stopped: invalid,
// with the history up to that point.
func (w *world) stopped(v *Violation) *ShardedResult {
	w.res.History, w.res.Virtual = w.hist, time.Duration(w.now())
	w.res.Problems = append(w.res.Problems, v.Error())
	w.res.Check = checker.Result{Valid: checker.Invalid, Summary: "stopped at a safety violation"}
	w.res.Valid = checker.Invalid
	return w.res
}

// genTxn makes 1-4 micro-ops over the keys: appends of unique values and
// reads.
func (w *world) genTxn() ([]txn.MicroOp, []any) {
	n := 1 + w.rng.Intn(4)
	var ops []txn.MicroOp
	var value []any
	for i := 0; i < n; i++ {
		k := int64(w.rng.Intn(w.cfg.Keys))
		if w.rng.Intn(2) == 0 {
			w.appends++
			if w.cfg.Workload == WorkloadRWRegister {
				ops = append(ops, txn.MicroOp{F: txn.Write, Key: skey(k), Value: strconv.FormatInt(w.appends, 10)})
				value = append(value, []any{"w", k, w.appends})
				continue
			}
			ops = append(ops, txn.MicroOp{F: txn.Append, Key: skey(k), Value: strconv.FormatInt(w.appends, 10)})
			value = append(value, []any{"append", k, w.appends})
		} else {
			ops = append(ops, txn.MicroOp{F: txn.Read, Key: skey(k)})
			value = append(value, []any{"r", k, nil})
		}
	}
	return ops, value
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
	sr, err := RunSharded(ShardedConfig{Seed: cfg.Seed, Workload: cfg.Workload, Protocol: cfg.Protocol, Nodes: max(cfg.Replicas, 3), Ops: cfg.Ops, Clients: cfg.Clients, Keys: cfg.Keys,
		Nemesis: cfg.Nemesis, Schedule: cfg.Schedule})
	if err != nil {
		return nil, err
	}
	res := &Result{Seed: sr.Seed, History: sr.History, Ok: sr.Ok, Fail: sr.Fail, Info: sr.Info, Check: sr.Check, Problems: sr.Problems, Valid: sr.Valid, Virtual: sr.Virtual, Faults: sr.Faults}
	for _, op := range sr.History {
		if op.Type == history.Invoke {
			res.Ops++
		}
	}
	return res, nil
}

// openAccounts gives every account its opening balance before the clients
// start; it is not part of the history (the checker knows the total).
func (w *world) openAccounts() error {
	tw := w.newWorker(history.Process(-2))
	var ops []txn.MicroOp
	for k := 0; k < w.cfg.Keys; k++ {
		ops = append(ops, txn.MicroOp{F: txn.Write, Key: skey(int64(k)), Value: strconv.Itoa(bankStart)})
	}
	saved := w.cfg.TxnDeadline
	w.cfg.TxnDeadline = 30 * time.Second
	var typ history.Type
	tw.txn(ops, func(t history.Type, _ []txn.MicroResult, _ string) { typ = t })
	w.runUntil(func() bool { return typ != 0 }, time.Minute)
	w.cfg.TxnDeadline = saved
	if typ != history.Ok {
		return fmt.Errorf("sim seed %d: opening the accounts: %v", w.cfg.Seed, typ)
	}
	return nil
}

// bankRead reads every account in one transaction.
func (w *world) bankRead(tw *txnWorker, done func()) {
	var ops []txn.MicroOp
	for k := 0; k < w.cfg.Keys; k++ {
		ops = append(ops, txn.MicroOp{F: txn.Read, Key: skey(int64(k))})
	}
	w.record(history.Op{Type: history.Invoke, Process: tw.proc, F: "read"})
	tw.txn(ops, func(typ history.Type, res []txn.MicroResult, why string) {
		op := history.Op{Type: typ, F: "read", Error: why}
		if typ == history.Ok {
			bal := map[string]any{}
			for _, r := range res {
				n, err := strconv.ParseInt(r.Value, 10, 64)
				if !r.Found || err != nil {
					op.Type, op.Error = history.Info, fmt.Sprintf("account %s holds %q", r.Key, r.Value)
					break
				}
				bal[r.Key] = n
			}
			if op.Type == history.Ok {
				op.Value = bal
			}
		} else if typ == history.Info {
			op.Type = history.Fail // a read changes nothing
		}
		tw.complete(op)
		done()
	})
}

// bankOp is a read of every account (a quarter of the ops) or a transfer
// of 1-5 between two accounts: read both, then write both guarded by
// checks that they still hold what was read.
func (w *world) bankOp(tw *txnWorker, done func()) {
	if w.rng.Intn(4) == 0 {
		w.bankRead(tw, done)
		return
	}
	from, to := w.rng.Intn(w.cfg.Keys), w.rng.Intn(w.cfg.Keys-1)
	if to >= from {
		to++
	}
	amount := int64(1 + w.rng.Intn(5))
	fk, tk := skey(int64(from)), skey(int64(to))
	value := map[string]any{"from": fk, "to": tk, "amount": amount}
	w.record(history.Op{Type: history.Invoke, Process: tw.proc, F: "transfer", Value: value})
	fail := func(why string) {
		tw.complete(history.Op{Type: history.Fail, F: "transfer", Value: value, Error: why})
		done()
	}
	tw.txn([]txn.MicroOp{{F: txn.Read, Key: fk}, {F: txn.Read, Key: tk}}, func(typ history.Type, res []txn.MicroResult, why string) {
		if typ != history.Ok {
			fail("read: " + why) // nothing written yet
			return
		}
		fb, err1 := strconv.ParseInt(res[0].Value, 10, 64)
		tb, err2 := strconv.ParseInt(res[1].Value, 10, 64)
		if err1 != nil || err2 != nil {
			fail(fmt.Sprintf("balances %q, %q", res[0].Value, res[1].Value))
			return
		}
		if fb < amount {
			fail("insufficient funds")
			return
		}
		ops := []txn.MicroOp{
			{F: txn.Check, Key: fk, Value: res[0].Value}, {F: txn.Check, Key: tk, Value: res[1].Value},
			{F: txn.Write, Key: fk, Value: strconv.FormatInt(fb-amount, 10)}, {F: txn.Write, Key: tk, Value: strconv.FormatInt(tb+amount, 10)},
		}
		tw.txn(ops, func(typ history.Type, _ []txn.MicroResult, why string) {
			tw.complete(history.Op{Type: typ, F: "transfer", Value: value, Error: why})
			done()
		})
	})
}

// newShardWorld builds the clusters and runtimes of cfg (with defaults
// applied) and joins groups 1 and 2; it returns the world and the client
// that did the join.
func newShardWorld(cfg ShardedConfig) (*world, *Client, error) {
	w := &world{cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)), res: &ShardedResult{Seed: cfg.Seed}, ctl: replica.GroupID(cfg.Groups + 1)}
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
		c, err := NewCluster(ClusterConfig{Seed: w.rng.Int63(), Replicas: 3, Protocol: cfg.Protocol, NewStateMachine: newSM, SnapshotEvery: 200, Label: label, Group: gid, MayDecide: txn.MayDecide})
		if err != nil {
			return nil, nil, fmt.Errorf("sim: group %d: %w", gid, err)
		}
		c.ids = slices.Clone(mem) // clients know nodes by their world ids
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
			Pump:    knode.ShardPump{Controller: w.ctl, AbandonAfter: cfg.AbandonAfter},
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
