package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// The simulator's own machinery, exercised with the fake primary-backup
// core: runs complete, histories replay exactly, and a core that serves
// stale reads is caught.

func TestFakeCoreRunIsLinearizableAndDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Factory: fakeFactory(false), Nemesis: []nemesis.Kind{nemesis.Partition, nemesis.Loss, nemesis.Dup, nemesis.Delay}, Ops: 500, SnapshotEvery: 50}
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Valid != checker.Valid {
		t.Fatalf("seed %d: %s %v", cfg.Seed, a.Check.Summary, a.Problems)
	}
	if a.Ok < 100 {
		t.Fatalf("only %d ok ops of %d", a.Ok, a.Ops)
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.HistoryJSONL(), b.HistoryJSONL()) {
		t.Fatal("same seed, different histories")
	}
	t.Logf("ops=%d ok=%d fail=%d info=%d virtual=%v net=%+v", a.Ops, a.Ok, a.Fail, a.Info, a.Virtual, a.Net)
}

func TestFakeCoreStaleReadsAreCaught(t *testing.T) {
	for _, keys := range []int{5, 1} {
		found := false
		for seed := int64(1); seed <= 20 && !found; seed++ {
			res, err := Run(Config{Seed: seed, Keys: keys, Factory: fakeFactory(true), Nemesis: []nemesis.Kind{nemesis.Partition, nemesis.Delay}, Ops: 300})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid == checker.Invalid {
				found = true
				t.Logf("%d keys, seed %d: %s", keys, seed, res.Check.Summary)
			}
		}
		if !found {
			t.Fatalf("%d keys: 20 seeds of a core that serves stale reads from backups all looked linearizable", keys)
		}
	}
}

func TestCompareReplicasFindsDivergence(t *testing.T) {
	c := newTestCluster(t, 3)
	cl := c.NewClient(patient)
	if _, ok, err := cl.Do(putOp("k", "v"), time.Second); err != nil || !ok {
		t.Fatalf("put: %v %v", ok, err)
	}
	c.RunFor(200 * time.Millisecond)
	if p := c.CompareReplicas(); len(p) != 0 {
		t.Fatalf("healthy replicas reported as diverged: %v", p)
	}
	// Change node 3's state behind the protocol's back, keeping its
	// applied index.
	c.nodes[2].sm.(*kv.Store).Apply(0, replica.Request{ClientID: 99, Seq: 1, Op: putOp("k", "other")})
	p := c.CompareReplicas()
	if len(p) != 1 || !strings.Contains(p[0], "[[1 2] [3]]") {
		t.Fatalf("divergence not reported as expected: %v", p)
	}
}

func TestPauseBuffersUntilResume(t *testing.T) {
	c := newTestCluster(t, 3)
	cl := c.NewClient(patient)
	c.Pause(2)
	for i := 0; i < 5; i++ {
		if _, ok, err := cl.Do(putOp("k", "v"), time.Second); err != nil || !ok {
			t.Fatalf("put: %v %v", ok, err)
		}
	}
	c.RunFor(100 * time.Millisecond)
	st3, _ := c.Status(3)
	if st2, _ := c.Status(2); st2.Applied != 0 || st3.Applied != 5 || len(c.nodes[1].inbox) == 0 {
		t.Fatalf("while node 2 is paused: applied %d (node 3: %d), inbox %d", st2.Applied, st3.Applied, len(c.nodes[1].inbox))
	}
	c.Resume(2)
	if st2, _ := c.Status(2); st2.Applied != 5 {
		t.Fatalf("node 2 did not handle its buffered messages on resume: applied %d", st2.Applied)
	}
	c.Pause(2)
	c.Crash(2)
	if c.Paused(2) || c.nodes[1].inbox != nil {
		t.Fatal("a crash did not clear the pause and its buffer")
	}
}

func TestClockRate(t *testing.T) {
	c := newTestCluster(t, 3)
	if err := c.SetClockRate(2, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.SetClockRate(3, 0); err == nil {
		t.Fatal("a zero clock rate was accepted")
	}
	c.RunFor(time.Second)
	t1, t2 := c.nodes[0].rep.Core.(*fakeCore).ticks, c.nodes[1].rep.Core.(*fakeCore).ticks
	if t1 < 95 || t1 > 101 || t2 < 290 || t2 > 301 {
		t.Fatalf("in 1s at 10ms ticks: node 1 ticked %d times (want ~100), node 2 at rate 3 ticked %d (want ~300)", t1, t2)
	}
}
