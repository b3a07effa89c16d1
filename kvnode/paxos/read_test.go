package paxos

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// tickOnly advances the clocks of the given live replicas only, as if the
// others were paused.
func (c *cluster) tickOnly(k int, ids ...replica.NodeID) {
	for range k {
		for _, id := range ids {
			if !c.down[id] {
				c.nodes[id].Tick()
			}
		}
		c.settle()
	}
}

// leaderAmong ticks the given replicas until one of them leads.
func (c *cluster) leaderAmong(ids ...replica.NodeID) replica.NodeID {
	c.t.Helper()
	for range 500 {
		for _, id := range ids {
			if c.nodes[id].Status().Role == RoleLeader {
				return id
			}
		}
		c.tickOnly(1, ids...)
	}
	c.t.Fatalf("none of %v leads after 500 ticks", ids)
	return 0
}

func others(ids []replica.NodeID, not ...replica.NodeID) []replica.NodeID {
	var out []replica.NodeID
	for _, id := range ids {
		if !slices.Contains(not, id) {
			out = append(out, id)
		}
	}
	return out
}

func TestReadIndexServedAtCommitIndex(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	for i := range 5 {
		if err := c.nodes[l].Propose(put(1, uint64(i+1), "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	c.settle()
	commit := c.nodes[l].Status().Commit
	// A write still in flight when the read arrives was not acknowledged,
	// so the read's index is the commit index, not the write's slot.
	c.drop = func(m replica.Message) bool { _, ok := m.(*Accept); return ok }
	if err := c.nodes[l].Propose(put(1, 6, "k", "late")); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[l].ReadIndex(42); err != nil {
		t.Fatal(err)
	}
	c.settle()
	want := []replica.ReadState{{ID: 42, Index: commit}}
	if got := c.reads[l]; !slices.Equal(got, want) {
		t.Fatalf("reads %+v, want %+v", got, want)
	}
	if v := c.value(l, "k"); v != "4" {
		t.Fatalf("state at the read: k=%q, want 4", v)
	}
}

func TestReadIndexRefusedWhenNotLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	f := others(c.ids, l)[0]
	err := c.nodes[f].ReadIndex(1)
	var nl *replica.NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != l {
		t.Fatalf("follower: err %v, want a redirect to %d", err, l)
	}
	// A candidate is refused too: it may never win.
	c.drop = func(replica.Message) bool { return true }
	for c.nodes[f].Status().Role != RoleCandidate {
		c.tickOnly(1, f)
	}
	if err := c.nodes[f].ReadIndex(2); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("candidate: err %v", err)
	}
	c.settle()
	if len(c.reads[f]) != 0 {
		t.Fatalf("refused reads reported: %+v", c.reads[f])
	}
}

func TestReadIndexBatchesRounds(t *testing.T) {
	c := newCluster(t, 5, nil)
	l := c.leader()
	clear(c.sent)
	for id := range uint64(100) {
		if err := c.nodes[l].ReadIndex(id); err != nil {
			t.Fatal(err)
		}
	}
	c.settle()
	if len(c.reads[l]) != 100 {
		t.Fatalf("%d reads reported, want 100", len(c.reads[l]))
	}
	if hb, re := c.sent["*paxos.Heartbeat"], c.sent["*paxos.HeartbeatReply"]; hb != 4 || re != 4 {
		t.Fatalf("100 reads took %d heartbeats and %d replies, want one round (4 and 4)", hb, re)
	}

	// Reads that arrive while a round is in flight wait for the next one,
	// even when the replies to the current round come in after them.
	c.reads[l] = nil
	if err := c.nodes[l].ReadIndex(1000); err != nil {
		t.Fatal(err)
	}
	c.drain()
	round := c.nodes[l].reads.InFlight()
	for id := uint64(1001); id <= 1010; id++ {
		if err := c.nodes[l].ReadIndex(id); err != nil {
			t.Fatal(err)
		}
	}
	c.drop = func(m replica.Message) bool {
		hb, ok := m.(*Heartbeat)
		return ok && hb.Read > round
	}
	c.settle()
	if want := []replica.ReadState{{ID: 1000, Index: c.nodes[l].Status().Commit}}; !slices.Equal(c.reads[l], want) {
		t.Fatalf("after the first round: %+v, want %+v", c.reads[l], want)
	}
	// The next round's heartbeats were lost; the periodic heartbeat
	// carries the round until it completes.
	c.drop = nil
	c.tick(c.cfg[l].HeartbeatTicks)
	if len(c.reads[l]) != 11 {
		t.Fatalf("after the second round: %d reads, want 11: %+v", len(c.reads[l]), c.reads[l])
	}
}

func TestReadIndexSingleReplica(t *testing.T) {
	c := newCluster(t, 1, nil)
	l := c.leader()
	if err := c.nodes[l].Propose(put(1, 1, "k", "v")); err != nil {
		t.Fatal(err)
	}
	// The put is chosen once its write is durable; a read that arrives
	// later must see it.
	c.settle()
	if err := c.nodes[l].ReadIndex(7); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if want := []replica.ReadState{{ID: 7, Index: 1}}; !slices.Equal(c.reads[l], want) {
		t.Fatalf("reads %+v, want %+v", c.reads[l], want)
	}
}

// A leader cut off while a newer leader committed writes elsewhere must
// never confirm a read: the replies it needs are tied to its ballot, and a
// replica that promised the newer ballot refuses it.
func TestReadIndexDeposedLeaderNeverConfirms(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader()
	rest := others(c.ids, old)
	cut := map[replica.NodeID]bool{old: true}
	c.drop = func(m replica.Message) bool { return cut[m.Source()] || cut[m.Dest()] }
	// The old leader's clock is paused, so it still believes it leads.
	nl := c.leaderAmong(rest...)
	if err := c.nodes[nl].Propose(put(1, 1, "k", "new")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if c.value(nl, "k") != "new" {
		t.Fatal("the new leader did not commit")
	}
	if c.nodes[old].Status().Role != RoleLeader {
		t.Fatal("the old leader stepped down; the test needs it to believe it leads")
	}
	if err := c.nodes[old].ReadIndex(1); err != nil {
		t.Fatal(err)
	}
	// Fully cut off, its round never completes, however long it waits
	// within its quorum check.
	c.tickOnly(c.cfg[old].ElectionTicks-1, old)
	if len(c.reads[old]) != 0 {
		t.Fatalf("a cut-off leader reported %+v", c.reads[old])
	}
	// It now reaches the follower that moved on (not the new leader):
	// the follower refuses its ballot, and the read is lost, not served.
	f := others(rest, nl)[0]
	cut = map[replica.NodeID]bool{nl: true}
	c.tickOnly(c.cfg[old].HeartbeatTicks, old)
	want := []replica.ReadState{{ID: 1, Index: c.reads[old][0].Index, Lost: true}}
	if !slices.Equal(c.reads[old], want) || c.nodes[old].Status().Role == RoleLeader {
		t.Fatalf("old leader (via %d): role %s, reads %+v, want %+v", f, c.nodes[old].Status().Role, c.reads[old], want)
	}
	if err := c.nodes[old].ReadIndex(2); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("deposed leader accepted a read: %v", err)
	}
}

// A new leader's commit index may lag writes the old leader acknowledged;
// it serves no read below the slots its phase 1 covered.
func TestReadIndexNewLeaderWaitsForItsOwnCommit(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader()
	rest := others(c.ids, old)
	f, g := rest[0], rest[1]
	// The write reaches f only, and nobody learns it is chosen but the
	// old leader, which applies it (and so acknowledges it) and crashes.
	c.drop = func(m replica.Message) bool { _, hb := m.(*Heartbeat); return m.Dest() == g || hb }
	if err := c.nodes[old].Propose(put(1, 1, "k", "acked")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if c.value(old, "k") != "acked" {
		t.Fatal("the old leader did not apply the write")
	}
	slot := c.nodes[old].Status().Commit
	if c.nodes[f].Status().Commit >= slot || c.nodes[g].Status().Commit >= slot {
		t.Fatalf("the followers learned the commit: f %+v, g %+v", c.nodes[f].Status(), c.nodes[g].Status())
	}
	c.crash(old)
	// The new leader's Accepts are lost: it cannot commit yet.
	c.drop = func(m replica.Message) bool { _, ok := m.(*Accept); return ok }
	nl := c.leaderAmong(f, g)
	if st := c.nodes[nl].Status(); st.Commit >= slot {
		t.Fatalf("new leader already committed: %+v", st)
	}
	if err := c.nodes[nl].ReadIndex(1); err != nil {
		t.Fatal(err)
	}
	c.tickOnly(3*c.cfg[nl].HeartbeatTicks, f, g)
	if len(c.reads[nl]) != 0 {
		t.Fatalf("read reported before the new leader committed: %+v (status %+v)", c.reads[nl], c.nodes[nl].Status())
	}
	c.drop = nil
	c.tickOnly(2*c.cfg[nl].HeartbeatTicks, f, g)
	if len(c.reads[nl]) != 1 || c.reads[nl][0].Lost || c.reads[nl][0].Index < slot {
		t.Fatalf("reads %+v, want one at index >= %d", c.reads[nl], slot)
	}
	if v := c.value(nl, "k"); v != "acked" {
		t.Fatalf("the read sees k=%q, want the acknowledged write", v)
	}
}

// TestRandomizedReads mixes writes and read-index reads under message
// loss, duplication, reordering, partitions, crash-restarts and paused
// clocks (which leave deposed leaders that believe they lead), and checks
// every confirmed read: it is at or above the index of every write any
// replica applied before the read was invoked, and the state it is
// answered from holds all of those writes.
func TestRandomizedReads(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	if s, err := strconv.Atoi(os.Getenv("PAXOS_SEEDS")); err == nil && s > 0 {
		seeds = s
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay: go test ./kvnode/paxos -run 'TestRandomizedReads/seed%d$' -v", seed)
				}
			}()
			runRandomReads(t, seed)
		})
	}
}

func runRandomReads(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	size := 3 + 2*rng.Intn(2)
	c := newCluster(t, size, func(cfg *replica.Config) {
		cfg.Seed = seed
		cfg.SnapshotEvery = uint64(5 + rng.Intn(20))
		cfg.MaxBatch = 1 + rng.Intn(4)
		cfg.MaxInflight = 1 + rng.Intn(4)
	})
	const keys = 3
	type write struct {
		key, token string
	}
	writes := map[[2]uint64]write{} // by (client, seq)
	type ack struct {
		token string
		index uint64
	}
	acked := map[string][]ack{} // by key, in acknowledgement order
	seen := map[[2]uint64]bool{}
	c.onResult = func(_ replica.NodeID, r replica.Result) {
		k := [2]uint64{r.ClientID, r.Seq}
		if w, ok := writes[k]; ok && !seen[k] {
			seen[k] = true
			acked[w.key] = append(acked[w.key], ack{w.token, r.Index})
		}
	}
	type read struct {
		key  string
		need []ack // every write acknowledged when it was invoked
		node replica.NodeID
	}
	reads := map[uint64]read{}
	served, lost := 0, 0
	c.onRead = func(id replica.NodeID, rs replica.ReadState) {
		r, ok := reads[rs.ID]
		if !ok || r.node != id {
			t.Fatalf("node %d reported unknown read %+v", id, rs)
		}
		delete(reads, rs.ID)
		if rs.Lost {
			lost++
			return
		}
		served++
		st := c.nodes[id].Status()
		if st.Applied < rs.Index {
			t.Fatalf("node %d reported read %+v before applying it: %+v", id, rs, st)
		}
		v := c.value(id, r.key)
		for _, a := range r.need {
			if rs.Index < a.index {
				t.Fatalf("node %d served read %d of %s at index %d, below write %s acknowledged at %d before the read began",
					id, rs.ID, r.key, rs.Index, a.token, a.index)
			}
			if !strings.Contains(v, a.token) {
				t.Fatalf("node %d served read %d of %s = %q without write %s acknowledged before it began", id, rs.ID, r.key, v, a.token)
			}
		}
	}
	var pool []replica.Message
	cut := map[replica.NodeID]bool{}
	paused := map[replica.NodeID]bool{}
	collect := func() {
		c.drain()
		pool = append(pool, c.queue...)
		c.queue = nil
	}
	crash := func(id replica.NodeID) {
		c.crash(id)
		for rid, r := range reads {
			if r.node == id {
				delete(reads, rid) // the runtime forgets them with the core
			}
		}
	}
	var nextRead, nextWrite uint64
	for step := 0; step < 6000; step++ {
		switch r := rng.Intn(100); {
		case r < 70 && len(pool) > 0:
			i := rng.Intn(len(pool))
			m := pool[i]
			if rng.Intn(10) != 0 {
				pool = slices.Delete(pool, i, i+1)
			}
			if rng.Intn(20) == 0 || c.down[m.Dest()] || cut[m.Dest()] || cut[m.Source()] {
				continue
			}
			c.nodes[m.Dest()].Step(m)
			if rng.Intn(300) == 0 {
				crash(m.Dest())
			}
			collect()
		case r < 78:
			for _, id := range c.ids {
				if !c.down[id] && !paused[id] {
					c.nodes[id].Tick()
				}
			}
			collect()
		case r < 86:
			id := c.ids[rng.Intn(len(c.ids))]
			if c.down[id] {
				continue
			}
			// One client per write: the session table would skip a
			// client's request ordered after its next one.
			nextWrite++
			token := fmt.Sprintf("[%d]", nextWrite)
			key := fmt.Sprint("k", rng.Intn(keys))
			writes[[2]uint64{nextWrite, 1}] = write{key, token}
			_ = c.nodes[id].Propose(appendReq(nextWrite, 1, key, token))
			collect()
		case r < 96:
			id := c.ids[rng.Intn(len(c.ids))]
			if c.down[id] {
				continue
			}
			nextRead++
			key := fmt.Sprint("k", rng.Intn(keys))
			if c.nodes[id].ReadIndex(nextRead) == nil {
				reads[nextRead] = read{key: key, need: slices.Clone(acked[key]), node: id}
			}
			collect()
		case r == 96 && rng.Intn(4) == 0:
			id := c.ids[rng.Intn(len(c.ids))]
			if c.down[id] {
				c.start(id)
			} else {
				crash(id)
			}
			collect()
		case r == 97 && rng.Intn(2) == 0:
			id := c.ids[rng.Intn(len(c.ids))]
			cut[id] = !cut[id]
		case r == 98 && rng.Intn(2) == 0:
			id := c.ids[rng.Intn(len(c.ids))]
			paused[id] = !paused[id]
		case r == 99 && rng.Intn(5) == 0:
			clear(cut)
			clear(paused)
		}
	}
	c.checkAgreement()
	// Heal, and check that reads are served again.
	clear(cut)
	clear(paused)
	for _, id := range c.ids {
		if c.down[id] {
			c.start(id)
		}
	}
	pool = nil
	c.queue = nil
	c.tick(200)
	l := c.leader()
	before := served
	nextRead++
	if err := c.nodes[l].ReadIndex(nextRead); err != nil {
		t.Fatal(err)
	}
	reads[nextRead] = read{key: "k0", need: slices.Clone(acked["k0"]), node: l}
	c.tick(5)
	if served != before+1 {
		t.Fatalf("healed leader %d did not serve a read: %+v", l, c.nodes[l].Status())
	}
	t.Logf("%d reads served, %d lost", served, lost)
}
