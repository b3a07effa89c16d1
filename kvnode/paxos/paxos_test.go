package paxos

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func TestCommitOne(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			c := newCluster(t, n, nil)
			l := c.leader()
			if err := c.nodes[l].Propose(put(1, 1, "k", "v")); err != nil {
				t.Fatal(err)
			}
			c.settle()
			c.tick(2) // heartbeats carry the commit index to everyone
			for _, id := range c.ids {
				if got := c.value(id, "k"); got != "v" {
					t.Errorf("node %d: k=%q", id, got)
				}
				if len(c.results[id]) != 1 || c.results[id][0].ClientID != 1 {
					t.Errorf("node %d: results %v", id, c.results[id])
				}
			}
			st := c.nodes[l].Status()
			if st.Role != RoleLeader || st.Leader != l || st.Epoch == 0 || st.Commit != 1 || st.Applied != 1 {
				t.Errorf("leader status %+v", st)
			}
		})
	}
}

func TestFollowerRedirects(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	for _, id := range c.ids {
		if id == l {
			continue
		}
		err := c.nodes[id].Propose(put(1, 1, "k", "v"))
		var nl *replica.NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, replica.ErrNotLeader) || nl.Leader != l {
			t.Fatalf("node %d: err %v, want NotLeaderError naming %d", id, err, l)
		}
		if st := c.nodes[id].Status(); st.Role != RoleFollower || st.Leader != l {
			t.Fatalf("follower status %+v", st)
		}
	}
}

func TestCandidateQueuesProposals(t *testing.T) {
	c := newCluster(t, 3, nil)
	// Hold back every message so node 1 stays in phase 1.
	c.drop = func(replica.Message) bool { return true }
	n1 := c.nodes[1]
	for n1.Status().Role != RoleCandidate {
		n1.Tick()
	}
	if err := n1.Propose(put(1, 1, "q", "x")); err != nil {
		t.Fatalf("candidate rejected a proposal: %v", err)
	}
	c.settle()
	c.drop = nil
	// Only node 1 ticks, so it wins the re-run election, with messages
	// flowing, and must still hold the queued request.
	for i := 0; i < 200 && n1.Status().Role == RoleCandidate; i++ {
		n1.Tick()
		c.settle()
	}
	if n1.Status().Role != RoleLeader {
		t.Fatalf("node 1 did not win: %+v", n1.Status())
	}
	c.tick(2)
	for _, id := range c.ids {
		if got := c.value(id, "q"); got != "x" {
			t.Fatalf("node %d: q=%q, queued proposal lost", id, got)
		}
	}
}

// A value accepted only by a minority in an old ballot must be found by
// the next leader's phase 1, re-proposed, and chosen.
func TestPhase1AdoptsMinorityValue(t *testing.T) {
	c := newCluster(t, 5, nil)
	l := c.leader()
	var keep replica.NodeID
	for _, id := range c.ids {
		if id != l {
			keep = id
			break
		}
	}
	// The leader's Accepts reach only one follower: accepted by 2 of 5.
	c.drop = func(m replica.Message) bool {
		_, ok := m.(*Accept)
		return ok && m.Source() == l && m.Dest() != keep
	}
	if err := c.nodes[l].Propose(put(1, 1, "k", "minority")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if c.nodes[l].Status().Commit != 0 {
		t.Fatal("value chosen without a majority")
	}
	c.crash(l)
	c.drop = nil
	nl := c.leader()
	if nl == l {
		t.Fatal("crashed node is leader")
	}
	c.tick(4)
	for _, id := range c.ids {
		if id == l {
			continue
		}
		if got := c.value(id, "k"); got != "minority" {
			t.Fatalf("node %d: k=%q, minority value lost", id, got)
		}
	}
	c.checkAgreement()
}

// A slot chosen while an earlier slot is not: the new leader fills the
// hole with a no-op instead of stalling.
func TestHoleFilledWithNoop(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	// Slot 1's Accepts are lost; slot 2's arrive.
	c.drop = func(m replica.Message) bool {
		a, ok := m.(*Accept)
		return ok && a.Slot == 1
	}
	c.nodes[l].Propose(put(1, 1, "a", "lost"))
	c.nodes[l].Propose(put(2, 1, "b", "kept"))
	c.settle()
	if st := c.nodes[l].Status(); st.Commit != 0 {
		t.Fatalf("commit %d past a hole", st.Commit)
	}
	c.crash(l)
	c.drop = nil
	c.leader()
	c.tick(4)
	for _, id := range c.ids {
		if id == l {
			continue
		}
		st := c.nodes[id].Status()
		if st.Commit < 2 || c.value(id, "b") != "kept" {
			t.Fatalf("node %d stalled: %+v b=%q", id, st, c.value(id, "b"))
		}
		if _, ok := c.sms[id].Get("a"); ok {
			t.Fatalf("node %d applied the lost slot-1 value", id)
		}
		if len(c.sms[id].applied[1]) != 0 {
			t.Fatalf("node %d applied %v at the no-op slot", id, c.sms[id].applied[1])
		}
	}
	c.checkAgreement()
}

// newFollower returns a lone replica 2 of group {1,2,3} for hand-driven
// protocol tests.
func newFollower(t *testing.T) (*Node, *recorder) {
	t.Helper()
	sm := newRecorder()
	n, err := New(DefaultConfig(2, []replica.NodeID{1, 2, 3}), sm, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n, sm
}

func lastReply(t *testing.T, n *Node) *HeartbeatReply {
	t.Helper()
	rd := n.Ready()
	for i := len(rd.Messages) - 1; i >= 0; i-- {
		if r, ok := rd.Messages[i].(*HeartbeatReply); ok {
			return r
		}
	}
	t.Fatalf("no HeartbeatReply in %v", rd.Messages)
	return nil
}

// The follower accepted v1 at slot 1 in ballot b1. A leader of ballot b2
// says "commit through 1". The follower must not apply v1: the chosen
// value may be another one. It asks for it, and applies what it learns.
func TestFollowerDoesNotAssumeOldBallotValueChosen(t *testing.T) {
	f, sm := newFollower(t)
	b1, b2 := Ballot{Round: 1, Node: 1}, Ballot{Round: 2, Node: 3}
	v1 := Value{Reqs: []replica.Request{put(1, 1, "k", "old")}}
	v2 := Value{Reqs: []replica.Request{put(1, 1, "k", "new")}}
	f.Step(&Accept{Header: Header{From: 1, To: 2}, Ballot: b1, Slot: 1, Value: v1})
	f.Ready()
	f.Step(&Heartbeat{Header: Header{From: 3, To: 2}, Ballot: b2, Commit: 1})
	r := lastReply(t, f)
	if st := f.Status(); st.Commit != 0 || st.Applied != 0 {
		t.Fatalf("follower treated an old-ballot value as chosen: %+v", st)
	}
	if r.Commit != 0 || r.LeaderCommit != 1 || r.Ballot != b2 {
		t.Fatalf("reply %+v does not ask for slot 1", r)
	}
	f.Step(&Learn{Header: Header{From: 3, To: 2}, Ballot: b2, Commit: 1, Entries: []LearnEntry{{Slot: 1, Value: v2}}})
	rd := f.Ready()
	if v, _ := sm.Get("k"); v != "new" || f.Status().Commit != 1 {
		t.Fatalf("after Learn: k=%q status %+v", v, f.Status())
	}
	if len(rd.Persist.Entries) != 1 || rd.Persist.Entries[0].Index != 1 {
		t.Fatalf("learned value not persisted: %+v", rd.Persist.Entries)
	}
	if len(rd.Results) != 1 {
		t.Fatalf("results %v", rd.Results)
	}
}

// The same situation, but the follower accepted its value in the
// reporting leader's own ballot: then it is the chosen one.
func TestFollowerTrustsSameBallotValue(t *testing.T) {
	f, sm := newFollower(t)
	b := Ballot{Round: 2, Node: 3}
	f.Step(&Accept{Header: Header{From: 3, To: 2}, Ballot: b, Slot: 1, Value: Value{Reqs: []replica.Request{put(1, 1, "k", "v")}}})
	f.Step(&Heartbeat{Header: Header{From: 3, To: 2}, Ballot: b, Commit: 1})
	if r := lastReply(t, f); r.Commit != 1 {
		t.Fatalf("reply %+v", r)
	}
	if v, _ := sm.Get("k"); v != "v" {
		t.Fatalf("k=%q", v)
	}
}

func TestNackTeachesHigherBallot(t *testing.T) {
	f, _ := newFollower(t)
	hi := Ballot{Round: 7, Node: 3}
	f.Step(&Prepare{Header: Header{From: 3, To: 2}, Ballot: hi, FromSlot: 1})
	rd := f.Ready()
	if rd.Persist.State == nil {
		t.Fatal("promise sent without persisting the promised ballot")
	}
	if _, ok := rd.Messages[0].(*Promise); !ok {
		t.Fatalf("got %T, want Promise", rd.Messages[0])
	}
	f.Step(&Prepare{Header: Header{From: 1, To: 2}, Ballot: Ballot{Round: 3, Node: 1}, FromSlot: 1})
	rd = f.Ready()
	nk, ok := rd.Messages[0].(*Nack)
	if !ok || nk.Promised != hi {
		t.Fatalf("got %+v, want Nack carrying %v", rd.Messages[0], hi)
	}
	// A candidate that receives the Nack bids above it next time.
	c, err := New(DefaultConfig(1, []replica.NodeID{1, 2, 3}), newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for c.Status().Role != RoleCandidate {
		c.Tick()
	}
	rd = c.Ready()
	p := rd.Messages[0].(*Prepare)
	c.Step(&Nack{Header: Header{From: 2, To: 1}, Ballot: p.Ballot, Promised: hi})
	if c.Status().Role != RoleFollower {
		t.Fatalf("candidate did not step down: %+v", c.Status())
	}
	for c.Status().Role != RoleCandidate {
		c.Tick()
	}
	rd = c.Ready()
	if p2 := rd.Messages[0].(*Prepare); !hi.Less(p2.Ballot) {
		t.Fatalf("new bid %v not above %v", p2.Ballot, hi)
	}
}

func TestLeaderStepsDownOnHigherBallot(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	var other replica.NodeID = 1
	if l == 1 {
		other = 2
	}
	b := c.nodes[l].promised
	c.nodes[l].Step(&Accept{Header: Header{From: other, To: l}, Ballot: Ballot{Round: b.Round + 1, Node: other}, Slot: 1})
	if st := c.nodes[l].Status(); st.Role != RoleFollower || st.Leader != other {
		t.Fatalf("leader did not step down: %+v", st)
	}
}

func TestRestartFromDurable(t *testing.T) {
	c := newCluster(t, 3, func(cfg *replica.Config) { cfg.SnapshotEvery = 5 })
	l := c.leader()
	for i := uint64(1); i <= 12; i++ {
		c.nodes[l].Propose(appendReq(1, i, "k", "x"))
		c.settle()
	}
	c.tick(2)
	want := c.value(l, "k")
	if len(want) != 12 {
		t.Fatalf("k=%q before restart", want)
	}
	promised := map[replica.NodeID]Ballot{}
	for _, id := range c.ids {
		promised[id] = c.nodes[id].promised
		c.crash(id)
	}
	c.queue = nil
	for _, id := range c.ids {
		c.start(id)
		n := c.nodes[id]
		if n.promised != promised[id] {
			t.Fatalf("node %d: promised %v after restart, want %v", id, n.promised, promised[id])
		}
		st := n.Status()
		if st.SnapshotIndex == 0 || st.Applied < st.SnapshotIndex {
			t.Fatalf("node %d: status after restart %+v", id, st)
		}
		if got := c.value(id, "k"); len(got) < 10 {
			t.Fatalf("node %d: state not restored: k=%q", id, got)
		}
	}
	// The group continues, with no value lost or applied twice.
	l = c.leader()
	c.nodes[l].Propose(appendReq(1, 13, "k", "y"))
	c.settle()
	c.tick(2)
	for _, id := range c.ids {
		if got := c.value(id, "k"); got != want+"y" {
			t.Fatalf("node %d: k=%q, want %q", id, got, want+"y")
		}
	}
	c.checkAgreement()
	// A restarted acceptor still refuses ballots below its promise.
	f := c.ids[0]
	if f == l {
		f = c.ids[1]
	}
	c.crash(f)
	c.start(f)
	var other replica.NodeID
	for _, id := range c.ids {
		if id != f {
			other = id
			break
		}
	}
	c.nodes[f].Step(&Prepare{Header: Header{From: other, To: f}, Ballot: Ballot{Round: 1, Node: other}, FromSlot: 1})
	rd := c.nodes[f].Ready()
	if _, ok := rd.Messages[len(rd.Messages)-1].(*Nack); !ok {
		t.Fatalf("restarted acceptor answered a stale Prepare with %T", rd.Messages[len(rd.Messages)-1])
	}
}

func TestSnapshotCatchUp(t *testing.T) {
	c := newCluster(t, 3, func(cfg *replica.Config) { cfg.SnapshotEvery = 10 })
	l := c.leader()
	var lag replica.NodeID
	for _, id := range c.ids {
		if id != l {
			lag = id
			break
		}
	}
	c.drop = func(m replica.Message) bool { return m.Source() == lag || m.Dest() == lag }
	for i := uint64(1); i <= 55; i++ {
		c.nodes[l].Propose(appendReq(i%3+1, i, fmt.Sprint("k", i%4), "z"))
		c.settle()
	}
	if c.nodes[l].Status().SnapshotIndex < 40 {
		t.Fatalf("leader did not snapshot: %+v", c.nodes[l].Status())
	}
	c.drop = nil
	before := c.sent["*paxos.InstallSnapshot"]
	c.tick(6)
	if c.sent["*paxos.InstallSnapshot"] == before {
		t.Fatal("no snapshot sent to the lagging replica")
	}
	for k := range 4 {
		key := fmt.Sprint("k", k)
		if a, b := c.value(l, key), c.value(lag, key); a != b {
			t.Fatalf("%s: leader %q, caught-up replica %q", key, a, b)
		}
	}
	if st := c.nodes[lag].Status(); st.Commit != c.nodes[l].Status().Commit || st.SnapshotIndex == 0 {
		t.Fatalf("lagging replica %+v", st)
	}
}

func TestLearnCatchUp(t *testing.T) {
	c := newCluster(t, 3, func(cfg *replica.Config) { cfg.SnapshotEvery = 0; cfg.MaxBatch = 1 })
	l := c.leader()
	lag := c.ids[0]
	if lag == l {
		lag = c.ids[1]
	}
	c.drop = func(m replica.Message) bool { return m.Dest() == lag }
	for i := uint64(1); i <= 600; i++ {
		c.nodes[l].Propose(appendReq(1, i, "k", "z"))
	}
	c.settle()
	c.drop = nil
	c.tick(4)
	if a, b := c.nodes[l].Status().Commit, c.nodes[lag].Status().Commit; a != b || len(c.value(lag, "k")) != 600 {
		t.Fatalf("leader commit %d, lagging replica %d, k has %d bytes", a, b, len(c.value(lag, "k")))
	}
	if c.sent["*paxos.Learn"] < 2 {
		t.Fatalf("expected chunked Learn messages, sent %v", c.sent)
	}
	c.checkAgreement()
}

// In steady state one slot costs one Accept and one Accepted per
// follower; batching spreads that over many commands.
func TestMessagesPerAgreement(t *testing.T) {
	const n = 3
	c := newCluster(t, n, nil)
	l := c.leader()
	clear(c.sent)
	const cmds = 100
	for i := uint64(1); i <= cmds; i++ {
		c.nodes[l].Propose(put(1, i, "k", "v"))
		c.settle()
	}
	total := 0
	for _, v := range c.sent {
		total += v
	}
	if per := float64(total) / cmds; per != 2*(n-1) {
		t.Fatalf("%.2f messages per slot, want %d (%v)", per, 2*(n-1), c.sent)
	}
	clear(c.sent)
	var batch []replica.Request
	for i := uint64(1); i <= 6400; i++ {
		batch = append(batch, put(i+10, 1, "k", "v"))
	}
	c.nodes[l].Propose(batch...)
	c.settle()
	total = 0
	for _, v := range c.sent {
		total += v
	}
	per := float64(total) / float64(len(batch))
	t.Logf("batched: %d messages for %d commands (%.3f per command)", total, len(batch), per)
	if per > 0.1 {
		t.Fatalf("batching: %.3f messages per command", per)
	}
	if c.nodes[l].Status().Commit != cmds+uint64(len(batch))/64 {
		t.Fatalf("commit %d", c.nodes[l].Status().Commit)
	}
}

func TestLogBoundedBySnapshots(t *testing.T) {
	const every = 1000
	cmds := 100_000
	if testing.Short() {
		cmds = 10_000
	}
	c := newCluster(t, 3, func(cfg *replica.Config) {
		cfg.SnapshotEvery = every
		cfg.MaxBatch = 1
	})
	l := c.leader()
	for i := 1; i <= cmds; i += 100 {
		for j := range 100 {
			c.nodes[l].Propose(put(uint64(j+1), uint64(i+j), "k", "v"))
		}
		c.settle()
	}
	c.tick(2)
	for _, id := range c.ids {
		if st := c.nodes[id].Status(); st.Applied != uint64(cmds) {
			t.Fatalf("node %d: %+v", id, st)
		}
	}
	if c.maxLog > every+16+1 {
		t.Fatalf("log held up to %d entries with SnapshotEvery=%d", c.maxLog, every)
	}
	for _, id := range c.ids {
		if d := len(c.disks[id].entries); d > every+17 {
			t.Fatalf("node %d: %d entries on disk", id, d)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cfg := DefaultConfig(4, []replica.NodeID{1, 2, 3})
	if _, err := New(cfg, newRecorder(), nil); err == nil {
		t.Fatal("accepted an ID outside Peers")
	}
	cfg = DefaultConfig(1, []replica.NodeID{1})
	if _, err := New(cfg, newRecorder(), &replica.Durable{State: []byte{9}}); err == nil {
		t.Fatal("accepted a corrupt hard state")
	}
}

// A restarted replica re-applies what it knew to be chosen, and nothing
// it only accepted.
func TestRestartCommitKnowledge(t *testing.T) {
	cfg := DefaultConfig(2, []replica.NodeID{1, 2, 3})
	d := &disk{entries: map[uint64][]byte{}}
	n, err := New(cfg, newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	flush := func() {
		for n.HasReady() {
			d.persist(n.Ready().Persist)
		}
	}
	b1, b2 := Ballot{Round: 1, Node: 1}, Ballot{Round: 2, Node: 3}
	v := func(s string) Value { return Value{Reqs: []replica.Request{appendReq(1, uint64(len(s)), "k", s)}} }
	n.Step(&Accept{Header: Header{From: 3, To: 2}, Ballot: b2, Slot: 1, Value: v("a")})
	n.Step(&Accept{Header: Header{From: 1, To: 2}, Ballot: b1, Slot: 2, Value: v("bb")}) // refused: below b2
	n.Step(&Accept{Header: Header{From: 3, To: 2}, Ballot: b2, Slot: 2, Value: v("cc")})
	n.Step(&Heartbeat{Header: Header{From: 3, To: 2}, Ballot: b2, Commit: 1})
	flush()
	b3 := Ballot{Round: 3, Node: 1}
	n.Step(&Accept{Header: Header{From: 1, To: 2}, Ballot: b3, Slot: 3, Value: v("ddd")})
	// Slot 2 was accepted in b2, but b3's leader reports commit 3: slot 2
	// stays unknown, so the commit index stays at 1.
	n.Step(&Heartbeat{Header: Header{From: 1, To: 2}, Ballot: b3, Commit: 3})
	flush()
	if st := n.Status(); st.Commit != 1 {
		t.Fatalf("commit %d, want 1", st.Commit)
	}
	sm := newRecorder()
	r, err := New(cfg, sm, d.durable())
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Commit != 1 || st.Applied != 1 || r.promised != b3 {
		t.Fatalf("after restart: %+v promised %v", st, r.promised)
	}
	if got, _ := sm.Get("k"); got != "a" {
		t.Fatalf("k=%q after restart, want only slot 1 applied", got)
	}
	// The leader fills in slot 2; slot 3 was accepted in b3, so both apply.
	r.Step(&Learn{Header: Header{From: 1, To: 2}, Ballot: b3, Commit: 3, Entries: []LearnEntry{{Slot: 2, Value: v("cc")}}})
	r.Step(&Heartbeat{Header: Header{From: 1, To: 2}, Ballot: b3, Commit: 3})
	if got, _ := sm.Get("k"); got != "accddd" || r.Status().Commit != 3 {
		t.Fatalf("k=%q status %+v", got, r.Status())
	}
}

func TestReelectionAfterLeaderCrash(t *testing.T) {
	c := newCluster(t, 5, nil)
	l := c.leader()
	epoch := c.nodes[l].Status().Epoch
	c.crash(l)
	// A follower times out within [ElectionTicks, 2*ElectionTicks) of the
	// last heartbeat; one round of messages then elects it.
	bound := 2 * c.cfg[l].ElectionTicks
	for tick := 1; ; tick++ {
		c.tick(1)
		var leaders []replica.NodeID
		for _, id := range c.ids {
			if !c.down[id] && c.nodes[id].Status().Role == RoleLeader {
				leaders = append(leaders, id)
			}
		}
		if len(leaders) == 1 {
			if st := c.nodes[leaders[0]].Status(); st.Epoch <= epoch {
				t.Fatalf("new leader epoch %d not above %d", st.Epoch, epoch)
			}
			break
		}
		if tick > bound {
			t.Fatalf("no new leader %d ticks after the crash", tick)
		}
	}
	nl := c.leader()
	c.nodes[nl].Propose(put(1, 1, "k", "after"))
	c.settle()
	c.tick(2)
	for _, id := range c.ids {
		if id != l && c.value(id, "k") != "after" {
			t.Fatalf("node %d: k=%q", id, c.value(id, "k"))
		}
	}
}

// The core is a pure function of its inputs: two runs with one seed emit
// the same messages; another seed changes the election timing.
func TestDeterministic(t *testing.T) {
	trace := func(seed int64) string {
		c := newCluster(t, 3, func(cfg *replica.Config) { cfg.Seed = seed })
		var out []string
		c.drop = func(m replica.Message) bool {
			out = append(out, fmt.Sprintf("%+v", m))
			return false
		}
		proposed := false
		for range 60 {
			out = append(out, "tick")
			c.tick(1)
			for _, id := range c.ids {
				if !proposed && c.nodes[id].Status().Role == RoleLeader {
					proposed = c.nodes[id].Propose(put(1, 1, "k", "v")) == nil
				}
			}
		}
		return fmt.Sprint(out)
	}
	if a, b := trace(7), trace(7); a != b {
		t.Fatal("same seed, different message traces")
	}
	timeouts := func(seed int64, id replica.NodeID) []int {
		cfg := DefaultConfig(id, []replica.NodeID{1, 2, 3})
		cfg.Seed = seed
		n, err := New(cfg, newRecorder(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for range 50 {
			n.resetElectionTimer()
			if n.electionTimeout < cfg.ElectionTicks || n.electionTimeout >= 2*cfg.ElectionTicks {
				t.Fatalf("timeout %d outside [%d, %d)", n.electionTimeout, cfg.ElectionTicks, 2*cfg.ElectionTicks)
			}
			out = append(out, n.electionTimeout)
		}
		return out
	}
	if !slices.Equal(timeouts(7, 1), timeouts(7, 1)) {
		t.Fatal("same seed and ID, different timeouts")
	}
	if slices.Equal(timeouts(7, 1), timeouts(8, 1)) || slices.Equal(timeouts(7, 1), timeouts(7, 2)) {
		t.Fatal("timeouts ignore the seed or the ID")
	}
}

func TestStepIgnoresJunk(t *testing.T) {
	f, _ := newFollower(t)
	var nilAccept *Accept
	for _, m := range []replica.Message{
		nil,
		nilAccept,
		&Accept{Header: Header{From: 0, To: 2}, Ballot: Ballot{Round: 5, Node: 0}, Slot: 1}, // no sender
		&Accept{Header: Header{From: 1, To: 3}, Ballot: Ballot{Round: 5, Node: 1}, Slot: 1}, // not for us
		&Accept{Header: Header{From: 1, To: 2}, Ballot: Ballot{Round: 5, Node: 3}, Slot: 1}, // ballot not the sender's
		&Accept{Header: Header{From: 1, To: 2}, Ballot: Ballot{Round: 5, Node: 1}, Slot: 1 << 40},
		fakeMsg{Header{From: 1, To: 2}},
	} {
		f.Step(m)
	}
	if st := f.Status(); st.Epoch != 5 || st.Commit != 0 || st.LogLen != 0 {
		t.Fatalf("junk changed the log: %+v", st)
	}
}

func TestBallotExhaustionKeepsPromise(t *testing.T) {
	f, _ := newFollower(t)
	top := Ballot{Round: 1<<64 - 1, Node: 3}
	f.Step(&Prepare{Header: Header{From: 3, To: 2}, Ballot: top, FromSlot: 1})
	for range 100 {
		f.Tick()
	}
	if f.promised != top || f.Status().Role != RoleFollower {
		t.Fatalf("promise %v role %s after exhaustion", f.promised, f.Status().Role)
	}
}

func TestCandidateQueueBounded(t *testing.T) {
	n, err := New(DefaultConfig(1, []replica.NodeID{1, 2, 3}), newRecorder(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for n.Status().Role != RoleCandidate {
		n.Tick()
	}
	limit := 64 * 16
	for i := range limit {
		if err := n.Propose(put(1, uint64(i+1), "k", "v")); err != nil {
			t.Fatalf("request %d rejected: %v", i, err)
		}
	}
	if err := n.Propose(put(1, uint64(limit+1), "k", "v")); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("over the bound: err %v", err)
	}
}

// With snapshots disabled the log grows without bound; it must keep
// working, and restart, far beyond the slot window.
func TestLongLogWithoutSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("long log")
	}
	slots := 5*maxWindow + 100
	c := newCluster(t, 1, func(cfg *replica.Config) {
		cfg.SnapshotEvery = 0
		cfg.MaxBatch = 1
		cfg.MaxInflight = 1
	})
	l := c.leader()
	for i := 1; i <= slots; i++ {
		if err := c.nodes[l].Propose(put(1, uint64(i), "k", "v")); err != nil {
			t.Fatal(err)
		}
	}
	c.settle()
	if st := c.nodes[l].Status(); st.Commit != uint64(slots) || st.LogLen != slots {
		t.Fatalf("status %+v, want %d slots", st, slots)
	}
	c.crash(l)
	c.start(l)
	// The durable commit index lags (it rides on later writes); the
	// restarted replica chooses the slots above it again as leader.
	if st := c.nodes[l].Status(); st.Commit+2 < uint64(slots) {
		t.Fatalf("after restart: %+v, want a commit index within 2 of %d", st, slots)
	}
	c.leader()
	c.settle()
	if st := c.nodes[l].Status(); st.Commit != uint64(slots) || st.Applied != uint64(slots) {
		t.Fatalf("leading again: %+v", st)
	}
}

// A candidate far behind the acceptors' snapshots gets the snapshot in a
// Promise, because the compacted slots are chosen and survive only there.
func TestLaggingCandidateLearnsSnapshotFromPromise(t *testing.T) {
	c := newCluster(t, 3, func(cfg *replica.Config) { cfg.SnapshotEvery = 10 })
	// Only node 1 ticks, so it leads; node 3 hears nothing.
	c.drop = func(m replica.Message) bool { return m.Source() == 3 || m.Dest() == 3 }
	for i := 0; c.nodes[1].Status().Role != RoleLeader; i++ {
		if i > 100 {
			t.Fatal("node 1 not elected")
		}
		c.nodes[1].Tick()
		c.settle()
	}
	for i := uint64(1); i <= 35; i++ {
		c.nodes[1].Propose(appendReq(1, i, "k", "x"))
		c.settle()
	}
	if st := c.nodes[2].Status(); st.SnapshotIndex < 30 {
		t.Fatalf("node 2 did not compact: %+v", st)
	}
	c.crash(1)
	c.drop = nil
	// Node 2 notices the leader is gone (it stops being loyal to it)
	// without timing out itself, so node 3 is the one to run phase 1.
	c.nodes[2].leader = 0
	n3 := c.nodes[3]
	for i := 0; n3.Status().Role != RoleLeader; i++ {
		if i > 100 {
			t.Fatalf("node 3 not elected: %+v", n3.Status())
		}
		n3.Tick()
		c.settle()
	}
	if c.sent["*paxos.InstallSnapshot"] != 0 {
		t.Fatal("state arrived by InstallSnapshot, not by the Promise")
	}
	if got := c.value(3, "k"); len(got) != 35 {
		t.Fatalf("new leader has k of %d bytes, want 35", len(got))
	}
	n3.Propose(appendReq(1, 36, "k", "y"))
	c.settle()
	c.tick(2)
	for _, id := range []replica.NodeID{2, 3} {
		if got := c.value(id, "k"); len(got) != 36 || got[35] != 'y' {
			t.Fatalf("node %d: k=%q", id, got)
		}
	}
	c.checkAgreement()
}

// A leader's Accepts leave before its own write (Ready.Early), but it
// counts its own acceptance only when the Accepted it sends itself comes
// back after that write: until then a slot needs a majority of followers,
// and no commit index it sends covers the slot.
func TestLeaderCountsItselfOnlyOnceDurable(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	ldr := c.nodes[l]
	f1 := c.ids[0]
	if f1 == l {
		f1 = c.ids[1]
	}
	commit := ldr.Status().Commit
	if err := ldr.Propose(put(1, 1, "k", "v")); err != nil {
		t.Fatal(err)
	}
	rd := ldr.Ready()
	accepts := map[replica.NodeID]*Accept{}
	for _, m := range rd.Early {
		if ldr.Acknowledges(m) {
			t.Fatalf("early %T acknowledges", m)
		}
		if a, ok := m.(*Accept); ok {
			accepts[a.To] = a
		}
	}
	if len(accepts) != 2 || len(rd.Persist.Entries) != 1 {
		t.Fatalf("proposal: %d early Accepts, %d entries; want 2 and 1", len(accepts), len(rd.Persist.Entries))
	}
	var own []replica.Message
	for _, m := range rd.Messages {
		if m.Dest() == l {
			own = append(own, m)
		}
	}
	if len(own) != 1 {
		t.Fatalf("own acknowledgements %v, want one Accepted", own)
	}
	slot := accepts[f1].Slot

	// One follower's durable Accepted is not a majority without the
	// leader's own.
	fol := c.nodes[f1]
	fol.Step(accepts[f1])
	frd := fol.Ready()
	for _, m := range frd.Early {
		t.Fatalf("follower sent %T early", m)
	}
	for _, m := range frd.Messages {
		ldr.Step(m)
	}
	if got := ldr.Status().Commit; got != commit {
		t.Fatalf("commit %d after one follower's ack, want %d", got, commit)
	}
	ldr.Tick()
	ldr.Tick()
	for _, m := range ldr.Ready().Early {
		if hb, ok := m.(*Heartbeat); ok && hb.Commit >= slot {
			t.Fatalf("heartbeat claims commit %d before slot %d is durable at a majority", hb.Commit, slot)
		}
	}

	// The leader's own write is durable: now it is a majority.
	ldr.Step(own[0])
	if got := ldr.Status().Commit; got != slot {
		t.Fatalf("commit %d after the leader's own ack, want %d", got, slot)
	}
	if rd := ldr.Ready(); len(rd.Results) != 1 {
		t.Fatalf("results %v, want the put's", rd.Results)
	}

	// Two followers are a majority without the leader.
	if err := ldr.Propose(put(1, 2, "k", "w")); err != nil {
		t.Fatal(err)
	}
	rd = ldr.Ready()
	for _, m := range rd.Early {
		if a, ok := m.(*Accept); ok {
			c.nodes[a.To].Step(a)
			for _, r := range c.nodes[a.To].Ready().Messages {
				ldr.Step(r)
			}
		}
	}
	if got := ldr.Status().Commit; got != slot+1 {
		t.Fatalf("commit %d after both followers acked, want %d", got, slot+1)
	}
}

// The leader's own Accepted is taken only as its own: a forged one, or one
// from another ballot, counts for nothing.
func TestOwnAcceptedOnlyFromItself(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	ldr := c.nodes[l]
	if err := ldr.Propose(put(1, 1, "k", "v")); err != nil {
		t.Fatal(err)
	}
	rd := ldr.Ready()
	var own *Accepted
	for _, m := range rd.Messages {
		if a, ok := m.(*Accepted); ok && a.To == l {
			own = a
		}
	}
	if own == nil {
		t.Fatal("no own Accepted")
	}
	commit := ldr.Status().Commit
	stale := *own
	stale.Ballot.Round--
	ldr.Step(&stale)
	forged := &Accept{Header: Header{From: l, To: l}, Ballot: own.Ballot, Slot: own.Slot + 1}
	ldr.Step(forged)
	if got := ldr.Status().Commit; got != commit {
		t.Fatalf("commit moved to %d on a stale own Accepted", got)
	}
	if ldr.HasReady() {
		t.Fatalf("a stale own Accepted or a self-sent Accept produced %+v", ldr.Ready())
	}
}
