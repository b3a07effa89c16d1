package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/results"
)

// TestRunDockerMembership changes the one group's membership, for each
// replication protocol, during a short register run on three nodes and one spare: the verdict is
// valid, at least one change took effect, each change starts from the
// configuration the previous one made, clients keep being served after
// the changes, and every node ends in the last configuration.
func TestRunDockerMembership(t *testing.T) {
	for _, repl := range []string{"paxos", "vr"} {
		t.Run(repl, func(t *testing.T) { testRunDockerMembership(t, repl) })
	}
}

func testRunDockerMembership(t *testing.T, repl string) {
	r := runDocker(t, "--replication", repl, "--nemesis", "membership", "--nodes", "3", "--replicas", "3", "--spares", "1",
		"--nemesis-interval", "1s", "--time-limit", "8s", "--seed", "3")
	// An action that ended in an error (the run ended, or it outlasted
	// its timeout) may still have taken effect: after one, the next change
	// may start from its target instead.
	var last []any
	var pending [][]any
	var changes []string
	var lastAt int64
	for _, op := range r.ops {
		if !op.Process.IsNemesis() || op.Type != history.Info || op.F != "membership" {
			continue
		}
		t.Logf("%.3fs %v %s", float64(op.Time)/1e9, op.Value, op.Error)
		v := op.Value.(map[string]any)
		from, _ := v["from"].([]any)
		to, _ := v["to"].([]any)
		if from == nil {
			continue // no change was possible; nothing was asked
		}
		if op.Error != "" {
			pending = append(pending, to)
			continue
		}
		if last != nil && fmt.Sprint(from) != fmt.Sprint(last) && !slices.ContainsFunc(pending, func(p []any) bool { return fmt.Sprint(p) == fmt.Sprint(from) }) {
			t.Fatalf("change %q starts from %v, but the previous one made %v", v["op"], from, last)
		}
		last, lastAt, pending = to, op.Time, nil
		changes = append(changes, v["op"].(string))
	}
	t.Logf("membership changes: %q; nemesis %v; %d ok ops", changes, r.nemesisOps(), r.oks())
	if len(changes) == 0 {
		t.Fatal("no membership change took effect")
	}
	after := 0
	for _, op := range r.ops {
		if !op.Process.IsNemesis() && op.Type == history.Ok && op.Time > lastAt {
			after++
		}
	}
	if after == 0 {
		t.Fatal("no client op succeeded after the last membership change")
	}
	// The run ends in the last change's configuration, or in that of an
	// action after it that may have taken effect; every member agrees.
	finals := append([][]any{last}, pending...)
	var final []string
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		got := readMembers(t, r, n)
		if final == nil && slices.ContainsFunc(finals, func(p []any) bool { return fmt.Sprint(p) == fmt.Sprint(got) }) && slices.Contains(got, n) {
			final = got
		}
	}
	if final == nil {
		t.Fatalf("no member ends in any of the configurations %v", finals)
	}
	for _, n := range final {
		if got := readMembers(t, r, n); !slices.Equal(got, final) {
			t.Errorf("%s ends in configuration %v, but the group's is %v", n, got, final)
		}
	}
}

// readMembers returns the configuration node n's final status reports
// for the run's one group, as node names, sorted.
func readMembers(t *testing.T, r dockerRun, n string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, results.NodesDir, n, kvnodedb.StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Groups []struct {
			Members []int `json:"members"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(b, &st); err != nil || len(st.Groups) != 1 {
		t.Fatalf("%s status: %v %s", n, err, b)
	}
	var got []string
	for _, id := range st.Groups[0].Members {
		got = append(got, fmt.Sprintf("n%d", id))
	}
	slices.Sort(got)
	return got
}
