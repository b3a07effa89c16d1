package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/history"
)

// loseUnsyncedArgs is one short lose-unsynced run: on seed 8 the nemesis's
// first two faults, about 2.5s into the workload and again about 2s after
// the restart, take every node of the one replica group down with its
// unsynced writes (a power loss of the whole cluster), which only a store
// that syncs what it acknowledges survives.
var loseUnsyncedArgs = []string{"--nemesis", "lose-unsynced", "--kill-policy", "any", "--nodes", "3", "--replicas", "3",
	"--nemesis-interval", "2s", "--time-limit", "10s", "--seed", "8"}

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
		if oks := r.oks(); oks < 50 {
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

// TestRunDockerClock bumps and strobes node clocks during a short run: the
// verdict stays valid, both kinds take effect, and every node whose clock
// was shifted logs its reset to 0 last.
func TestRunDockerClock(t *testing.T) {
	r := runDocker(t, "--nemesis", "clock-bump,clock-strobe", "--nodes", "3", "--replicas", "3",
		"--nemesis-interval", "1500ms", "--time-limit", "8s", "--seed", "6", "--clock-skew", "30s", "--strobe-period", "10ms")
	n := r.nemesisOps()
	if n["start-clock-bump"]+n["start-clock-strobe"] < 2 || n["stop-clock-bump"]+n["stop-clock-strobe"] < 2 {
		t.Fatalf("nemesis ops %v: want clock faults started and stopped", n)
	}
	victims := map[string]bool{}
	for _, op := range r.ops {
		if op.Process.IsNemesis() && op.Type == history.Info && strings.HasPrefix(op.F, "start-clock-") {
			for _, v := range op.Value.(map[string]any)["nodes"].([]any) {
				victims[v.(string)] = true
			}
		}
	}
	for node := range victims {
		b, err := os.ReadFile(filepath.Join(r.dir, "nodes", node, "log"))
		if err != nil {
			t.Fatal(err)
		}
		var sets []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `msg="clock offset set"`) {
				continue
			}
			if _, v, ok := strings.Cut(line, " offset="); ok {
				sets = append(sets, strings.Fields(v)[0])
			}
		}
		if len(sets) < 2 || sets[len(sets)-1] != "0s" {
			t.Fatalf("%s set its clock to %v: want shifts ending with a reset to 0s", node, sets)
		}
		t.Logf("%s: %d clock settings, first %s", node, len(sets), sets[0])
	}
}
