package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/sim"
)

func TestSimBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"--nemesis", "foo"},
		{"--nemesis", ""},
		{"--seeds", "0"},
		{"--ops", "0"},
		{"--replicas", "0"},
		{"--replicas", "65"},
		{"--replication", "nope"},
		{"--workload", "no-such-workload"},
		{"--history", "/tmp/x.jsonl"},
		{"--seed", "1", "--history", "/proc/nope/x.jsonl"},
		{"--seed", "1", "--history", "/nonexistent-dir/x.jsonl"},
		{"--seed", "1", "--history", "/tmp"},
		{"--check-timeout", "0s"},
		{"--snapshot-every", "0"},
		{"--ops", "many"},
		{"extra"},
	} {
		if code := run(append([]string{"chaos", "sim"}, args...)); code != exitBadArgs {
			t.Errorf("chaos sim %q: exit %d, want %d", args, code, exitBadArgs)
		}
	}
}

func TestSimRunsAndReplays(t *testing.T) {
	if code := run([]string{"chaos", "sim", "--seeds", "4", "--ops", "200", "--nemesis", "all"}); code != exitValid {
		t.Fatalf("chaos sim on 4 seeds: exit %d, want %d", code, exitValid)
	}
	dir := t.TempDir()
	var hist [2][]byte
	for i := range hist {
		path := filepath.Join(dir, fmt.Sprintf("h%d.jsonl", i))
		if code := run([]string{"chaos", "sim", "--nemesis", "partition,kill", "--ops", "200", "--seed", "3", "--history", path}); code != exitValid {
			t.Fatalf("chaos sim --seed 3: exit %d", code)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		hist[i] = b
	}
	if !bytes.Equal(hist[0], hist[1]) {
		t.Fatal("replaying seed 3 wrote a different history")
	}
	ops, err := history.ReadAll(bytes.NewReader(hist[0]))
	if err != nil {
		t.Fatalf("the written history does not parse: %v", err)
	}
	if len(ops) < 400 {
		t.Fatalf("history has %d ops, want at least 400", len(ops))
	}
}

// loneCore answers every request from its own replica without talking to
// anyone: each node is its own little database, so clients on different
// nodes see different worlds. chaos sim must call that out.
type loneCore struct {
	sm  replica.StateMachine
	id  replica.NodeID
	idx uint64
	out replica.Ready
}

func (l *loneCore) Tick()                {}
func (l *loneCore) Step(replica.Message) {}
func (l *loneCore) Propose(reqs ...replica.Request) error {
	for _, r := range reqs {
		l.idx++
		l.out.Results = append(l.out.Results, replica.Result{ClientID: r.ClientID, Seq: r.Seq, Index: l.idx, Value: l.sm.Apply(l.idx, r)})
	}
	return nil
}
func (l *loneCore) Ready() replica.Ready { rd := l.out; l.out = replica.Ready{}; return rd }
func (l *loneCore) HasReady() bool       { return !l.out.Empty() }
func (l *loneCore) Status() replica.Status {
	return replica.Status{ID: l.id, Role: "leader", Leader: l.id, Commit: l.idx, Applied: l.idx}
}

func init() {
	sim.Register("lone-test", func(cfg replica.Config, sm replica.StateMachine, _ *replica.Durable) (replica.Replicator, error) {
		return &loneCore{sm: sm, id: cfg.ID}, nil
	}, nil)
}

func TestSimReportsInvalidSeeds(t *testing.T) {
	var out bytes.Buffer
	code := runWithOutput([]string{"chaos", "sim", "--replication", "lone-test", "--seeds", "3", "--ops", "300", "--nemesis", "kill"}, &out)
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d; output:\n%s", code, exitInvalid, out.String())
	}
	for _, want := range []string{"seed 1: INVALID", "replay: chaos sim --workload register --nemesis kill --replicas 5 --replication lone-test", "--seed 1 --history seed-1.jsonl", "seeds: 3 (valid 0, invalid 3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// runWithOutput runs the CLI with its standard output captured in out.
func runWithOutput(args []string, out *bytes.Buffer) int {
	f, err := os.CreateTemp("", "chaos-out")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	saved := os.Stdout
	os.Stdout = f
	code := run(args)
	os.Stdout = saved
	_ = f.Close()
	b, _ := os.ReadFile(f.Name())
	out.Write(b)
	return code
}

// TestCheckAgreesWithSim: chaos check of a history chaos sim wrote gives
// the simulator's verdict, for every simulated workload.
func TestCheckAgreesWithSim(t *testing.T) {
	dir := t.TempDir()
	for _, w := range []string{"register", "append", "list-append", "rw-register", "bank"} {
		t.Run(w, func(t *testing.T) {
			path := filepath.Join(dir, w+".jsonl")
			simCode, simOut, simErr := runCapture(t, "sim", "--workload", w, "--seed", "2", "--ops", "200", "--nemesis", "partition", "--history", path)
			if simCode == exitBadArgs || simCode == exitInternal {
				t.Fatalf("sim: exit %d\n%s\n%s", simCode, simOut, simErr)
			}
			code, stdout, stderr := runCapture(t, "check", path)
			if code != simCode {
				t.Fatalf("check: exit %d, sim exited %d\ncheck: %s%s\nsim: %s", code, simCode, stdout, stderr, simOut)
			}
		})
	}
}
