package txn

import (
	"math/rand"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
)

// world drives Groups directly, one state machine per group (each call to
// Apply stands for a log entry), with a deterministic random scheduler that
// loses and repeats inter-group messages and replies, restarts groups from
// snapshots, and reconfigures shards while clients run transactions. It
// tests the protocol logic alone; replication is kvnode/sim's concern.
type world struct {
	t       testing.TB
	rng     *rand.Rand
	ctl     *shardctl.Controller
	ctlSeq  uint64
	groups  map[replica.GroupID]*Group
	gids    []replica.GroupID
	index   map[replica.GroupID]uint64
	clients []*wclient
	hist    []history.Op
	nextVal int64
	stats   struct{ ok, aborted, unknown, wrong, retries, held int }
	// gen, when set, replaces newTxn's random list-append transactions.
	gen func(c *wclient) ([]MicroOp, []any)
	// onOK sees every committed transaction's results.
	onOK func(res []MicroResult)
}

type wclient struct {
	id      uint64
	seq     uint64
	proc    history.Process
	cfg     shardctl.Config
	busy    bool
	ops     []MicroOp
	value   []any
	attempt int
	// heldBy is the group holding the request pending until its decision,
	// as a replica does (see Group.Deferred); zero when none does.
	heldBy replica.GroupID
}

func newWorld(t testing.TB, seed int64, ngroups int) *world {
	w := &world{t: t, rng: rand.New(rand.NewSource(seed)), ctl: shardctl.New(), groups: map[replica.GroupID]*Group{}, index: map[replica.GroupID]uint64{}}
	for g := 1; g <= ngroups; g++ {
		w.gids = append(w.gids, replica.GroupID(g))
		w.groups[replica.GroupID(g)] = NewGroup(replica.GroupID(g))
	}
	w.ctlOp(shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{1: {1}, 2: {2}}})
	return w
}

func (w *world) ctlOp(op shardctl.Op) shardctl.Reply {
	w.ctlSeq++
	r, err := shardctl.DecodeReply(w.ctl.Apply(w.ctlSeq, replica.Request{ClientID: 1, Seq: w.ctlSeq, Op: op.Encode()}))
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) apply(g replica.GroupID, client, seq uint64, op []byte) []byte {
	w.index[g]++
	out := w.groups[g].Apply(w.index[g], replica.Request{ClientID: client, Seq: seq, Op: op})
	if err := w.groups[g].Audit(); err != nil {
		w.t.Fatalf("group %d after index %d: %v", g, w.index[g], err)
	}
	return out
}

func (w *world) record(op history.Op) {
	op.Index = int64(len(w.hist))
	op.Time = op.Index
	w.hist = append(w.hist, op)
}

func key(k int64) string { return "k" + strconv.FormatInt(k, 10) }

// newTxn makes 1-4 micro-ops over 8 keys: appends of unique values and
// reads.
func (w *world) newTxn(c *wclient) {
	n := 1 + w.rng.Intn(4)
	c.ops, c.value = nil, nil
	if w.gen != nil {
		c.ops, c.value = w.gen(c)
		n = 0
	}
	for i := 0; i < n; i++ {
		k := int64(w.rng.Intn(8))
		if w.rng.Intn(2) == 0 {
			w.nextVal++
			c.ops = append(c.ops, MicroOp{F: Append, Key: key(k), Value: strconv.FormatInt(w.nextVal, 10)})
			c.value = append(c.value, []any{"append", k, w.nextVal})
		} else {
			c.ops = append(c.ops, MicroOp{F: Read, Key: key(k)})
			c.value = append(c.value, []any{"r", k, nil})
		}
	}
	c.seq++
	c.busy, c.attempt, c.heldBy = true, 0, 0
	w.record(history.Op{Type: history.Invoke, Process: c.proc, F: "txn", Value: c.value})
}

func (w *world) complete(c *wclient, typ history.Type, res []MicroResult, why string) {
	v := c.value
	if typ == history.Ok {
		v = make([]any, len(res))
		for i, r := range res {
			k, _ := strconv.ParseInt(r.Key[1:], 10, 64)
			if r.F == Read {
				l := []any{}
				for _, e := range r.List {
					x, _ := strconv.ParseInt(e, 10, 64)
					l = append(l, x)
				}
				v[i] = []any{"r", k, l}
			} else {
				x, _ := strconv.ParseInt(r.Value, 10, 64)
				v[i] = []any{"append", k, x}
			}
		}
	}
	w.record(history.Op{Type: typ, Process: c.proc, F: "txn", Value: v, Error: why})
	c.busy = false
	if typ == history.Info {
		c.proc += 1000
	}
}

// clientStep sends c's request to the group its configuration names as
// coordinator; the reply is lost sometimes, and then the same request is
// repeated later.
func (w *world) clientStep(c *wclient) {
	if !c.busy {
		w.newTxn(c)
	}
	c.attempt++
	if c.attempt > 400 {
		w.complete(c, history.Info, nil, "gave up")
		return
	}
	if g := c.heldBy; g != 0 {
		if w.rng.Intn(20) == 0 {
			c.heldBy = 0 // the holding replica lost its leadership: ask again
			return
		}
		out, done := w.groups[g].Answer(c.id, c.seq)
		if done {
			c.heldBy = 0
			w.reply(c, g, out)
		}
		return
	}
	owner := c.cfg.Shards[lowestShard(c.ops)]
	if owner == 0 || w.groups[owner] == nil {
		c.cfg = w.ctlOp(shardctl.Op{Kind: shardctl.Query, Num: -1}).Config
		return
	}
	out := w.apply(owner, c.id, c.seq, EncodeTxnRequest(c.ops))
	if w.rng.Intn(10) == 0 {
		return // reply lost
	}
	if w.groups[owner].Deferred(out) {
		w.stats.held++
		c.heldBy = owner
		return
	}
	w.reply(c, owner, out)
}

// reply takes group g's answer to c's request.
func (w *world) reply(c *wclient, g replica.GroupID, out []byte) {
	if out == nil {
		w.t.Fatalf("client %d seq %d: stale reply from group %d", c.id, c.seq, g)
	}
	r, err := DecodeReply(out)
	if err != nil {
		w.t.Fatal(err)
	}
	switch r.Status {
	case StatusOK:
		w.stats.ok++
		if w.onOK != nil {
			w.onOK(r.Results)
		}
		w.complete(c, history.Ok, r.Results, "")
	case StatusAborted:
		w.stats.aborted++
		w.complete(c, history.Fail, nil, r.Err)
	case StatusWrongGroup:
		w.stats.wrong++
		c.cfg = w.ctlOp(shardctl.Op{Kind: shardctl.Query, Num: -1}).Config
	case StatusRetry:
		w.stats.retries++
	default:
		w.t.Fatalf("reply %+v", r)
	}
}

// pump delivers one random outbox message of group g, maybe twice, and
// proposes the answer back unless it is lost.
func (w *world) pump(g replica.GroupID) {
	box := w.groups[g].Outbox()
	if len(box) == 0 {
		return
	}
	m := box[w.rng.Intn(len(box))]
	if w.groups[m.To] == nil {
		return
	}
	for copies := 1 + w.rng.Intn(2); copies > 0; copies-- {
		ans := w.apply(m.To, 0, 0, m.Op)
		if len(ans) > 0 && w.rng.Intn(5) != 0 {
			w.apply(g, 0, 0, ans)
		}
	}
}

func (w *world) learnConfig(g replica.GroupID) {
	grp := w.groups[g]
	r := w.ctlOp(shardctl.Op{Kind: shardctl.Query, Num: int64(grp.ConfigNum() + 1)})
	if r.Config.Num == grp.ConfigNum()+1 {
		w.apply(g, 0, 0, EncodeConfigRequest(&r.Config))
	}
}

func (w *world) restart(g replica.GroupID) {
	snap, err := w.groups[g].Snapshot()
	if err != nil {
		w.t.Fatal(err)
	}
	n := NewGroup(g)
	if err := n.Restore(snap); err != nil {
		w.t.Fatalf("restore group %d: %v", g, err)
	}
	again, _ := n.Snapshot()
	if string(again) != string(snap) {
		w.t.Fatalf("group %d: snapshot not stable across restore", g)
	}
	w.groups[g] = n
}

func (w *world) reconfigure() {
	latest := w.ctl.Latest()
	members := latest.GroupIDs()
	switch x := w.rng.Intn(3); {
	case x == 0 && len(members) < len(w.gids):
		for _, g := range w.gids {
			if !slices.Contains(members, g) {
				w.ctlOp(shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{g: {replica.NodeID(g)}}})
				return
			}
		}
	case x == 1 && len(members) > 1:
		w.ctlOp(shardctl.Op{Kind: shardctl.Leave, GIDs: []replica.GroupID{members[w.rng.Intn(len(members))]}})
	default:
		w.ctlOp(shardctl.Op{Kind: shardctl.Move, Shard: w.rng.Intn(shardctl.NShards), GID: members[w.rng.Intn(len(members))]})
	}
}

// run does steps random actions, then lets everything settle and reads
// every key once.
func (w *world) run(steps, nclients int, abandon bool) {
	w.random(steps, nclients, abandon)
	w.settle()
}

// runSteps runs the random phase and lets it settle, without final reads.
func (w *world) runSteps(steps, nclients int) {
	w.random(steps, nclients, true)
	w.settleOnly()
}

func (w *world) random(steps, nclients int, abandon bool) {
	for i := 0; i < nclients; i++ {
		w.clients = append(w.clients, &wclient{id: uint64(100 + i), proc: history.Process(i)})
	}
	for step := 0; step < steps; step++ {
		g := w.gids[w.rng.Intn(len(w.gids))]
		switch x := w.rng.Intn(100); {
		case x < 40:
			w.clientStep(w.clients[w.rng.Intn(nclients)])
		case x < 80:
			w.pump(g)
		case x < 90:
			w.learnConfig(g)
		case x < 93:
			w.restart(g)
		case x < 95:
			if p := w.groups[g].Pending(); abandon && len(p) > 0 {
				w.apply(g, 0, 0, EncodeAbandon(p[w.rng.Intn(len(p))]))
			}
		case x < 96:
			w.reconfigure()
		}
	}
}

func (w *world) settle() {
	w.settleOnly()
	w.finalReads()
}

// settleOnly stops reconfiguring and delivers everything until every
// client is done.
func (w *world) settleOnly() {
	for round := 0; round < 20000; round++ {
		busy := false
		for _, c := range w.clients {
			if c.busy {
				busy = true
				w.clientStep(c)
			}
		}
		latest := w.ctl.Latest().Num
		for _, g := range w.gids {
			w.learnConfig(g)
			if len(w.groups[g].Outbox()) > 0 || w.groups[g].ConfigNum() < latest {
				busy = true
				w.pump(g)
			}
		}
		if !busy {
			break
		}
	}
	for _, c := range w.clients {
		if c.busy {
			w.t.Fatalf("client %d still busy after settling", c.id)
		}
	}
}

// finalReads reads every key once.
func (w *world) finalReads() {
	w.gen = nil
	final := &wclient{id: 999, proc: 999}
	for k := int64(0); k < 8; k++ {
		final.ops, final.value = []MicroOp{{F: Read, Key: key(k)}}, []any{[]any{"r", k, nil}}
		final.seq++
		final.busy, final.attempt = true, 0
		w.record(history.Op{Type: history.Invoke, Process: final.proc, F: "txn", Value: final.value})
		for final.busy {
			w.clientStep(final)
			for _, g := range w.gids {
				w.pump(g)
			}
		}
	}
}

// checkOwnership: every shard of the latest configuration is served by
// exactly its owner once everything settled, and no group serves a shard
// it does not own.
func (w *world) checkOwnership() {
	latest := w.ctl.Latest()
	for _, g := range w.gids {
		grp := w.groups[g]
		if grp.ConfigNum() != latest.Num {
			w.t.Fatalf("group %d at config %d, latest %d", g, grp.ConfigNum(), latest.Num)
		}
		want := latest.ShardsOf(g)
		if got := grp.Serving(); !slices.Equal(got, want) {
			w.t.Fatalf("group %d serves %v, owns %v", g, got, want)
		}
		if grp.Locked() != 0 {
			w.t.Fatalf("group %d still holds %d prepared transactions", g, grp.Locked())
		}
	}
}

func seeds(t *testing.T, def int) int {
	if s := os.Getenv("CHAOS_SIM_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_SIM_SEEDS=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return def / 5
	}
	return def
}

func TestGroupsStrictSerializableUnderFaultsAndMoves(t *testing.T) {
	n := seeds(t, 200)
	var total struct{ ok, aborted, wrong, held int }
	for seed := int64(1); seed <= int64(n); seed++ {
		w := newWorld(t, seed, 3)
		w.run(3000, 5, true)
		w.checkOwnership()
		res, err := elle.Check("list-append", w.hist, elle.Options{})
		if err != nil {
			t.Fatalf("seed %d: elle: %v", seed, err)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("seed %d: history not strict-serializable: %+v\nreplay: go test ./kvnode/txn -run 'TestGroupsStrictSerializableUnderFaultsAndMoves' with the loop starting at seed %d", seed, res, seed)
		}
		total.ok += w.stats.ok
		total.aborted += w.stats.aborted
		total.wrong += w.stats.wrong
		total.held += w.stats.held
	}
	t.Logf("%d seeds: %d committed, %d aborted, %d wrong-group redirects, %d held until decided", n, total.ok, total.aborted, total.wrong, total.held)
	if total.ok == 0 || total.aborted == 0 || total.wrong == 0 || total.held == 0 {
		t.Fatalf("the sweep did not exercise commits, aborts, redirects and held requests: %+v", total)
	}
}
