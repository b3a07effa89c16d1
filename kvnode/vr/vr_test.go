package vr

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// disk holds what a replica persisted, applied in the contract's order.
type disk struct {
	state   []byte
	snap    *replica.Snapshot
	entries map[uint64][]byte
}

func (d *disk) persist(p replica.Persist) {
	if p.State != nil {
		d.state = p.State
	}
	if p.Truncate {
		for i := range d.entries {
			if i > p.TruncateAfter {
				delete(d.entries, i)
			}
		}
	}
	for _, e := range p.Entries {
		d.entries[e.Index] = e.Data
	}
	if p.Snapshot != nil {
		d.snap = p.Snapshot
		for i := range d.entries {
			if i <= p.Snapshot.Index {
				delete(d.entries, i)
			}
		}
	}
}

func (d *disk) durable() *replica.Durable {
	out := &replica.Durable{State: d.state, Snapshot: d.snap}
	for _, i := range slices.Sorted(func(yield func(uint64) bool) {
		for i := range d.entries {
			if !yield(i) {
				return
			}
		}
	}) {
		out.Entries = append(out.Entries, replica.Entry{Index: i, Data: d.entries[i]})
	}
	return out
}

// recorder is the kv store that also records what was applied where.
type recorder struct {
	*kv.Store
	applied map[uint64][]string
	// onApply, when set, sees each request applied: its op number, its
	// position in the op's batch and its description.
	onApply func(op uint64, k int, req string)
}

func newRecorder() *recorder { return &recorder{Store: kv.NewStore(), applied: map[uint64][]string{}} }

func (r *recorder) Apply(index uint64, req replica.Request) []byte {
	d := fmt.Sprintf("%d/%d/%x", req.ClientID, req.Seq, req.Op)
	r.applied[index] = append(r.applied[index], d)
	if r.onApply != nil {
		r.onApply(index, len(r.applied[index])-1, d)
	}
	return r.Store.Apply(index, req)
}

// group drives replicas deterministically: Readies are persisted, then
// their messages queued and delivered in FIFO order.
type group struct {
	t     testing.TB
	ids   []replica.NodeID
	cfg   map[replica.NodeID]replica.Config
	nodes map[replica.NodeID]*Node
	sms   map[replica.NodeID]*recorder
	disks map[replica.NodeID]*disk
	down  map[replica.NodeID]bool
	queue []replica.Message
	drop  func(m replica.Message) bool
	reads map[replica.NodeID][]replica.ReadState
	sent  map[string]int // messages sent, by type
	// chosen, when set, records every request applied anywhere, by op
	// number and position, across restarts: a second value is a failure.
	chosen map[[2]uint64]string
	// onRead and onResult, when set, see each reported read and each
	// applied request's result as drained, when the node's state machine
	// is exactly as the runtime would query it.
	onRead   func(id replica.NodeID, rs replica.ReadState)
	onResult func(id replica.NodeID, r replica.Result)
}

func newGroup(t testing.TB, n int, tweak func(*replica.Config)) *group {
	g := &group{t: t, cfg: map[replica.NodeID]replica.Config{}, nodes: map[replica.NodeID]*Node{},
		sms: map[replica.NodeID]*recorder{}, disks: map[replica.NodeID]*disk{}, down: map[replica.NodeID]bool{},
		reads: map[replica.NodeID][]replica.ReadState{}, sent: map[string]int{}}
	for i := 1; i <= n; i++ {
		g.ids = append(g.ids, replica.NodeID(i))
	}
	for _, id := range g.ids {
		cfg := DefaultConfig(id, g.ids)
		if tweak != nil {
			tweak(&cfg)
		}
		g.cfg[id] = cfg
		g.disks[id] = &disk{entries: map[uint64][]byte{}}
		g.start(id)
	}
	return g
}

func (g *group) start(id replica.NodeID) {
	g.t.Helper()
	sm := newRecorder()
	if g.chosen != nil {
		sm.onApply = func(op uint64, k int, req string) {
			key := [2]uint64{op, uint64(k)}
			if prev, ok := g.chosen[key]; ok && prev != req {
				g.t.Fatalf("node %d applied %s at op %d (#%d), another replica applied %s there", id, req, op, k, prev)
			}
			g.chosen[key] = req
		}
	}
	node, err := New(g.cfg[id], sm, g.disks[id].durable())
	if err != nil {
		g.t.Fatalf("start node %d: %v", id, err)
	}
	g.nodes[id], g.sms[id], g.down[id] = node, sm, false
}

func (g *group) drain() {
	for _, id := range g.ids {
		for !g.down[id] && g.nodes[id].HasReady() {
			rd := g.nodes[id].Ready()
			g.disks[id].persist(rd.Persist)
			g.queue = append(append(g.queue, rd.Early...), rd.Messages...)
			for _, m := range append(rd.Early[:len(rd.Early):len(rd.Early)], rd.Messages...) {
				if m.Source() != m.Dest() { // a core's own acknowledgement never travels
					g.sent[fmt.Sprintf("%T", m)]++
				}
			}
			if g.onResult != nil {
				for _, r := range rd.Results {
					g.onResult(id, r)
				}
			}
			g.reads[id] = append(g.reads[id], rd.Reads...)
			if g.onRead != nil {
				for _, rs := range rd.Reads {
					g.onRead(id, rs)
				}
			}
		}
	}
}

func (g *group) settle() {
	g.t.Helper()
	g.drain()
	for steps := 0; len(g.queue) > 0; steps++ {
		if steps > 1_000_000 {
			g.t.Fatal("messages never settle")
		}
		m := g.queue[0]
		g.queue = g.queue[1:]
		if g.down[m.Dest()] || g.down[m.Source()] || (g.drop != nil && g.drop(m)) {
			continue
		}
		g.nodes[m.Dest()].Step(m)
		g.drain()
	}
}

func (g *group) tick(k int) {
	g.t.Helper()
	for range k {
		for _, id := range g.ids {
			if !g.down[id] {
				g.nodes[id].Tick()
			}
		}
		g.settle()
	}
}

// primary ticks until exactly one live replica is primary and returns it.
func (g *group) primary() replica.NodeID {
	g.t.Helper()
	for range 1000 {
		var ps []replica.NodeID
		for _, id := range g.ids {
			if !g.down[id] && g.nodes[id].Status().Role == RolePrimary {
				ps = append(ps, id)
			}
		}
		if len(ps) == 1 {
			return ps[0]
		}
		g.tick(1)
	}
	g.t.Fatal("no single primary after 1000 ticks")
	return 0
}

// checkAgreement fails if two replicas applied different requests at one
// op number.
func (g *group) checkAgreement() {
	g.t.Helper()
	seen := map[uint64][]string{}
	for _, id := range g.ids {
		for op, reqs := range g.sms[id].applied {
			if prev, ok := seen[op]; ok && !slices.Equal(prev, reqs) {
				g.t.Fatalf("op %d: replicas applied %v and %v", op, prev, reqs)
			}
			seen[op] = reqs
		}
	}
}

func put(client, seq uint64, k, v string) replica.Request {
	return replica.Request{ClientID: client, Seq: seq, Op: kv.Op{Kind: kv.Put, Key: k, Value: v}.Encode()}
}

func value(reqs ...replica.Request) Value { return Value{Reqs: reqs} }

func (g *group) get(id replica.NodeID, key string) string {
	v, _ := g.sms[id].Get(key)
	return v
}

func TestNormalOperationCommitsEverywhere(t *testing.T) {
	g := newGroup(t, 3, nil)
	p := g.primary()
	for i := range 50 {
		if err := g.nodes[p].Propose(put(1, uint64(i+1), "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	g.tick(5)
	for _, id := range g.ids {
		if got := g.get(id, "k"); got != "49" {
			t.Errorf("node %d: k = %q, want 49", id, got)
		}
	}
	g.checkAgreement()
	for _, id := range g.ids {
		if id == p {
			continue
		}
		err := g.nodes[id].Propose(put(2, 1, "x", "y"))
		var nl *replica.NotLeaderError
		if !asNotLeader(err, &nl) || nl.Leader != p {
			t.Errorf("backup %d: Propose = %v, want NotLeaderError naming %d", id, err, p)
		}
	}
}

func asNotLeader(err error, out **replica.NotLeaderError) bool {
	nl, ok := err.(*replica.NotLeaderError)
	*out = nl
	return ok
}

// A view change must take the log of the largest last normal view, even
// when another replica holds a longer log from an older view: the longer
// log's extra ops were never committed, the shorter one may hold ops that
// were.
func TestViewChangePicksLargestLastNormalViewNotLongestLog(t *testing.T) {
	ids := []replica.NodeID{1, 2, 3, 4, 5}
	sm := newRecorder()
	n, err := New(DefaultConfig(2, ids), sm, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Ready()
	const view = 6 // peers[6 mod 5] is node 2
	long := Suffix{}
	for i := range 5 {
		long.Entries = append(long.Entries, value(put(9, uint64(i+1), "k", "old")))
	}
	short := Suffix{Entries: []Value{value(put(7, 1, "k", "a")), value(put(7, 2, "k", "b"))}}
	n.Step(&DoViewChange{Header: Header{From: 3, To: 2}, View: view, LastNormal: 1, Log: long})
	if st := n.Status(); st.Role != RoleViewChange || st.Epoch != view {
		t.Fatalf("after one DoViewChange: %+v, want view change to %d", st, view)
	}
	n.Step(&DoViewChange{Header: Header{From: 4, To: 2}, View: view, LastNormal: 3, Commit: 1, Log: short})
	st := n.Status()
	if st.Role != RolePrimary || st.Epoch != view {
		t.Fatalf("after a majority of DoViewChanges: %+v, want primary of view %d", st, view)
	}
	if n.opNum() != 2 {
		t.Fatalf("new log has %d ops, want the 2 of the last-normal-view-3 log", n.opNum())
	}
	rd := n.Ready()
	starts := 0
	for _, m := range rd.Messages {
		if sv, ok := m.(*StartView); ok {
			starts++
			if sv.View != view || sv.Log.Last() != 2 || sv.Commit != 1 {
				t.Errorf("StartView to %d: view %d, last op %d, commit %d; want %d, 2, 1", sv.To, sv.View, sv.Log.Last(), sv.Commit, view)
			}
		}
	}
	if starts != 4 {
		t.Errorf("%d StartView messages, want 4", starts)
	}
	if got := sm.applied[1]; len(got) != 1 || got[0] != fmt.Sprintf("7/1/%x", put(7, 1, "k", "a").Op) {
		t.Errorf("applied op 1 = %v, want client 7's first put", got)
	}
	if _, ok := sm.applied[2]; ok {
		t.Error("op 2 applied before it was committed in the new view")
	}
	if rd.Persist.State == nil || len(rd.Persist.Entries) != 2 {
		t.Errorf("persist = %+v, want the view and the 2 new ops", rd.Persist)
	}
}

// crashAndRestart runs a few committed ops, then restarts node 3 from its
// disk and returns the nonce of its Recovery.
func crashAndRestart(t *testing.T) (*group, uint64) {
	t.Helper()
	g := newGroup(t, 3, nil)
	p := g.primary()
	for i := range 5 {
		if err := g.nodes[p].Propose(put(1, uint64(i+1), "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	g.tick(3)
	g.down[3] = true
	g.start(3)
	g.down[3] = true // keep the group from answering on its own
	n := g.nodes[3]
	if st := n.Status(); st.Role != RoleRecovering {
		t.Fatalf("restarted replica: %+v, want recovering", st)
	}
	rd := n.Ready()
	g.disks[3].persist(rd.Persist)
	var nonce uint64
	for _, m := range rd.Messages {
		r, ok := m.(*Recovery)
		if !ok {
			t.Fatalf("recovering replica sent %T", m)
		}
		nonce = r.Nonce
	}
	if nonce == 0 {
		t.Fatal("no Recovery sent")
	}
	return g, nonce
}

func TestRecoveryIgnoresStaleNonce(t *testing.T) {
	g, nonce := crashAndRestart(t)
	n := g.nodes[3]
	// Answers to an earlier Recovery carry another nonce; they must not
	// count, even from the primary with a whole log.
	primaryLog := g.nodes[1].suffix(0)
	n.Step(&RecoveryResponse{Header: Header{From: 1, To: 3}, View: 0, Nonce: nonce + 1, Primary: true, Commit: 5, Log: primaryLog})
	n.Step(&RecoveryResponse{Header: Header{From: 2, To: 3}, View: 0, Nonce: nonce + 1})
	if st := n.Status(); st.Role != RoleRecovering {
		t.Fatalf("after answers with a stale nonce: %+v, want still recovering", st)
	}
	// A majority with the right nonce but without the primary is not
	// enough either.
	n.Step(&RecoveryResponse{Header: Header{From: 2, To: 3}, View: 0, Nonce: nonce})
	if st := n.Status(); st.Role != RoleRecovering {
		t.Fatalf("without the primary's answer: %+v, want still recovering", st)
	}
	n.Step(&RecoveryResponse{Header: Header{From: 1, To: 3}, View: 0, Nonce: nonce, Primary: true, Commit: 5, Log: primaryLog})
	if st := n.Status(); st.Role != RoleBackup || st.Commit != 5 || st.Applied != 5 {
		t.Fatalf("after a majority with the primary: %+v, want a backup that applied 5 ops", st)
	}
}

func TestRestartedReplicasUseFreshNonces(t *testing.T) {
	g, first := crashAndRestart(t)
	g.start(3)
	rd := g.nodes[3].Ready()
	for _, m := range rd.Messages {
		if r, ok := m.(*Recovery); ok && r.Nonce == first {
			t.Fatalf("second restart reused nonce %d", first)
		}
	}
}

func TestRecoveringReplicaDoesNotVote(t *testing.T) {
	g, _ := crashAndRestart(t)
	n := g.nodes[3]
	n.Step(&StartViewChange{Header: Header{From: 1, To: 3}, View: 5})
	n.Step(&StartViewChange{Header: Header{From: 2, To: 3}, View: 5})
	n.Step(&DoViewChange{Header: Header{From: 2, To: 3}, View: 6, LastNormal: 0})
	n.Step(&Prepare{Header: Header{From: 1, To: 3}, View: 0, Op: 6, Commit: 5, Value: value(put(1, 9, "k", "x"))})
	n.Step(&Commit{Header: Header{From: 1, To: 3}, View: 0, Commit: 5, Op: 6})
	n.Step(&Recovery{Header: Header{From: 2, To: 3}, Nonce: 42})
	n.Step(&GetState{Header: Header{From: 2, To: 3}, View: 0, Op: 0})
	if st := n.Status(); st.Role != RoleRecovering || st.Epoch != 0 {
		t.Fatalf("after votes and requests: %+v, want still recovering in view 0", st)
	}
	if rd := n.Ready(); len(rd.Messages) != 0 {
		t.Fatalf("recovering replica answered: %v", rd.Messages)
	}
	if err := n.Propose(put(5, 1, "k", "v")); err == nil {
		t.Fatal("recovering replica accepted a proposal")
	}
}

// A backup that learns of a new view without its log keeps its own log
// until the new primary's arrives, then truncates its uncommitted ops
// (durably) before taking the new ones.
func TestStateTransferTruncatesUncommittedSuffix(t *testing.T) {
	ids := []replica.NodeID{1, 2, 3}
	sm := newRecorder()
	n, err := New(DefaultConfig(3, ids), sm, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &disk{entries: map[uint64][]byte{}}
	d.persist(n.Ready().Persist)
	// View 0 (primary 1): ops 1..3 arrive, only op 1 commits.
	for op := uint64(1); op <= 3; op++ {
		n.Step(&Prepare{Header: Header{From: 1, To: 3}, View: 0, Op: op, Value: value(put(1, op, "k", fmt.Sprint("old", op)))})
	}
	n.Step(&Commit{Header: Header{From: 1, To: 3}, View: 0, Commit: 1, Op: 3})
	d.persist(n.Ready().Persist)
	if len(d.entries) != 3 || n.commit != 1 {
		t.Fatalf("before: %d entries on disk, commit %d; want 3 and 1", len(d.entries), n.commit)
	}
	// The primary of view 1 (node 2) speaks; this replica missed its
	// StartView.
	n.Step(&Commit{Header: Header{From: 2, To: 3}, View: 1, Commit: 2, Op: 2})
	rd := n.Ready()
	d.persist(rd.Persist)
	var ask *GetState
	for _, m := range rd.Messages {
		if gs, ok := m.(*GetState); ok {
			ask = gs
		}
	}
	if ask == nil || ask.To != 2 || ask.View != 1 || ask.Op != 1 {
		t.Fatalf("want GetState to node 2 for view 1 above op 1, got %+v", ask)
	}
	if rd.Persist.Truncate || n.opNum() != 3 || n.lastNormal != 0 {
		t.Fatalf("log changed before the new one arrived: truncate %v, op %d, last normal %d", rd.Persist.Truncate, n.opNum(), n.lastNormal)
	}
	newOp := put(2, 1, "k", "new2")
	n.Step(&NewState{Header: Header{From: 2, To: 3}, View: 1, Commit: 2, Log: Suffix{After: 1, Entries: []Value{value(newOp)}}})
	rd = n.Ready()
	if !rd.Persist.Truncate || rd.Persist.TruncateAfter != 1 {
		t.Fatalf("persist = %+v, want truncation after op 1", rd.Persist)
	}
	d.persist(rd.Persist)
	if len(d.entries) != 2 || n.opNum() != 2 || n.lastNormal != 1 {
		t.Fatalf("after: %d entries on disk, op %d, last normal %d; want 2, 2, 1", len(d.entries), n.opNum(), n.lastNormal)
	}
	if got, want := sm.applied[2], []string{fmt.Sprintf("2/1/%x", newOp.Op)}; !slices.Equal(got, want) {
		t.Fatalf("op 2 applied %v, want %v", got, want)
	}
	if v, _ := sm.Get("k"); v != "new2" {
		t.Fatalf("k = %q, want new2", v)
	}
	// A restart from this disk sees the new log, not the old suffix.
	sm2 := newRecorder()
	if _, err := New(DefaultConfig(3, ids), sm2, d.durable()); err != nil {
		t.Fatal(err)
	}
	if v, _ := sm2.Get("k"); v != "old1" && v != "new2" {
		t.Fatalf("restarted replica has k = %q", v)
	}
}

func TestPrimaryCrashElectsNewPrimaryAndKeepsCommittedOps(t *testing.T) {
	g := newGroup(t, 3, func(c *replica.Config) { c.SnapshotEvery = 7 })
	p := g.primary()
	for i := range 20 {
		if err := g.nodes[p].Propose(put(1, uint64(i+1), "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	g.tick(3)
	g.down[p] = true
	q := g.primary()
	if q == p {
		t.Fatal("crashed primary still primary")
	}
	if err := g.nodes[q].Propose(put(2, 1, "j", "after")); err != nil {
		t.Fatal(err)
	}
	g.tick(3)
	g.start(p)
	g.tick(60)
	for _, id := range g.ids {
		if k, j := g.get(id, "k"), g.get(id, "j"); k != "19" || j != "after" {
			t.Errorf("node %d: k=%q j=%q, want 19 and after", id, k, j)
		}
	}
	if st := g.nodes[p].Status(); st.Role != RoleBackup {
		t.Errorf("restarted old primary: %+v, want backup", st)
	}
	g.checkAgreement()
}

// With durable state the group survives every replica crashing at once:
// nobody can answer a Recovery, so each rejoins view changes from disk.
func TestAllCrashRecoverFromDisk(t *testing.T) {
	g := newGroup(t, 3, nil)
	p := g.primary()
	for i := range 10 {
		if err := g.nodes[p].Propose(put(1, uint64(i+1), "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	g.tick(3)
	for _, id := range g.ids {
		g.start(id)
	}
	q := g.primary()
	if err := g.nodes[q].Propose(put(2, 1, "j", "x")); err != nil {
		t.Fatal(err)
	}
	g.tick(5)
	for _, id := range g.ids {
		if k := g.get(id, "k"); k != "9" {
			t.Errorf("node %d: k=%q, want 9", id, k)
		}
	}
	g.checkAgreement()
}

func TestNewRejectsBadInput(t *testing.T) {
	ids := []replica.NodeID{1, 2, 3}
	if _, err := New(DefaultConfig(4, ids), newRecorder(), nil); err == nil {
		t.Error("ID outside the group accepted")
	}
	if _, err := New(DefaultConfig(1, ids), nil, nil); err == nil {
		t.Error("nil state machine accepted")
	}
	if _, err := New(DefaultConfig(1, ids), newRecorder(), &replica.Durable{State: []byte{9, 9}}); err == nil {
		t.Error("corrupt hard state accepted")
	}
	n, err := New(DefaultConfig(1, ids), newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Nil messages, strangers and self-addressed messages are ignored.
	var nilPrepare *Prepare
	n.Step(nilPrepare)
	n.Step(nil)
	n.Step(&Prepare{Header: Header{From: 9, To: 1}, View: 0, Op: 1})
	n.Step(&StartViewChange{Header: Header{From: 1, To: 1}, View: 3})
	if st := n.Status(); st.Role != RolePrimary || st.Epoch != 0 {
		t.Fatalf("after junk: %+v", st)
	}
}

// A primary's Prepares leave before its own write (Ready.Early), once its
// view's start has left, but it counts its own log only when the PrepareOK
// it sends itself comes back after that write: until then an op needs a
// majority of backups, and no commit number it sends covers the op.
func TestPrimaryCountsItselfOnlyOnceDurable(t *testing.T) {
	g := newGroup(t, 3, nil)
	p := g.primary()
	pri := g.nodes[p]
	// The view's first op goes out with the primary's own write, not
	// before it.
	if err := pri.Propose(put(1, 1, "k", "v")); err != nil {
		t.Fatal(err)
	}
	if rd := pri.Ready(); len(rd.Early) != 0 {
		t.Fatalf("first op of the view: %d early messages, want them behind the write", len(rd.Early))
	} else {
		g.queue = append(g.queue, rd.Messages...)
	}
	g.settle()
	commit := pri.Status().Commit
	b := g.ids[0]
	if b == p {
		b = g.ids[1]
	}

	if err := pri.Propose(put(1, 2, "k", "w")); err != nil {
		t.Fatal(err)
	}
	rd := pri.Ready()
	prepares := map[replica.NodeID]*Prepare{}
	for _, m := range rd.Early {
		if pri.Acknowledges(m) {
			t.Fatalf("early %T acknowledges", m)
		}
		if pr, ok := m.(*Prepare); ok {
			prepares[pr.To] = pr
		}
	}
	var own []replica.Message
	for _, m := range rd.Messages {
		if m.Dest() == p {
			own = append(own, m)
		}
	}
	if len(prepares) != 2 || len(own) != 1 || len(rd.Persist.Entries) != 1 {
		t.Fatalf("%d early Prepares, own acknowledgements %v, %d entries; want 2, one PrepareOK, 1", len(prepares), own, len(rd.Persist.Entries))
	}
	op := prepares[b].Op

	// One backup's durable PrepareOK is not a majority without the
	// primary's own.
	g.nodes[b].Step(prepares[b])
	brd := g.nodes[b].Ready()
	for _, m := range brd.Early {
		t.Fatalf("backup sent %T early", m)
	}
	for _, m := range brd.Messages {
		pri.Step(m)
	}
	if got := pri.Status().Commit; got != commit {
		t.Fatalf("commit %d after one backup's ack, want %d", got, commit)
	}
	pri.Tick()
	pri.Tick()
	for _, m := range pri.Ready().Early {
		if c, ok := m.(*Commit); ok && c.Commit >= op {
			t.Fatalf("Commit claims %d before op %d is durable at a majority", c.Commit, op)
		}
	}

	// The primary's own write is durable: now it is a majority.
	pri.Step(own[0])
	if got := pri.Status().Commit; got != op {
		t.Fatalf("commit %d after the primary's own ack, want %d", got, op)
	}
	if rd := pri.Ready(); len(rd.Results) != 1 {
		t.Fatalf("results %v, want the put's", rd.Results)
	}

	// A forged PrepareOK from the primary, or one of another view, counts
	// for nothing; a message of another type from itself is dropped.
	if err := pri.Propose(put(1, 3, "k", "x")); err != nil {
		t.Fatal(err)
	}
	rd = pri.Ready()
	commit = pri.Status().Commit
	pri.Step(&PrepareOK{Header: Header{From: p, To: p}, View: pri.Status().Epoch + 1, Op: op + 1})
	pri.Step(&Commit{Header: Header{From: p, To: p}, View: pri.Status().Epoch, Commit: op + 1, Op: op + 1})
	if got := pri.Status().Commit; got != commit {
		t.Fatalf("commit moved to %d on a PrepareOK of another view", got)
	}
}
