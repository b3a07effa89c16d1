package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
)

// loseUnsyncedArgs is one short lose-unsynced run: on seed 8 the nemesis
// takes every node of the one replica group down with its unsynced writes
// (a power loss of the whole cluster) about 2.5s into the workload and
// twice more, each time restarting it about 2.5s later, which only a store
// that syncs what it acknowledges survives. The run is long enough that
// on a loaded machine, where one restart of the three containers has been
// seen to take 5s, a loss is still followed by a restart and by reads.
var loseUnsyncedArgs = []string{"--nemesis", "lose-unsynced", "--kill-policy", "any", "--nodes", "3", "--replicas", "3",
	"--nemesis-interval", "2s", "--time-limit", "16s", "--seed", "8"}

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

// TestRunDockerClockBump shifts node clocks during a short run: the
// verdict stays valid, bumps start and stop in the history, and every
// shifted node set exactly the offset the nemesis chose through its
// /clock-offset endpoint and was set back to 0 last.
func TestRunDockerClockBump(t *testing.T) {
	r := runDocker(t, "--nemesis", "clock-bump", "--nodes", "3", "--replicas", "3",
		"--nemesis-interval", "1500ms", "--time-limit", "10s", "--seed", "6", "--clock-skew", "30s")
	for node, c := range r.clockFaults(t, "clock-bump") {
		if c.logged[len(c.logged)-1] != 0 {
			t.Errorf("%s's last clock setting is %v, want the reset to 0", node, c.logged[len(c.logged)-1])
		}
		for _, want := range c.chosen {
			if !slices.Contains(c.logged, want) {
				t.Errorf("%s never set the bump's offset %v (it set %v)", node, want, c.logged)
			}
		}
		t.Logf("%s: bumped to %v, set %v", node, c.chosen, c.logged)
	}
}

// TestRunDockerClockStrobe flips node clocks back and forth during a short
// run: the verdict stays valid, strobes start and stop in the history,
// every strobed node was set to both +d and -d of its strobe through its
// /clock-offset endpoint, flipped at least twice, and ended at 0.
func TestRunDockerClockStrobe(t *testing.T) {
	r := runDocker(t, "--nemesis", "clock-strobe", "--nodes", "3", "--replicas", "3",
		"--nemesis-interval", "1500ms", "--time-limit", "10s", "--seed", "6", "--clock-skew", "30s", "--strobe-period", "20ms")
	for node, c := range r.clockFaults(t, "clock-strobe") {
		if c.logged[len(c.logged)-1] != 0 {
			t.Errorf("%s's last clock setting is %v, want the reset to 0", node, c.logged[len(c.logged)-1])
		}
		for _, d := range c.chosen {
			if !slices.Contains(c.logged, d) || !slices.Contains(c.logged, -d) {
				t.Errorf("%s was not strobed between %v and %v (it set %v)", node, d, -d, c.logged)
			}
		}
		if c.flips < 2 {
			t.Errorf("%s flipped %d times", node, c.flips)
		}
		t.Logf("%s: strobed at %v, %d flips, %d clock settings", node, c.chosen, c.flips, len(c.logged))
	}
}

// clockFault is what a run did to one node's clock: the offsets the
// nemesis chose, as its history says, the settings the node logged
// receiving on /clock-offset, in order, and the strobe's flips.
type clockFault struct {
	chosen []time.Duration
	logged []time.Duration
	flips  int64
}

// clockFaults checks that faults of kind started and stopped without
// error, at least twice each, and returns per victim what happened to its
// clock (with at least one logged setting).
func (r dockerRun) clockFaults(t *testing.T, kind string) map[string]*clockFault {
	t.Helper()
	out := map[string]*clockFault{}
	starts, stops := 0, 0
	for _, op := range r.ops {
		if !op.Process.IsNemesis() || op.Type != history.Info || !strings.HasSuffix(op.F, "-"+kind) {
			continue
		}
		if op.Error != "" {
			t.Fatalf("%s failed: %s", op.F, op.Error)
		}
		v := op.Value.(map[string]any)
		switch op.F {
		case "start-" + kind:
			starts++
			ms, _ := v["offset_ms"].(float64)
			for _, n := range v["nodes"].([]any) {
				c := out[n.(string)]
				if c == nil {
					c = &clockFault{}
					out[n.(string)] = c
				}
				c.chosen = append(c.chosen, time.Duration(math.Round(ms*float64(time.Millisecond))))
			}
		case "stop-" + kind:
			stops++
			flips, _ := v["flips"].(map[string]any)
			for n, f := range flips {
				if c := out[n]; c != nil {
					c.flips += toInt64(t, f)
				}
			}
		}
	}
	if starts < 2 || stops < starts {
		t.Fatalf("%d start-%s and %d stop-%s took effect: want at least 2, each stopped", starts, kind, stops, kind)
	}
	for node, c := range out {
		c.logged = clockSettings(t, filepath.Join(r.dir, "nodes", node, "log"))
		if len(c.logged) == 0 {
			t.Fatalf("%s logged no clock setting, though the nemesis shifted its clock to %v", node, c.chosen)
		}
	}
	return out
}

// clockSettings returns the offsets a kvnode log says the node was set to
// through /clock-offset, in order.
func clockSettings(t *testing.T, path string) []time.Duration {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Duration
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `msg="clock offset set"`) {
			continue
		}
		_, v, ok := strings.Cut(line, " offset=")
		if !ok {
			t.Fatalf("%s: clock setting without an offset: %s", path, line)
		}
		d, err := time.ParseDuration(strings.Fields(v)[0])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, d)
	}
	return out
}

func toInt64(t *testing.T, v any) int64 {
	t.Helper()
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}
