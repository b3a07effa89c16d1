package sim

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
	knode "github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// membershipConfig is seed s of the membership sweep: replicas added,
// removed and replaced while partitions, kills and power losses hit the
// group; 3 replicas (5 for every third seed) and 2 spares, the register
// on one key for every fourth seed, a snapshot every 25 entries
// for odd seeds (so that joiners catch up by snapshot).
func membershipConfig(proto string, s int64) Config {
	cfg := Config{Seed: s, Protocol: proto, Replicas: 3, Workload: "register", Keys: 5, Clients: 10, Ops: 1000,
		Nemesis: []nemesis.Kind{nemesis.Membership, nemesis.Partition, nemesis.Kill, nemesis.LoseUnsynced}, SnapshotEvery: 500}
	if s%2 == 1 {
		cfg.SnapshotEvery = 25
	}
	if s%3 == 0 {
		cfg.Replicas = 5
	}
	if s%4 == 0 {
		cfg.Keys = 1
	}
	return cfg
}

// TestMembershipSweep runs seeds with membership changes mixed with
// crashes and partitions, for every core that implements
// replica.Reconfigurer: every history must be linearizable, with no
// acknowledged write lost, and the oracles must see no safety violation.
// The sweep fails if no change ever took effect, which would make it
// vacuous. Seed count as TestRandomSweep's: a fifth of it for Paxos, half
// of it for VR, whose epochs are younger code and whose runs are fast
// (100 seeds take about 10 s).
func TestMembershipSweep(t *testing.T) {
	t.Run("paxos", func(t *testing.T) { membershipSweep(t, "paxos", max(sweepSeeds(t)/5, 4)) })
	t.Run("vr", func(t *testing.T) { membershipSweep(t, "vr", max(sweepSeeds(t)/2, 4)) })
}

func membershipSweep(t *testing.T, proto string, n int) {
	changes, removed, effective := 0, 0, 0
	sweep(t, n, func(s int64) Config { return membershipConfig(proto, s) }, func(res *Result) {
		c, r, e := countChanges(res.History)
		changes, removed, effective = changes+c, removed+r, effective+e
	})
	if changes == 0 || removed == 0 || effective == 0 {
		t.Fatalf("%d seeds made %d membership changes, %d of them removing a member, %d seen in force: the sweep tests nothing", n, changes, removed, effective)
	}
	t.Logf("%d seeds, %d membership changes, %d removing a member, %d seen in force by a later change", n, changes, removed, effective)
}

// countChanges counts the membership changes a history records as
// proposed, those that dropped a member, and those that a later change
// found in force (it started from the configuration they named).
func countChanges(h []history.Op) (changes, removals, effective int) {
	for i, op := range h {
		v, ok := op.Value.(map[string]any)
		if op.F != string(nemesis.Membership) || op.Type != history.Info || !ok || v["to"] == nil || op.Error != "" {
			continue
		}
		changes++
		to := v["to"].([]any)
		for _, later := range h[i+1:] {
			if w, ok := later.Value.(map[string]any); ok && later.F == string(nemesis.Membership) && later.Type == history.Info && w["from"] != nil {
				if slices.Equal(w["from"].([]any), to) {
					effective++
				}
				break
			}
		}
		for _, id := range v["from"].([]any) {
			if !slices.Contains(to, id) {
				removals++
				break
			}
		}
	}
	return changes, removals, effective
}

// TestMembershipRefusedWithoutReconfigurer checks that a core that cannot
// change membership refuses a change by name.
func TestMembershipRefusedWithoutReconfigurer(t *testing.T) {
	c, err := NewCluster(ClusterConfig{Seed: 1, Replicas: 3, Factory: fakeFactory(false), NewStateMachine: newKV})
	if err != nil {
		t.Fatal(err)
	}
	c.RunFor(2 * time.Second)
	if _, err := c.ChangeMembers([]replica.NodeID{1, 2}); !errors.Is(err, knode.ErrNoMembership) {
		t.Fatalf("ChangeMembers on vr: %v", err)
	}
}
