package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/internal/dockertest"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/results"
)

// dockerOrSkip connects to Docker, skipping the test when no engine is
// reachable, unless CI=true demands one.
func dockerOrSkip(t *testing.T) *docker.Docker {
	t.Helper()
	return dockertest.Connect(t)
}

// TestRunDockerPartition is the product's main job end to end: a 20-second
// chaos run --nemesis partition against a real kvnode cluster in Docker. It
// must be valid, have partitions in its history, and leave nothing running.
func TestRunDockerPartition(t *testing.T) {
	r := runDocker(t, "--nemesis", "partition", "--nemesis-interval", "4s",
		"--time-limit", "20s", "--seed", "1")
	partitions, oks := r.nemesisOps()["start-partition"], r.oks()
	if partitions == 0 {
		t.Fatal("no partition took effect during the run")
	}
	if oks < 400 {
		t.Fatalf("only %d ok ops in 20s at 100 ops/s", oks)
	}
	sum, err := results.ReadSummary(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d partitions, %d ok ops; %v", partitions, oks, sum.Results)
	for _, n := range []string{"n1", "n5"} {
		for _, f := range []string{"log", kvnodedb.StatusFile} {
			if _, err := os.Stat(filepath.Join(r.dir, results.NodesDir, n, f)); err != nil {
				t.Errorf("node file missing: %v", err)
			}
		}
	}
	r.checkTimings(t)
}

// TestRunDockerPartitionKinds runs the partition variants besides
// partition, and loss, in one short run against five nodes: on seed 1871
// the partition schedule starts each of the four kinds within its first
// 7s (of 12) and loss starts at 1.5s. The verdict must be valid and every
// kind must have taken effect.
func TestRunDockerPartitionKinds(t *testing.T) {
	kinds := []string{"partition-one", "partition-majorities-ring", "partition-bridge", "partition-leader"}
	r := runDocker(t, "--nemesis", strings.Join(append(slices.Clone(kinds), "loss"), ","),
		"--nemesis-interval", "1500ms", "--time-limit", "12s", "--seed", "1871")
	took := map[string]int{}
	for _, op := range r.ops {
		if op.Process.IsNemesis() && op.Type == history.Info && op.Error == "" && op.F == "start-partition" {
			kind, _ := op.Value.(map[string]any)["kind"].(string)
			took[kind]++
		}
	}
	n := r.nemesisOps()
	t.Logf("partitions by kind %v; nemesis %v; %d ok ops", took, n, r.oks())
	for _, k := range kinds {
		if took[k] == 0 {
			t.Errorf("no %s took effect", k)
		}
	}
	if n["start-loss"] == 0 || n["stop-loss"] == 0 {
		t.Errorf("nemesis ops %v: want loss started and stopped", n)
	}
	if oks := r.oks(); oks < 200 {
		t.Errorf("only %d ok ops", oks)
	}
}
