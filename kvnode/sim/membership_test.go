package sim

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	knode "github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// membershipConfig is seed s of the membership sweep: replicas added,
// removed and replaced while partitions, kills and power losses hit the
// group; 3 replicas (5 for every third seed) and 2 spares, the append
// workload on one key for every fourth seed, a snapshot every 25 entries
// for odd seeds (so that joiners catch up by snapshot).
func membershipConfig(proto string, s int64) Config {
	cfg := Config{Seed: s, Protocol: proto, Replicas: 3, Workload: WorkloadRegister, Keys: 5, Clients: 10, Ops: 1000,
		Nemesis: []nemesis.Kind{nemesis.Membership, nemesis.Partition, nemesis.Kill, nemesis.LoseUnsynced}, SnapshotEvery: 500}
	if s%2 == 1 {
		cfg.SnapshotEvery = 25
	}
	if s%3 == 0 {
		cfg.Replicas = 5
	}
	if s%4 == 0 {
		cfg.Workload, cfg.Keys = WorkloadAppend, 1
	}
	return cfg
}

// TestMembershipSweep runs seeds with membership changes mixed with
// crashes and partitions: every history must be linearizable, with no
// acknowledged write lost, and the oracles must see no safety violation.
// The sweep fails if no change ever took effect, which would make it
// vacuous. Seed count as TestRandomSweep's, a fifth of it.
func TestMembershipSweep(t *testing.T) {
	n := max(sweepSeeds(t)/5, 4)
	var mu sync.Mutex
	changes, removed := 0, 0
	seeds := make(chan int64)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range seeds {
				cfg := membershipConfig("paxos", s)
				res, err := Run(cfg)
				mu.Lock()
				switch {
				case err != nil:
					t.Errorf("seed %d: %v\n  replay: %s", s, err, replayCommand(cfg))
				case res.Valid != checker.Valid:
					t.Errorf("seed %d: %s: %s %v\n  replay: %s", s, res.Valid, res.Check.Summary, res.Problems, replayCommand(cfg))
				default:
					c, r := countChanges(res.History)
					changes, removed = changes+c, removed+r
				}
				mu.Unlock()
			}
		}()
	}
	for s := int64(1); s <= int64(n); s++ {
		seeds <- s
	}
	close(seeds)
	wg.Wait()
	if changes == 0 || removed == 0 {
		t.Fatalf("%d seeds made %d membership changes, %d of them removing a member: the sweep tests nothing", n, changes, removed)
	}
	t.Logf("%d seeds, %d membership changes, %d removing a member", n, changes, removed)
}

// countChanges counts the membership changes a history records as
// proposed, and those that dropped a member.
func countChanges(h []history.Op) (changes, removals int) {
	for _, op := range h {
		v, ok := op.Value.(map[string]any)
		if op.F != string(nemesis.Membership) || op.Type != history.Info || !ok || v["to"] == nil || op.Error != "" {
			continue
		}
		changes++
		to := v["to"].([]any)
		for _, id := range v["from"].([]any) {
			if !slices.Contains(to, id) {
				removals++
				break
			}
		}
	}
	return changes, removals
}

// TestMembershipRefusedWithoutReconfigurer checks that a protocol whose
// core cannot change membership is refused by name, not run without the
// fault.
func TestMembershipRefusedWithoutReconfigurer(t *testing.T) {
	_, err := Run(Config{Seed: 1, Protocol: "vr", Replicas: 3, Nemesis: []nemesis.Kind{nemesis.Membership}, Ops: 10})
	if err == nil || !strings.Contains(err.Error(), "membership changes are not supported") {
		t.Fatalf("vr with the membership nemesis: %v", err)
	}
	c, err := NewCluster(ClusterConfig{Seed: 1, Replicas: 3, Protocol: "vr", NewStateMachine: newKV})
	if err != nil {
		t.Fatal(err)
	}
	c.RunFor(2 * time.Second)
	if _, err := c.ChangeMembers([]replica.NodeID{1, 2}); !errors.Is(err, knode.ErrNoMembership) {
		t.Fatalf("ChangeMembers on vr: %v", err)
	}
}
