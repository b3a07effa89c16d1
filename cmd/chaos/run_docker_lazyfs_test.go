package main

import (
	"testing"

	"github.com/chaoskv/chaos/history"
)

// loseUnsyncedArgs is one short lose-unsynced run: on seed 4 the nemesis's
// first fault, a second or so into the workload, takes every node of the
// one replica group down with its unsynced writes (a power loss of the
// whole cluster), which only a store that syncs what it acknowledges
// survives.
var loseUnsyncedArgs = []string{"--nemesis", "lose-unsynced", "--kill-policy", "any", "--nodes", "3", "--replicas", "3",
	"--nemesis-interval", "2s", "--time-limit", "10s", "--seed", "4"}

// TestRunDockerLoseUnsynced is the proof that lose-unsynced finds a store
// that does not fsync: kvnode with its syncs turned off loses acknowledged
// writes (the run is invalid), while the real kvnode, on the same seed,
// stays valid.
func TestRunDockerLoseUnsynced(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the Docker end-to-end run in -short mode")
	}
	dockerOrSkip(t)
	bin := buildKvnode(t)
	t.Run("no-fsync-is-invalid", func(t *testing.T) {
		r := runDockerExit(t, exitInvalid, bin, append(loseUnsyncedArgs, "--kvnode-arg=--fsync=unsafe-none-test-only")...)
		lost := r.lostChanges(t)
		t.Logf("%d unsynced changes lost; %d ok ops", lost, r.oks())
		if lost == 0 {
			t.Fatal("the no-fsync nodes lost no writes, so the invalid verdict has another cause")
		}
	})
	t.Run("real-kvnode-is-valid", func(t *testing.T) {
		r := runDockerExit(t, exitValid, bin, loseUnsyncedArgs...)
		r.lostChanges(t)
		r.checkTimings(t)
		if oks := r.oks(); oks < 200 {
			t.Fatalf("only %d ok ops", oks)
		}
	})
}

// lostChanges checks that every lose-unsynced took effect on every node of
// the cluster at least once and returns how many unsynced changes were
// undone in all.
func (r dockerRun) lostChanges(t *testing.T) int64 {
	t.Helper()
	var total int64
	victims := map[string]bool{}
	for _, op := range r.ops {
		if !op.Process.IsNemesis() || op.Type != history.Info || op.F != "start-lose-unsynced" {
			continue
		}
		if op.Error != "" {
			t.Fatalf("lose-unsynced failed: %s", op.Error)
		}
		lost, _ := op.Value.(map[string]any)["lost"].(map[string]any)
		for node, l := range lost {
			victims[node] = true
			switch n := l.(map[string]any)["changes"].(type) {
			case int64:
				total += n
			case float64:
				total += int64(n)
			default:
				t.Fatalf("lose-unsynced of %s: changes %v (%T)", node, n, n)
			}
		}
	}
	if n := r.nemesisOps(); n["stop-lose-unsynced"] == 0 || len(victims) != 3 {
		t.Fatalf("nemesis ops %v, victims %v: want every node to lose its unsynced writes and restart", n, victims)
	}
	return total
}
