package sim

import (
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"slices"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

func entries(idx ...uint64) []replica.Entry {
	var out []replica.Entry
	for _, i := range idx {
		out = append(out, replica.Entry{Index: i, Data: []byte{byte(i)}})
	}
	return out
}

func indexes(es []replica.Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Index)
	}
	return out
}

func TestDiskPersistSemantics(t *testing.T) {
	tests := []struct {
		name  string
		steps []replica.Persist
		want  []uint64
		state string
		snap  uint64
	}{
		{"append", []replica.Persist{{Entries: entries(1, 2, 3)}}, []uint64{1, 2, 3}, "", 0},
		{"replace same index", []replica.Persist{{Entries: entries(1, 2, 3)}, {Entries: []replica.Entry{{Index: 2, Data: []byte("x")}}}}, []uint64{1, 2, 3}, "", 0},
		{"insert gap", []replica.Persist{{Entries: entries(1, 3)}, {Entries: entries(2)}}, []uint64{1, 2, 3}, "", 0},
		{"truncate then write", []replica.Persist{{Entries: entries(1, 2, 3, 4)}, {Truncate: true, TruncateAfter: 2, Entries: entries(3)}}, []uint64{1, 2, 3}, "", 0},
		{"truncate all", []replica.Persist{{Entries: entries(1, 2)}, {Truncate: true, TruncateAfter: 0}}, nil, "", 0},
		{"state kept when nil", []replica.Persist{{State: []byte("a")}, {Entries: entries(1)}}, []uint64{1}, "a", 0},
		{"snapshot drops covered entries", []replica.Persist{{Entries: entries(1, 2, 3, 4, 5)}, {Snapshot: &replica.Snapshot{Index: 3}}}, []uint64{4, 5}, "", 3},
		{"entries then snapshot in one persist", []replica.Persist{{Entries: entries(1, 2, 3), Snapshot: &replica.Snapshot{Index: 2}}}, []uint64{3}, "", 2},
		{"snapshot past the log", []replica.Persist{{Entries: entries(1, 2)}, {Snapshot: &replica.Snapshot{Index: 9}}}, nil, "", 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d disk
			for i := range tt.steps {
				if err := d.Write(&tt.steps[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			du, _ := d.Load()
			if got := indexes(du.Entries); !slices.Equal(got, tt.want) {
				t.Errorf("entries %v, want %v", got, tt.want)
			}
			if string(du.State) != tt.state {
				t.Errorf("state %q, want %q", du.State, tt.state)
			}
			var snap uint64
			if du.Snapshot != nil {
				snap = du.Snapshot.Index
			}
			if snap != tt.snap {
				t.Errorf("snapshot %d, want %d", snap, tt.snap)
			}
		})
	}
}

func TestDiskCopiesWhatItStores(t *testing.T) {
	var d disk
	buf := []byte("abc")
	_ = d.Write(&replica.Persist{State: buf, Entries: []replica.Entry{{Index: 1, Data: buf}}})
	buf[0] = 'z'
	_ = d.Sync()
	du, _ := d.Load()
	if string(du.State) != "abc" || string(du.Entries[0].Data) != "abc" {
		t.Fatalf("the disk changed with the core's buffer: %q %q", du.State, du.Entries[0].Data)
	}
	du.Entries[0].Data[0] = 'q'
	if again, _ := d.Load(); string(again.Entries[0].Data) != "abc" {
		t.Fatal("a restarted core could change the disk through Durable")
	}
}

// TestDiskCrashLosesOnlyUnsynced: synced writes survive every crash; an
// unsynced write survives some crashes and not others, and a torn one keeps
// a prefix of its transactions (here: the state without the entries).
func TestDiskCrashLosesOnlyUnsynced(t *testing.T) {
	outcomes := map[string]int{}
	for seed := int64(0); seed < 200; seed++ {
		d := disk{rng: rand.New(rand.NewSource(seed))}
		_ = d.Write(&replica.Persist{State: []byte("s1"), Entries: entries(1, 2)})
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		_ = d.Write(&replica.Persist{State: []byte("s2"), Truncate: true, TruncateAfter: 1, Entries: entries(2, 3)})
		d.crash()
		du, _ := d.Load()
		got := string(du.State) + fmt.Sprint(indexes(du.Entries))
		switch got {
		case "s1[1 2]", "s2[1 2]", "s2[1]", "s2[1 2 3]":
		default:
			t.Fatalf("seed %d: after the crash the disk holds %s, which no crash of these writes leaves", seed, got)
		}
		outcomes[got]++
		if d.unsynced() {
			t.Fatal("writes still pending after a crash")
		}
	}
	if len(outcomes) != 4 {
		t.Fatalf("200 crashes left only %v: every outcome (lost, torn after state, torn after truncate, kept) must occur", outcomes)
	}
}

func TestDiskSyncFailureKeepsWritesPending(t *testing.T) {
	d := disk{rng: rand.New(rand.NewSource(1)), failSyncs: 1}
	_ = d.Write(&replica.Persist{State: []byte("s")})
	if err := d.Sync(); err == nil {
		t.Fatal("the sync did not fail")
	}
	if du, _ := d.Load(); du.State != nil || !d.unsynced() {
		t.Fatal("a failed sync made the write durable")
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if du, _ := d.Load(); string(du.State) != "s" {
		t.Fatal("the next sync did not make the write durable")
	}
}

func TestAgendaOrdersByTimeThenScheduling(t *testing.T) {
	var a agenda
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 1000; i++ {
		a.push(event{at: int64(r.Intn(50))})
	}
	var last event
	for i := 0; a.len() > 0; i++ {
		e := a.pop()
		if i > 0 && (e.at < last.at || (e.at == last.at && e.seq < last.seq)) {
			t.Fatalf("event (%d,%d) after (%d,%d)", e.at, e.seq, last.at, last.seq)
		}
		last = e
	}
}

func newTestCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	c, err := NewCluster(ClusterConfig{Seed: 1, Replicas: n, Factory: fakeFactory(false), NewStateMachine: newKV})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPlacementAppliesGrudge: the simulator applies a grudge planned by
// package nemesis link by link, both in one group and in replica groups
// placed on a ring of world nodes (where a group's node i is some other
// world node).
func TestPlacementAppliesGrudge(t *testing.T) {
	for _, n := range []int{3, 5, 7} {
		c := newTestCluster(t, n)
		p := newPlacement([]*Cluster{c}, [][]replica.NodeID{c.Peers()}, n)
		g, err := nemesis.MajoritiesRing(p.names, randv2.New(randv2.NewPCG(uint64(n), 1)))
		if err != nil {
			t.Fatal(err)
		}
		p.setGrudge(g)
		for _, a := range c.Peers() {
			for _, b := range c.Peers() {
				if c.CanHear(a, b) == g.Drops(nodeName(a), nodeName(b)) {
					t.Errorf("n=%d: %d hears %d: %v, but the grudge says drops: %v", n, a, b, c.CanHear(a, b), g.Drops(nodeName(a), nodeName(b)))
				}
			}
		}
		p.heal()
		if !c.CanHear(1, 2) || p.grudge != nil {
			t.Errorf("n=%d: heal left cuts", n)
		}
	}
	// Group nodes 1-3 live on world nodes 4, 5, 1.
	c := newTestCluster(t, 3)
	p := newPlacement([]*Cluster{c}, [][]replica.NodeID{{4, 5, 1}}, 5)
	p.setGrudge(nemesis.Complete([]string{"n1", "n2"}, []string{"n3", "n4", "n5"}))
	if c.CanHear(3, 1) || c.CanHear(1, 3) || !c.CanHear(1, 2) || p.hears(1, 4) || !p.hears(4, 5) {
		t.Fatal("a grudge of world nodes did not cut the group's nodes 3 (n1) and 1 (n4) apart, or cut more")
	}
}

func TestPartitionShapes(t *testing.T) {
	c := newTestCluster(t, 5)
	c.Partition([]replica.NodeID{1, 2}, []replica.NodeID{3, 4, 5})
	if c.CanHear(1, 3) || c.CanHear(3, 1) || !c.CanHear(1, 2) || !c.CanHear(4, 5) {
		t.Fatal("halves wrong")
	}
	c.Partition([]replica.NodeID{2, 3, 4, 5})
	for _, b := range []replica.NodeID{2, 3, 4, 5} {
		if c.CanHear(1, b) || c.CanHear(b, 1) {
			t.Fatal("node 1 is not isolated")
		}
	}
	c.Heal()
	c.Cut(1, 2)
	if c.CanHear(1, 2) || !c.CanHear(2, 1) {
		t.Fatal("a one-way cut is not one way")
	}
}
