package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/results"
)

// TestRunDockerListAppend runs the list-append workload end to end under
// partitions against a real kvnode cluster: the history must check
// strict-serializable, hold transactions that read what others appended,
// and the run must leave nothing running.
func TestRunDockerListAppend(t *testing.T) {
	r := runDocker(t, "--workload", "list-append", "--nemesis", "partition", "--nemesis-interval", "4s",
		"--time-limit", "20s", "--seed", "1")
	if r.nemesisOps()["start-partition"] == 0 {
		t.Fatal("no partition took effect during the run")
	}
	txns, nonEmptyReads := 0, 0
	for _, op := range r.ops {
		if op.Process.IsNemesis() || op.Type != history.Ok || op.F != "txn" {
			continue
		}
		txns++
		for _, m := range op.Value.([]any) {
			p := m.([]any)
			if l, ok := p[2].([]any); ok && p[0] == "r" && len(l) > 0 {
				nonEmptyReads++
			}
		}
	}
	if txns < 400 || nonEmptyReads < 100 {
		t.Fatalf("%d ok transactions, %d reads of non-empty lists: the workload barely ran", txns, nonEmptyReads)
	}
	t.Logf("%d ok transactions, %d non-empty list reads", txns, nonEmptyReads)
}

// TestRunDockerShardedReconfig runs list-append on a sharded cluster
// (three shard groups and the controller over five nodes) while the
// reconfig nemesis joins, removes and moves shard groups and partitions
// cut the network: transactions spanning shards must stay
// strict-serializable through migrations.
func TestRunDockerShardedReconfig(t *testing.T) {
	r := runDocker(t, "--workload", "list-append", "--groups", "3", "--nemesis", "reconfig,partition",
		"--nemesis-interval", "3s", "--time-limit", "15s", "--seed", "4")
	if n := r.nemesisOps()["reconfig"]; n < 2 {
		t.Fatalf("%d reconfigurations took effect, want at least 2", n)
	}
	oks := r.oks()
	if oks < 100 { // the workload ran; throughput is chaos bench's to judge, not a load-sensitive test's
		t.Fatalf("only %d ok transactions", oks)
	}
	if r.test.Parameters["groups"] != int64(3) {
		t.Fatalf("test.json groups = %v", r.test.Parameters["groups"])
	}
	// Each transaction's completion names the shard group it was routed
	// to, and results.json holds the availability per group.
	groups := map[string]int{}
	for _, op := range r.ops {
		if op.IsClient() && op.Type == history.Ok {
			groups[op.Node]++
		}
	}
	if len(groups) < 2 || groups[""] > 0 {
		t.Errorf("ok completions by node field: %v; want every one to name its group, and two groups at least", groups)
	}
	sum, err := results.ReadSummary(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	av, _ := sum.Stats["availability"].(map[string]any)
	if gs, _ := av["groups"].([]any); len(gs) < 2 {
		t.Errorf("results.json availability groups = %v", av["groups"])
	}
	page, err := os.ReadFile(filepath.Join(r.dir, results.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `class="nemesis-window" data-fault="reconfig"`) {
		t.Error("the report's nemesis timeline has no reconfig bar")
	}
	t.Logf("nemesis %v, %d ok ops, by group %v", r.nemesisOps(), oks, groups)
}

// TestRunDockerBank runs the bank workload on a sharded cluster under
// partitions: transfers cross shards, a transfer that would overdraw
// fails, and every read must see the whole total and no negative balance.
func TestRunDockerBank(t *testing.T) {
	r := runDocker(t, "--workload", "bank", "--groups", "2", "--nemesis", "partition", "--nemesis-interval", "4s",
		"--time-limit", "15s", "--seed", "2")
	counts := map[string]int{}
	for _, op := range r.ops {
		if op.Process.IsNemesis() {
			continue
		}
		switch {
		case op.Type == history.Ok:
			counts[op.F]++
		case op.Type == history.Fail && strings.Contains(op.Error, "insufficient funds"):
			counts["overdraft refused"]++
		}
	}
	if counts["transfer"] < 50 || counts["read"] < 20 {
		t.Fatalf("ok ops %v: the workload barely ran", counts)
	}
	t.Logf("%v", counts)
}
