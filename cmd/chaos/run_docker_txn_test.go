package main

import (
	"testing"

	"github.com/chaoskv/chaos/history"
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
