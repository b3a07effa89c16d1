package results

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/checker/elle/gen"
	"github.com/chaoskv/chaos/checker/linear"
	"github.com/chaoskv/chaos/history"
)

// evilKey is a register key that would run as a script if a page did not
// escape it.
const evilKey = "<script>alert(1)</script>"

// registerHistory simulates a linearizable register store under faults:
// calls ops over span, each taking effect at one moment between its
// invocation and completion. A partition (2/10 to 4/10 of the span) and a
// kill (6/10 to 7.5/10) make calls inside them fail or time out. With bad,
// one read of evilKey returns a value nobody wrote.
func registerHistory(calls, procs int, span time.Duration, seed uint64, bad bool) []history.Op {
	rng := rand.New(rand.NewPCG(seed, 1))
	type sim struct {
		start, apply, end int64
		proc              int64
		f                 string
		key               string
		val               int64
		typ               history.Type
		read              any
	}
	keys := []string{"k0", "k1", "k2", evilKey}
	s := int64(span)
	part0, part1 := s*2/10, s*4/10
	kill0, kill1 := s*6/10, s*75/100
	inFault := func(t int64) bool { return t >= part0 && t <= part1 || t >= kill0 && t <= kill1 }
	perProc := calls / procs
	gap := s / int64(perProc+1)
	var all []sim
	next := int64(1)
	for p := range procs {
		proc := int64(p)
		t := int64(rng.IntN(int(gap/2 + 1)))
		for range perProc {
			lat := int64(1e6 + rng.IntN(20e6))
			c := sim{start: t, proc: proc, key: keys[rng.IntN(len(keys))], typ: history.Ok}
			if rng.IntN(2) == 0 {
				c.f = "read"
			} else {
				c.f, c.val = "write", next
				next++
			}
			if inFault(t) {
				switch rng.IntN(3) {
				case 0:
					c.typ = history.Fail
				case 1:
					c.typ, lat = history.Info, int64(500e6)
				}
			}
			c.apply = t + rng.Int64N(lat)
			c.end = t + lat
			all = append(all, c)
			if c.typ == history.Info {
				// A crashed process never invokes again; its worker
				// continues as a new one.
				proc += int64(procs)
			}
			t = c.end + gap/2 + int64(rng.IntN(int(gap/2+1)))
		}
	}
	order := make([]int, len(all))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(all[a].apply - all[b].apply) })
	state := map[string]int64{}
	for _, i := range order {
		c := &all[i]
		switch {
		case c.typ == history.Fail:
		case c.f == "write":
			state[c.key] = c.val // info writes take effect too, which is allowed
		case c.typ == history.Ok:
			if v, ok := state[c.key]; ok {
				c.read = v
			}
		}
	}
	if bad {
		for i := range all {
			if c := &all[i]; c.f == "read" && c.typ == history.Ok && c.key == evilKey && c.apply > s/2 {
				c.read = int64(999999)
				break
			}
		}
	}
	type ev struct {
		t   int64
		seq int
		op  history.Op
	}
	var evs []ev
	for i, c := range all {
		inv := history.Op{Type: history.Invoke, Process: history.Process(c.proc), F: c.f, Value: []any{c.key, nil}}
		comp := history.Op{Type: c.typ, Process: history.Process(c.proc), F: c.f, Value: []any{c.key, c.read}}
		if c.f == "write" {
			inv.Value = []any{c.key, c.val}
			comp.Value = inv.Value
		}
		if c.typ == history.Info {
			comp.Error = "timeout <b>after</b> 500ms"
		}
		comp.Node = "n" + string(rune('1'+i%3))
		evs = append(evs, ev{c.start, 2 * i, inv}, ev{c.end, 2*i + 1, comp})
	}
	nem := func(t int64, f string, v any) {
		evs = append(evs, ev{t, -1, history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: f, Value: v}},
			ev{t + 1e6, -1, history.Op{Type: history.Info, Process: history.NemesisProcess, F: f, Value: v}})
	}
	nem(part0, "start-partition", []any{"n1", "n2"})
	nem(part1, "stop-partition", nil)
	nem(kill0, "kill", []any{"n3"})
	nem(kill1, "start", []any{"n3"})
	slices.SortStableFunc(evs, func(a, b ev) int {
		if a.t != b.t {
			return int(a.t - b.t)
		}
		return a.seq - b.seq
	})
	ops := make([]history.Op, len(evs))
	for i, e := range evs {
		ops[i] = e.op
		ops[i].Index, ops[i].Time = int64(i), e.t
	}
	return ops
}

// storeRun writes a run directory the way the harness does and renders
// its report: test.json, history.jsonl, the checker's results and
// artifacts, a node log, report.html and timeline.html.
func storeRun(t testing.TB, root, name, workload string, start time.Time, ops []history.Op, check func(dir string) checker.Result) *Run {
	t.Helper()
	r, err := Create(root, name, start)
	if err != nil {
		t.Fatal(err)
	}
	end := start.Add(time.Duration(ops[len(ops)-1].Time))
	test := Test{Name: name, Start: start, End: &end, Status: StatusDone, Seed: 42, Parameters: map[string]any{
		"workload": workload, "nemesis": []string{"partition", "kill"}, "nodes": 3, "replication": "paxos", "concurrency": 5,
	}}
	if err := r.WriteJSON(TestFile, test); err != nil {
		t.Fatal(err)
	}
	f, err := r.CreateHistory()
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	hw := history.NewWriter(bw)
	for i := range ops {
		if err := hw.Write(&ops[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := hw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res := check(r.Dir)
	sum := Summary{Valid: res.Valid, Results: map[string]checker.Result{res.Checker: res}}
	if err := r.WriteJSON(ResultsFile, sum); err != nil {
		t.Fatal(err)
	}
	nd, err := r.NodeDir("n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nd, "log"), []byte("started\n"+evilKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteReport(test, sum, dirEntries(r.Dir)); err != nil {
		t.Fatal(err)
	}
	if err := r.MarkLatest(); err != nil {
		t.Fatal(err)
	}
	return r
}

func checkRegister(t testing.TB, ops []history.Op) func(string) checker.Result {
	return func(dir string) checker.Result {
		res, err := linear.Check("register", ops, linear.Options{Timeout: 30 * time.Second, Directory: dir})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
}

func checkListAppend(t testing.TB, ops []history.Op) func(string) checker.Result {
	return func(dir string) checker.Result {
		res, err := elle.Check("list-append", ops, elle.Options{Directory: dir})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
}

// fixtures builds a store with a valid register run, a register run with
// a linearizability failure, and list-append runs with a G1c and a
// G-single anomaly, started a second apart in that order.
func fixtures(t testing.TB, root string) map[string]*Run {
	t.Helper()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	runs := map[string]*Run{}
	good := registerHistory(400, 5, 10*time.Second, 1, false)
	runs["valid"] = storeRun(t, root, "register-partition", "register", t0, good, checkRegister(t, good))
	bad := registerHistory(400, 5, 10*time.Second, 1, true)
	runs["linear"] = storeRun(t, root, "register-partition", "register", t0.Add(time.Second), bad, checkRegister(t, bad))
	for i, kind := range []string{"G1c", "G-single"} {
		ops, err := gen.ListAppend(gen.Config{Txns: 150, Processes: 4, Keys: 4, Seed: 7, Inject: kind})
		if err != nil {
			t.Fatal(err)
		}
		for i := range ops {
			ops[i].Time *= 1e5 // the generator's clock ticks are too short to plot
		}
		runs[kind] = storeRun(t, root, "list-append-partition", "list-append", t0.Add(time.Duration(2+i)*time.Second), ops, checkListAppend(t, ops))
	}
	return runs
}

// reconfigSeed is a seed above 2^52, which a float64 would print as
// 3.764154334088693e+15.
const reconfigSeed = 3764154334088693

// reconfigHistory is a list-append run on a sharded cluster over 10s:
// shard reconfigurations (join, move, leave, and one the controller
// refused), a partition from 3s to 5s, and a clock-bump, a kind no report
// code names, in its own lane. Completions name the group that served
// them.
func reconfigHistory(t testing.TB) []history.Op {
	t.Helper()
	ops, err := gen.ListAppend(gen.Config{Txns: 600, Processes: 5, Keys: 6, Seed: 11, FailRate: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	span := ops[len(ops)-1].Time
	type ev struct {
		t   int64
		seq int
		op  history.Op
	}
	var evs []ev
	for i, op := range ops {
		op.Time = op.Time * 10e9 / span
		if op.Type != history.Invoke {
			op.Node = fmt.Sprintf("group %d", 1+int(op.Process)%2)
		}
		evs = append(evs, ev{op.Time, i, op})
	}
	nem := func(at, took float64, f string, v any, errText string) {
		t0 := int64(at * 1e9)
		evs = append(evs, ev{t0, -1, history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: f, Value: v}},
			ev{t0 + int64(took*1e9), -1, history.Op{Type: history.Info, Process: history.NemesisProcess, F: f, Value: v, Error: errText}})
	}
	nem(1, 0.2, "reconfig", map[string]any{"op": "join", "group": int64(3), "config": int64(2)}, "")
	nem(3, 0.001, "start-partition", []any{[]any{"n1"}, []any{"n2", "n3"}}, "")
	nem(4, 0.4, "reconfig", map[string]any{"op": "move", "shard": int64(5), "group": int64(2)}, "shard controller move 5 to 2: no quorum")
	nem(5, 0.001, "stop-partition", nil, "")
	nem(6, 0.3, "reconfig", map[string]any{"op": "move", "shard": int64(7), "group": int64(3), "config": int64(3)}, "")
	nem(7.5, 0.05, "clock-bump", map[string]any{"node": "n2", "delta-ms": int64(250)}, "")
	nem(8, 0.5, "reconfig", map[string]any{"op": "leave", "group": int64(1), "config": int64(4)}, "")
	slices.SortStableFunc(evs, func(a, b ev) int {
		if a.t != b.t {
			return int(a.t - b.t)
		}
		return a.seq - b.seq
	})
	out := make([]history.Op, len(evs))
	for i, e := range evs {
		out[i] = e.op
		out[i].Index, out[i].Time = int64(i), e.t
	}
	return out
}

// reconfigRun stores the reconfig run with its report, as a run with
// seed reconfigSeed whose test.json went through a JSON round trip.
func reconfigRun(t testing.TB, root string) *Run {
	t.Helper()
	ops := reconfigHistory(t)
	r := storeRun(t, root, "list-append-reconfig", "list-append", time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC), ops, checkListAppend(t, ops))
	test, err := ReadTest(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	test.Seed = reconfigSeed
	test.Parameters["nemesis"] = []string{"reconfig", "partition"}
	test.Parameters["groups"] = 3
	test.Parameters["first-seed"] = int64(reconfigSeed)
	test.Parameters["rate"] = 100.0
	if err := r.WriteJSON(TestFile, test); err != nil {
		t.Fatal(err)
	}
	if err := Rebuild(r.Dir); err != nil {
		t.Fatal(err)
	}
	return r
}
