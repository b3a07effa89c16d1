package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// lyingCluster runs a few puts through a group whose disks never make a
// write durable although every Sync succeeds, so every node ends with
// acknowledged but unsynced log entries.
func lyingCluster(t *testing.T, proto string, seed int64) *Cluster {
	t.Helper()
	c := newKVCluster(t, proto, seed, 3, func(cfg *ClusterConfig) { cfg.syncLies = true })
	cl := c.NewClient(patient)
	for i := range 10 {
		if rep := mustDo(t, cl, putOp("x", fmt.Sprint(i)), 10*time.Second); !rep.Ok {
			t.Fatalf("put: %+v", rep)
		}
	}
	c.RunFor(100 * time.Millisecond)
	return c
}

// TestKillKeepsUnsyncedWrites: the kill nemesis's crash (SIGKILL) leaves
// the page cache to the kernel, so not one write is lost even when none
// was really synced; lose-unsynced's crash (a power loss) loses some.
func TestKillKeepsUnsyncedWrites(t *testing.T) {
	forEachProtocol(t, 11, func(t *testing.T, proto string, seed int64) {
		c := lyingCluster(t, proto, seed)
		for _, id := range c.Peers() {
			if got := c.DiskEntries(id); got != 0 {
				t.Fatalf("node %d: %d durable entries before any crash; the lying disk synced something", id, got)
			}
		}
		// Process crash: everything written survives.
		id := replica.NodeID(1)
		st, _ := c.Status(id)
		c.CrashProcess(id)
		if _, _, lost, torn := c.DiskStats(id); lost != 0 || torn != 0 {
			t.Fatalf("process crash lost %d and tore %d writes", lost, torn)
		}
		if got := c.DiskEntries(id); got < int(st.Commit) {
			t.Fatalf("process crash kept %d log entries, want at least the %d committed", got, st.Commit)
		}
		if err := c.Restart(id); err != nil {
			t.Fatal(err)
		}
		// Power loss on the others: over two nodes and a few rounds,
		// some unsynced write is lost.
		lostAny := false
		for round := 0; round < 5 && !lostAny; round++ {
			for _, id := range c.Peers()[1:] {
				before := c.DiskEntries(id)
				c.Crash(id)
				_, _, lost, _ := c.DiskStats(id)
				lostAny = lostAny || lost > 0
				if lost == 0 && c.DiskEntries(id) < before {
					t.Fatalf("node %d: durable entries went from %d to %d with no write lost", id, before, c.DiskEntries(id))
				}
				if err := c.Restart(id); err != nil {
					t.Fatal(err)
				}
			}
			cl := c.NewClient(patient)
			mustDo(t, cl, putOp("y", fmt.Sprint(round)), 10*time.Second)
		}
		if !lostAny {
			t.Fatal("power-loss crashes of nodes holding only unsynced writes lost none of them")
		}
	})
}

// TestJumpClock: a forward step fires the ticks it passes over at once, a
// backward step owes ticks that later forward steps and time pay off, and
// a restart forgets the debt.
func TestJumpClock(t *testing.T) {
	c := newKVCluster(t, "paxos", 1, 3, nil)
	waitLeader(t, c)
	tick := c.cfg.Tick
	id := replica.NodeID(2)
	n := c.nodes[c.mustIndex(id)]
	if got := c.JumpClock(id, 5*tick+tick/2); got != 5 {
		t.Fatalf("forward step of 5.5 ticks fired %d", got)
	}
	if got := c.JumpClock(id, -8*tick); got != 0 || n.skipTicks != 8 {
		t.Fatalf("backward step of 8 ticks fired %d and owes %d", got, n.skipTicks)
	}
	if got := c.JumpClock(id, 3*tick); got != 0 || n.skipTicks != 5 {
		t.Fatalf("forward step of 3 ticks against a debt of 8 fired %d and owes %d", got, n.skipTicks)
	}
	c.RunFor(2*tick + tick/2)
	if n.skipTicks != 3 {
		t.Fatalf("after 2.5 ticks of time the debt is %d, want 3", n.skipTicks)
	}
	if got := c.JumpClock(id, 2000*tick); got != maxJumpTicks {
		t.Fatalf("a step of 2000 ticks owing 3 fired %d, want the cap %d", got, maxJumpTicks)
	}
	c.JumpClock(id, -4*tick)
	c.Crash(id)
	if err := c.Restart(id); err != nil {
		t.Fatal(err)
	}
	if n.skipTicks != 0 {
		t.Fatalf("a restarted node owes %d ticks; its timers start afresh", n.skipTicks)
	}
	checkReplicas(t, c)
}

// TestLoseUnsyncedCatchesMissingFsync: a node whose fsync does nothing
// (the lying disk: no oracle sees it) passes every kill, as on real
// machines, and lose-unsynced finds it within a small seed budget.
func TestLoseUnsyncedCatchesMissingFsync(t *testing.T) {
	const budget = 30
	for _, proto := range protocols(t) {
		t.Run(proto, func(t *testing.T) {
			run := func(kind nemesis.Kind, s int64) (*Result, Config) {
				cfg := Config{Seed: s, Protocol: proto, Replicas: 3, Workload: "register", Keys: 5, Clients: 10,
					Nemesis: []nemesis.Kind{kind}, Ops: 400, SnapshotEvery: 500, syncLies: true}
				res, err := Run(cfg)
				if err != nil {
					t.Fatalf("seed %d: %v\n  replay: %s (with the lying disk)", s, err, replayCommand(cfg))
				}
				return res, cfg
			}
			for s := int64(1); s <= 10; s++ {
				if res, cfg := run(nemesis.Kill, s); res.Valid != checker.Valid {
					t.Fatalf("kill made the missing fsync visible (%s %v); a SIGKILL keeps the page cache\n  replay: %s (with the lying disk)", res.Check.Summary, res.Problems, replayCommand(cfg))
				}
			}
			for s := int64(1); s <= budget; s++ {
				if res, _ := run(nemesis.LoseUnsynced, s); res.Valid == checker.Invalid {
					t.Logf("lose-unsynced caught the missing fsync at seed %d: %s %v", s, res.Check.Summary, res.Problems)
					return
				}
			}
			t.Fatalf("lose-unsynced did not catch a node that never fsyncs in %d seeds", budget)
		})
	}
}

// TestNewFaultSweep: seeds mixing the power-loss crash, the clock steps and
// strobes with partitions and kills stay linearizable and converge.
func TestNewFaultSweep(t *testing.T) {
	seeds := int64(30)
	if testing.Short() {
		seeds = 8
	}
	kinds := []nemesis.Kind{nemesis.LoseUnsynced, nemesis.ClockBump, nemesis.ClockStrobe, nemesis.Kill, nemesis.Partition}
	for _, proto := range protocols(t) {
		t.Run(proto, func(t *testing.T) {
			for s := int64(1); s <= seeds; s++ {
				cfg := Config{Seed: s, Protocol: proto, Replicas: 5, Nemesis: kinds, Ops: 500, SnapshotEvery: 500}
				if s%2 == 1 {
					cfg.SnapshotEvery = 25
				}
				if s%3 == 0 {
					cfg.Replicas = 3
				}
				res, err := Run(cfg)
				switch {
				case err != nil:
					t.Errorf("seed %d: %v\n  replay: %s", s, err, replayCommand(cfg))
				case res.Valid != checker.Valid:
					t.Errorf("seed %d: %v %s %v\n  replay: %s", s, res.Valid, res.Check.Summary, res.Problems, replayCommand(cfg))
				}
			}
		})
	}
}
