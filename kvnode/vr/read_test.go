package vr

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// tickOnly advances the clocks of the given live replicas only, as if the
// others were paused.
func (g *group) tickOnly(k int, ids ...replica.NodeID) {
	g.t.Helper()
	for range k {
		for _, id := range ids {
			if !g.down[id] {
				g.nodes[id].Tick()
			}
		}
		g.settle()
	}
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

func TestReadIndexServedAtCommitNumber(t *testing.T) {
	g := newGroup(t, 3, nil)
	p := g.primary()
	for i := range 5 {
		if err := g.nodes[p].Propose(put(1, uint64(i+1), "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	g.settle()
	commit := g.nodes[p].Status().Commit
	// An op still in flight when the read arrives was not acknowledged, so
	// the read's index is the commit number, not the op's.
	g.drop = func(m replica.Message) bool {
		switch m.(type) {
		case *Prepare, *GetState:
			return true
		}
		return false
	}
	if err := g.nodes[p].Propose(put(1, 6, "k", "late")); err != nil {
		t.Fatal(err)
	}
	if err := g.nodes[p].ReadIndex(42); err != nil {
		t.Fatal(err)
	}
	g.settle()
	want := []replica.ReadState{{ID: 42, Index: commit}}
	if got := g.reads[p]; !slices.Equal(got, want) {
		t.Fatalf("reads %+v, want %+v", got, want)
	}
	if v := g.get(p, "k"); v != "4" {
		t.Fatalf("state at the read: k=%q, want 4", v)
	}
}

func TestReadIndexRefusedWhenNotPrimary(t *testing.T) {
	g := newGroup(t, 3, nil)
	p := g.primary()
	b := others(g.ids, p)[0]
	var nl *replica.NotLeaderError
	if err := g.nodes[b].ReadIndex(1); !errors.As(err, &nl) || nl.Leader != p {
		t.Fatalf("backup: err %v, want a redirect to %d", err, p)
	}
	g.drop = func(replica.Message) bool { return true }
	for g.nodes[b].Status().Role != RoleViewChange {
		g.tickOnly(1, b)
	}
	if err := g.nodes[b].ReadIndex(2); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("replica in a view change: err %v", err)
	}
	// A primary that has not heard from a majority refuses new reads.
	g.tickOnly(2*g.cfg[p].ElectionTicks, p)
	if err := g.nodes[p].ReadIndex(3); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("cut-off primary: err %v", err)
	}
	if len(g.reads[b])+len(g.reads[p]) != 0 {
		t.Fatalf("refused reads reported: %+v %+v", g.reads[b], g.reads[p])
	}
}

func TestReadIndexBatchesRounds(t *testing.T) {
	g := newGroup(t, 5, nil)
	p := g.primary()
	clear(g.sent)
	for id := range uint64(100) {
		if err := g.nodes[p].ReadIndex(id); err != nil {
			t.Fatal(err)
		}
	}
	g.settle()
	if len(g.reads[p]) != 100 {
		t.Fatalf("%d reads reported, want 100", len(g.reads[p]))
	}
	if hb, re := g.sent["*vr.Commit"], g.sent["*vr.PrepareOK"]; hb != 4 || re != 4 {
		t.Fatalf("100 reads took %d heartbeats and %d replies, want one round (4 and 4)", hb, re)
	}

	// Reads that arrive while a round is in flight wait for the next one.
	g.reads[p] = nil
	if err := g.nodes[p].ReadIndex(1000); err != nil {
		t.Fatal(err)
	}
	g.drain()
	round := g.nodes[p].reads.InFlight()
	for id := uint64(1001); id <= 1010; id++ {
		if err := g.nodes[p].ReadIndex(id); err != nil {
			t.Fatal(err)
		}
	}
	g.drop = func(m replica.Message) bool {
		c, ok := m.(*Commit)
		return ok && c.Read > round
	}
	g.settle()
	if want := []replica.ReadState{{ID: 1000, Index: g.nodes[p].Status().Commit}}; !slices.Equal(g.reads[p], want) {
		t.Fatalf("after the first round: %+v, want %+v", g.reads[p], want)
	}
	g.drop = nil
	g.tick(g.cfg[p].HeartbeatTicks)
	if len(g.reads[p]) != 11 {
		t.Fatalf("after the second round: %d reads, want 11: %+v", len(g.reads[p]), g.reads[p])
	}
}

func TestReadIndexSingleReplica(t *testing.T) {
	g := newGroup(t, 1, nil)
	p := g.primary()
	if err := g.nodes[p].Propose(put(1, 1, "k", "v")); err != nil {
		t.Fatal(err)
	}
	// The put commits once its write is durable; a read that arrives
	// later must see it.
	g.settle()
	if err := g.nodes[p].ReadIndex(7); err != nil {
		t.Fatal(err)
	}
	g.settle()
	if want := []replica.ReadState{{ID: 7, Index: 1}}; !slices.Equal(g.reads[p], want) {
		t.Fatalf("reads %+v, want %+v", g.reads[p], want)
	}
}

// A primary cut off while a newer view committed ops elsewhere must never
// confirm a read: a replica that voted for the newer view never answers
// the old view's heartbeats.
func TestReadIndexDeposedPrimaryNeverConfirms(t *testing.T) {
	g := newGroup(t, 3, nil)
	old := g.primary()
	rest := others(g.ids, old)
	cut := map[replica.NodeID]bool{old: true}
	g.drop = func(m replica.Message) bool { return cut[m.Source()] || cut[m.Dest()] }
	var np replica.NodeID
	for range 500 {
		g.tickOnly(1, rest...)
		if st := g.nodes[rest[0]].Status(); st.Role == RolePrimary || st.Role == RoleBackup && st.Leader != old {
			if st.Role == RolePrimary {
				np = rest[0]
			} else {
				np = st.Leader
			}
			break
		}
	}
	if np == 0 || np == old {
		t.Fatal("no new view started")
	}
	if err := g.nodes[np].Propose(put(1, 1, "k", "new")); err != nil {
		t.Fatal(err)
	}
	g.settle()
	if g.get(np, "k") != "new" {
		t.Fatal("the new primary did not commit")
	}
	if err := g.nodes[old].ReadIndex(1); err != nil {
		t.Fatalf("the old primary (clock paused) refused: %v", err)
	}
	g.tickOnly(g.cfg[old].ElectionTicks-1, old)
	if len(g.reads[old]) != 0 {
		t.Fatalf("a cut-off primary reported %+v", g.reads[old])
	}
	// It now reaches the backup that moved on, but not the new primary.
	cut = map[replica.NodeID]bool{np: true}
	g.tickOnly(3*g.cfg[old].HeartbeatTicks, old)
	if len(g.reads[old]) != 0 {
		t.Fatalf("the old primary confirmed through a replica of the newer view: %+v", g.reads[old])
	}
	// Hearing from the new view, it joins as a backup and the read is lost.
	cut = nil
	g.tickOnly(3*g.cfg[old].HeartbeatTicks, g.ids...)
	want := []replica.ReadState{{ID: 1, Index: 0, Lost: true}}
	if !slices.Equal(g.reads[old], want) || g.nodes[old].Status().Role == RolePrimary {
		t.Fatalf("old primary: %+v, reads %+v, want %+v", g.nodes[old].Status(), g.reads[old], want)
	}
}

// A new primary's commit number may lag ops that an earlier view
// committed; it serves no read below the log it started its view with.
func TestReadIndexNewPrimaryServesNoReadBelowItsViewStart(t *testing.T) {
	ids := []replica.NodeID{1, 2, 3, 4, 5}
	sm := newRecorder()
	n, err := New(DefaultConfig(2, ids), sm, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Ready()
	const view = 6 // peers[6 mod 5] is node 2
	log := Suffix{Entries: []Value{value(put(7, 1, "k", "a")), value(put(7, 2, "k", "b"))}}
	n.Step(&DoViewChange{Header: Header{From: 3, To: 2}, View: view, LastNormal: 3, Commit: 1, Log: log})
	n.Step(&DoViewChange{Header: Header{From: 4, To: 2}, View: view, LastNormal: 3, Commit: 1, Log: log})
	if st := n.Status(); st.Role != RolePrimary || st.Commit != 1 {
		t.Fatalf("%+v, want primary of view %d with commit 1", st, view)
	}
	if err := n.ReadIndex(9); err != nil {
		t.Fatal(err)
	}
	var round uint64
	var own []replica.Message
	for _, m := range n.Ready().Messages {
		if c, ok := m.(*Commit); ok {
			round = c.Read
		}
		if m.Dest() == n.id {
			own = append(own, m)
		}
	}
	if round == 0 {
		t.Fatal("no read round sent")
	}
	if len(own) != 1 {
		t.Fatalf("the new primary acknowledged its own log with %v, want one PrepareOK", own)
	}
	// Its log is durable: it counts itself.
	n.Step(own[0])
	// A majority confirms the view, but its ops above 1 are not yet
	// committed: op 2 may have been acknowledged in an earlier view.
	n.Step(&PrepareOK{Header: Header{From: 3, To: 2}, View: view, Op: 1, Read: round})
	n.Step(&PrepareOK{Header: Header{From: 4, To: 2}, View: view, Op: 1, Read: round})
	if rd := n.Ready(); len(rd.Reads) != 0 {
		t.Fatalf("read reported at commit %d, below the view's log: %+v", n.Status().Commit, rd.Reads)
	}
	n.Step(&PrepareOK{Header: Header{From: 3, To: 2}, View: view, Op: 2})
	n.Step(&PrepareOK{Header: Header{From: 4, To: 2}, View: view, Op: 2})
	rd := n.Ready()
	if want := []replica.ReadState{{ID: 9, Index: 2}}; !slices.Equal(rd.Reads, want) {
		t.Fatalf("reads %+v, want %+v", rd.Reads, want)
	}
	if v, _ := sm.Get("k"); v != "b" {
		t.Fatalf("the read sees k=%q, want b", v)
	}
	// Replies tied to another view or to no round confirm nothing.
	if err := n.ReadIndex(10); err != nil {
		t.Fatal(err)
	}
	n.Ready()
	next := n.reads.InFlight()
	n.Step(&PrepareOK{Header: Header{From: 3, To: 2}, View: view - 1, Op: 2, Read: next})
	n.Step(&PrepareOK{Header: Header{From: 4, To: 2}, View: view, Op: 2, Read: next - 1})
	n.Step(&PrepareOK{Header: Header{From: 5, To: 2}, View: view, Op: 2})
	if rd := n.Ready(); len(rd.Reads) != 0 {
		t.Fatalf("confirmed by stale replies: %+v", rd.Reads)
	}
}

// TestRandomizedReads mixes writes and read-index reads under message
// loss, duplication, reordering, partitions, crash-restarts and paused
// clocks (which leave deposed primaries that believe they lead), and
// checks every confirmed read: it is at or above the op number of every
// write any replica applied before the read was invoked, and the state it
// is answered from holds all of those writes.
func TestRandomizedReads(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	if s, err := strconv.Atoi(os.Getenv("VR_SEEDS")); err == nil && s > 0 {
		seeds = s
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay: go test ./kvnode/vr -run 'TestRandomizedReads/seed%d$' -v", seed)
				}
			}()
			runRandomReads(t, seed)
		})
	}
}

func runRandomReads(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	size := 3 + 2*rng.Intn(2)
	g := newGroup(t, size, func(cfg *replica.Config) {
		cfg.Seed = seed
		cfg.SnapshotEvery = uint64(5 + rng.Intn(20))
		cfg.MaxBatch = 1 + rng.Intn(4)
		cfg.MaxInflight = 1 + rng.Intn(4)
	})
	const keys = 3
	type write struct{ key, token string }
	writes := map[uint64]write{} // by client: one write per client
	type ack struct {
		token string
		index uint64
	}
	acked := map[string][]ack{}
	seen := map[uint64]bool{}
	g.onResult = func(_ replica.NodeID, r replica.Result) {
		if w, ok := writes[r.ClientID]; ok && !seen[r.ClientID] {
			seen[r.ClientID] = true
			acked[w.key] = append(acked[w.key], ack{w.token, r.Index})
		}
	}
	type read struct {
		key  string
		need []ack
		node replica.NodeID
	}
	reads := map[uint64]read{}
	served, lost := 0, 0
	g.onRead = func(id replica.NodeID, rs replica.ReadState) {
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
		if st := g.nodes[id].Status(); st.Applied < rs.Index {
			t.Fatalf("node %d reported read %+v before applying it: %+v", id, rs, st)
		}
		v := g.get(id, r.key)
		for _, a := range r.need {
			if rs.Index < a.index {
				t.Fatalf("node %d served read %d of %s at op %d, below write %s acknowledged at op %d before the read began",
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
		g.drain()
		pool = append(pool, g.queue...)
		g.queue = nil
	}
	crash := func(id replica.NodeID) {
		g.down[id] = true
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
			if rng.Intn(20) == 0 || g.down[m.Dest()] || cut[m.Dest()] || cut[m.Source()] {
				continue
			}
			g.nodes[m.Dest()].Step(m)
			if rng.Intn(300) == 0 {
				crash(m.Dest())
			}
			collect()
		case r < 78:
			for _, id := range g.ids {
				if !g.down[id] && !paused[id] {
					g.nodes[id].Tick()
				}
			}
			collect()
		case r < 86:
			id := g.ids[rng.Intn(len(g.ids))]
			if g.down[id] {
				continue
			}
			nextWrite++
			token := fmt.Sprintf("[%d]", nextWrite)
			key := fmt.Sprint("k", rng.Intn(keys))
			writes[nextWrite] = write{key, token}
			_ = g.nodes[id].Propose(replica.Request{ClientID: nextWrite, Seq: 1, Op: appendOp(key, token)})
			collect()
		case r < 96:
			id := g.ids[rng.Intn(len(g.ids))]
			if g.down[id] {
				continue
			}
			nextRead++
			key := fmt.Sprint("k", rng.Intn(keys))
			if g.nodes[id].ReadIndex(nextRead) == nil {
				reads[nextRead] = read{key: key, need: slices.Clone(acked[key]), node: id}
			}
			collect()
		case r == 96 && rng.Intn(4) == 0:
			id := g.ids[rng.Intn(len(g.ids))]
			if g.down[id] {
				g.start(id)
			} else {
				crash(id)
			}
			collect()
		case r == 97 && rng.Intn(2) == 0:
			id := g.ids[rng.Intn(len(g.ids))]
			cut[id] = !cut[id]
		case r == 98 && rng.Intn(2) == 0:
			id := g.ids[rng.Intn(len(g.ids))]
			paused[id] = !paused[id]
		case r == 99 && rng.Intn(5) == 0:
			clear(cut)
			clear(paused)
		}
	}
	g.checkAgreement()
	// Heal, and check that reads are served again.
	for _, id := range g.ids {
		if g.down[id] {
			g.start(id)
		}
	}
	g.queue = nil
	g.tick(300)
	p := g.primary()
	before := served
	nextRead++
	if err := g.nodes[p].ReadIndex(nextRead); err != nil {
		t.Fatal(err)
	}
	reads[nextRead] = read{key: "k0", need: slices.Clone(acked["k0"]), node: p}
	g.tick(5)
	if served != before+1 {
		t.Fatalf("healed primary %d did not serve a read: %+v", p, g.nodes[p].Status())
	}
	t.Logf("%d reads served, %d lost", served, lost)
}

func appendOp(k, v string) []byte { return kv.Op{Kind: kv.Append, Key: k, Value: v}.Encode() }
