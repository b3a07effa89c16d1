package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/internal/browsertest"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/sim"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
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
		{"--workload", "append"},
		{"--workload", "bank", "--keys", "1"},
		{"--workload", "list-append", "--reads", "3"},
		{"--history", "/tmp/x.jsonl"},
		{"--seed", "1", "--history", "/proc/nope/x.jsonl"},
		{"--seed", "1", "--history", "/nonexistent-dir/x.jsonl"},
		{"--seed", "1", "--history", "/tmp"},
		{"--check-timeout", "0s"},
		{"--snapshot-every", "0"},
		{"--ops", "many"},
		{"extra"},
		{"--shard", "3/2"},
		{"--shard", "0/2"},
		{"--shard", "1/0"},
		{"--shard", "2"},
		{"--shard", "a/b"},
		{"--seed", "1", "--shard", "1/2"},
		{"--max-faults", "-1"},
		{"--fault-cap", "-1s"},
		{"--store", ""},
		{"--store", "/proc/version"},
		{"--name", "a/b"},
		{"--shrink-runs", "0"},
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

// TestSimReportsInvalidSeeds: every failing seed is a line with its
// replay command and a run in the store, listed beside chaos run's runs,
// whose report opens in a browser without console errors.
func TestSimReportsInvalidSeeds(t *testing.T) {
	var out bytes.Buffer
	store := t.TempDir()
	code := runWithOutput([]string{"chaos", "sim", "--replication", "lone-test", "--seeds", "3", "--ops", "300", "--nemesis", "kill", "--store", store}, &out)
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d; output:\n%s", code, exitInvalid, out.String())
	}
	for _, want := range []string{"seed 1: INVALID [safety-violation]", "replay: chaos sim --workload register --nemesis kill --replicas 5 --replication lone-test", "--seed 1 --history seed-1.jsonl", "seeds: 3 (valid 0, invalid 3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	runs, err := results.ListRuns(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("the store lists %d runs, want one per failing seed (3): %+v", len(runs), runs)
	}
	seeds := map[int64]bool{}
	for _, r := range runs {
		seeds[r.Test.Seed] = true
		if r.Name != "sim-register-kill" || r.Valid != "false" || r.Problem != "" || r.Test.Parameters["backend"] != "sim" {
			t.Errorf("stored run %s: name %q, valid %q, problem %q, parameters %v", r.Path, r.Name, r.Valid, r.Problem, r.Test.Parameters)
		}
		replay, _ := r.Test.Parameters["replay"].(string)
		if !strings.Contains(out.String(), "replay: "+replay+" --history") || !strings.Contains(out.String(), "report: "+filepath.Join(store, r.Path, results.ReportFile)) {
			t.Errorf("stored run %s: its replay command %q or report is not the one printed", r.Path, replay)
		}
		for _, f := range []string{results.HistoryFile, results.ResultsFile, results.ReportFile, results.TimelineFile} {
			if _, err := os.Stat(filepath.Join(store, r.Path, f)); err != nil {
				t.Errorf("stored run %s lacks %s", r.Path, f)
			}
		}
	}
	if len(seeds) != 3 {
		t.Errorf("stored seeds %v, want 1, 2 and 3", seeds)
	}
	// chaos check judges the stored history alone (here valid: the
	// simulator stopped the run at the safety violation its oracle saw),
	// with the checker the run recorded.
	if code, stdout, stderr := runCapture(t, "check", filepath.Join(store, runs[0].Path)); code != exitValid || !strings.Contains(stdout, "register") {
		t.Errorf("chaos check of a stored simulated run: exit %d\n%s%s", code, stdout, stderr)
	}

	bin := browsertest.Chromium(t)
	page := filepath.Join(store, runs[0].Path, results.ReportFile)
	dom, console := browsertest.Browse(t, bin, page, "--dump-dom")
	if len(console) > 0 {
		t.Errorf("report of a simulated run: console messages: %q", console)
	}
	for _, want := range []string{`id="verdict" class="verdict invalid">INVALID</div>`, "safety-violation", "index 1 was chosen with two values", "lone-test"} {
		if !strings.Contains(dom, want) {
			t.Errorf("report of a simulated run: the DOM lacks %q", want)
		}
	}
	if _, console := browsertest.Browse(t, bin, filepath.Join(store, runs[0].Path, results.TimelineFile), "--dump-dom"); len(console) > 0 {
		t.Errorf("timeline of a simulated run: console messages: %q", console)
	}
}

// TestSimShrink: --shrink reduces a failing seed of the lone core to a
// tenth of its operations, prints a replay command that fails the same
// way (the oracle's safety violation), and stores the shrunk run.
func TestSimShrink(t *testing.T) {
	store := t.TempDir()
	var out bytes.Buffer
	code := runWithOutput([]string{"chaos", "sim", "--replication", "lone-test", "--seed", "2", "--ops", "1000", "--nemesis", "kill,partition", "--store", store, "--shrink"}, &out)
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d; output:\n%s", code, exitInvalid, out.String())
	}
	var shrunk, replay string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "shrunk seed 2 (safety-violation)") {
			shrunk = l
		}
		if r, ok := strings.CutPrefix(l, "shrunk replay: "); ok {
			replay, _, _ = strings.Cut(r, "; report: ")
		}
	}
	if shrunk == "" || replay == "" {
		t.Fatalf("no shrink result in the output:\n%s", out.String())
	}
	var from, to int
	if _, err := fmt.Sscanf(shrunk[strings.Index(shrunk, "ops "):], "ops %d -> %d", &from, &to); err != nil || from != 1000 || to*10 >= from {
		t.Fatalf("shrunk from %d to %d ops (%v), want under a tenth of 1000: %s", from, to, err, shrunk)
	}
	runs, err := results.ListRuns(store)
	if err != nil || len(runs) != 2 {
		t.Fatalf("the store holds %d runs (%v), want the failing seed and its shrunk run", len(runs), err)
	}
	args := strings.Fields(replay)
	if args[0] != "chaos" || args[1] != "sim" || !strings.Contains(replay, fmt.Sprintf("--ops %d ", to)) {
		t.Fatalf("replay command %q", replay)
	}
	var again bytes.Buffer
	if code := runWithOutput(append(args, "--store", t.TempDir()), &again); code != exitInvalid || !strings.Contains(again.String(), "seed 2: INVALID [safety-violation") {
		t.Fatalf("the shrunk replay %q: exit %d, want %d with the same failure:\n%s", replay, code, exitInvalid, again.String())
	}
	t.Log(shrunk)
}

// TestShard: the parts of a seed range are disjoint and together are the
// range, whatever the range and the number of parts.
func TestShard(t *testing.T) {
	tests := []struct {
		seeds, n int
		part1    []int64 // the first part, when checked
	}{
		{10, 3, []int64{1, 4, 7, 10}},
		{10, 1, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{3, 5, []int64{1}},
		{1000, 7, nil},
		{1, 1, []int64{1}},
	}
	for _, tt := range tests {
		var all []int64
		for s := 1; s <= tt.seeds; s++ {
			all = append(all, int64(s))
		}
		seen := map[int64]int{}
		for i := 1; i <= tt.n; i++ {
			part := shard(all, i, tt.n)
			if i == 1 && tt.part1 != nil && !slices.Equal(part, tt.part1) {
				t.Errorf("%d seeds, part 1/%d = %v, want %v", tt.seeds, tt.n, part, tt.part1)
			}
			if d := len(part) - tt.seeds/tt.n; d < 0 || d > 1 {
				t.Errorf("%d seeds, part %d/%d has %d seeds: unbalanced", tt.seeds, i, tt.n, len(part))
			}
			for _, s := range part {
				seen[s]++
			}
		}
		for _, s := range all {
			if seen[s] != 1 {
				t.Errorf("%d seeds in %d parts: seed %d is in %d parts", tt.seeds, tt.n, s, seen[s])
			}
		}
		if len(seen) != tt.seeds {
			t.Errorf("%d seeds in %d parts: the parts hold %d distinct seeds", tt.seeds, tt.n, len(seen))
		}
	}
	for _, tt := range []struct {
		in   string
		i, n int
		ok   bool
	}{{"1/1", 1, 1, true}, {"3/8", 3, 8, true}, {"8/8", 8, 8, true}, {"9/8", 0, 0, false}, {"0/8", 0, 0, false}, {"1/0", 0, 0, false}, {"1/-2", 0, 0, false}, {"1", 0, 0, false}, {"", 0, 0, false}, {"1/2/3", 0, 0, false}} {
		i, n, err := parseShard(tt.in)
		if (err == nil) != tt.ok || i != tt.i || n != tt.n {
			t.Errorf("parseShard(%q) = %d, %d, %v", tt.in, i, n, err)
		}
	}
	// Through the CLI: the parts' seed counts add up to the range.
	total := 0
	for i := 1; i <= 3; i++ {
		var out bytes.Buffer
		if code := runWithOutput([]string{"chaos", "sim", "--seeds", "7", "--ops", "20", "--nemesis", "none", "--shard", fmt.Sprintf("%d/3", i)}, &out); code != exitValid {
			t.Fatalf("--shard %d/3: exit %d\n%s", i, code, out.String())
		}
		var n int
		if _, err := fmt.Sscanf(out.String()[strings.Index(out.String(), "seeds: "):], "seeds: %d", &n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 7 {
		t.Errorf("the 3 parts of 7 seeds ran %d seeds", total)
	}
}

// mapOrderCore sends each Ready's messages in map iteration order: a
// deliberately nondeterministic core.
type mapOrderCore struct{ replica.Replicator }

func (m mapOrderCore) Ready() replica.Ready {
	rd := m.Replicator.Ready()
	byIndex := map[int]replica.Message{}
	for i, msg := range rd.Messages {
		byIndex[i] = msg
	}
	rd.Messages = rd.Messages[:0]
	for _, msg := range byIndex {
		rd.Messages = append(rd.Messages, msg)
	}
	return rd
}

func init() {
	paxos, err := sim.Lookup("paxos")
	if err != nil {
		panic(err)
	}
	codec, _ := sim.LookupCodec("paxos")
	sim.Register("map-order-test", func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
		r, err := paxos(cfg, sm, d)
		return mapOrderCore{r}, err
	}, codec)
}

func TestSimCheckDeterminism(t *testing.T) {
	var out bytes.Buffer
	if code := runWithOutput([]string{"chaos", "sim", "--seeds", "2", "--ops", "100", "--nemesis", "partition,kill", "--check-determinism"}, &out); code != exitValid {
		t.Fatalf("paxos under --check-determinism: exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "not deterministic 0") {
		t.Errorf("output lacks the determinism count:\n%s", out.String())
	}
	out.Reset()
	code := runWithOutput([]string{"chaos", "sim", "--replication", "map-order-test", "--seeds", "2", "--ops", "100", "--nemesis", "partition", "--check-determinism", "--store", t.TempDir()}, &out)
	if code != exitInvalid {
		t.Fatalf("a core that sends in map order under --check-determinism: exit %d, want %d\n%s", code, exitInvalid, out.String())
	}
	for _, want := range []string{"seed 1 is not deterministic: two runs differ at step", "  first:  #", "  second: #", "--replication map-order-test", "--seed 1 --check-determinism", "not deterministic 2"} {
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
// the simulator's verdict, for every workload (the simulator runs them all).
func TestCheckAgreesWithSim(t *testing.T) {
	dir := t.TempDir()
	for _, w := range workloads.Names() {
		t.Run(w, func(t *testing.T) {
			path := filepath.Join(dir, w+".jsonl")
			simCode, simOut, simErr := runCapture(t, "sim", "--workload", w, "--seed", "2", "--ops", "200", "--nemesis", "partition", "--history", path, "--store", dir)
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

// TestSimAllAddsReconfigForShardedWorkloads: "all" brings reconfig along
// for a transactional workload (a sharded cluster), once, and nowhere else.
func TestSimAllAddsReconfigForShardedWorkloads(t *testing.T) {
	all := nemesis.Sim.All()
	for _, tc := range []struct {
		list, workload string
		want           bool
	}{
		{"all", "list-append", true},
		{"all", "bank", true},
		{"all,reconfig", "rw-register", true},
		{"all", "register", false},
		{"partition", "list-append", false},
	} {
		kinds, err := nemesis.ParseFor(tc.list, nemesis.Sim)
		if err != nil {
			t.Fatal(err)
		}
		got := simAll(tc.list, tc.workload, kinds)
		n := 0
		for _, k := range got {
			if k == nemesis.Reconfig {
				n++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[tc.want]; n != want {
			t.Errorf("%s with %s: %v has reconfig %d times, want %d", tc.list, tc.workload, got, n, want)
		}
		if strings.HasPrefix(tc.list, "all") && !slices.Equal(got[:len(all)], all) {
			t.Errorf("%s with %s: %v does not keep all's kinds first", tc.list, tc.workload, got)
		}
	}
}
