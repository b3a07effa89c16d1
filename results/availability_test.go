package results

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
)

// hist builds a history from compact rows: client ops as invoke and
// completion pairs, nemesis ops as given.
type hop struct {
	t    float64 // seconds
	typ  history.Type
	proc int64 // -1 for the nemesis
	f    string
	err  string
	node string
	val  any
}

func hist(rows ...hop) []history.Op {
	ops := make([]history.Op, len(rows))
	for i, r := range rows {
		p := history.Process(r.proc)
		if r.proc < 0 {
			p = history.NemesisProcess
		}
		ops[i] = history.Op{Index: int64(i), Time: int64(math.Round(r.t * 1e9)), Type: r.typ, Process: p, F: r.f, Error: r.err, Node: r.node, Value: r.val}
	}
	return ops
}

const (
	inv  = history.Invoke
	okT  = history.Ok
	fail = history.Fail
	info = history.Info
)

func TestLongestNoOK(t *testing.T) {
	for _, tc := range []struct {
		name     string
		oks      []int64
		from, to int64
		want     Stall
	}{
		{"no oks: the whole range", nil, 10, 50, Stall{10, 50, 0}},
		{"before the first ok", []int64{40, 45}, 10, 50, Stall{10, 40, 0}},
		{"between oks", []int64{12, 20, 45, 47}, 10, 50, Stall{20, 45, 0}},
		{"after the last ok", []int64{11, 12}, 10, 50, Stall{12, 50, 0}},
		{"oks outside the range are ignored", []int64{1, 30, 99}, 10, 50, Stall{10, 30, 0}},
		{"first of equal stretches", []int64{20, 30, 40}, 10, 50, Stall{10, 20, 0}},
		{"empty range", []int64{5}, 10, 10, Stall{10, 10, 0}},
		{"reversed range", nil, 10, 5, Stall{10, 10, 0}},
	} {
		got := longestNoOK(tc.oks, tc.from, tc.to)
		tc.want.Seconds = float64(tc.want.ToNS-tc.want.FromNS) / 1e9
		if got.FromNS != tc.want.FromNS || got.ToNS != tc.want.ToNS {
			t.Errorf("%s: longestNoOK = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if s := longestNoOK([]int64{3_200_000_000}, 0, 4_000_000_000); s.Seconds != 3.2 {
		t.Errorf("seconds = %v, want 3.2", s.Seconds)
	}
}

func TestExpectedFail(t *testing.T) {
	for _, tc := range []struct {
		typ  history.Type
		err  string
		want bool
	}{
		{fail, "cas mismatch", true},
		{fail, "txn: check failed", true},
		{fail, "group 2: txn: check failed", true},
		{fail, "no leader", false},
		{fail, "timeout after 1s", false},
		{fail, "", false},
		{info, "cas mismatch", false},
		{okT, "", false},
	} {
		op := history.Op{Type: tc.typ, Error: tc.err}
		if got := ExpectedFail(&op); got != tc.want {
			t.Errorf("ExpectedFail(%v %q) = %v, want %v", tc.typ, tc.err, got, tc.want)
		}
	}
}

func TestAvailabilitySeries(t *testing.T) {
	ops := hist(
		// second 1: two oks and a cas mismatch: all answered.
		hop{t: 1.0, typ: inv, proc: 0, f: "write"}, hop{t: 1.1, typ: okT, proc: 0, f: "write", node: "n1"},
		hop{t: 1.2, typ: inv, proc: 1, f: "cas"}, hop{t: 1.3, typ: fail, proc: 1, f: "cas", err: "cas mismatch", node: "n2"},
		hop{t: 1.4, typ: inv, proc: 0, f: "read"}, hop{t: 1.5, typ: okT, proc: 0, f: "read", node: "n1"},
		// a partition from 2.0 to 5.0
		hop{t: 2.0, typ: inv, proc: -1, f: "start-partition", val: []any{"n1"}}, hop{t: 2.0, typ: info, proc: -1, f: "start-partition", val: []any{"n1"}},
		// second 2: a refused write and a timeout (info)
		hop{t: 2.1, typ: inv, proc: 0, f: "write"}, hop{t: 2.2, typ: fail, proc: 0, f: "write", err: "no leader", node: "n1"},
		hop{t: 2.3, typ: inv, proc: 1, f: "write"}, hop{t: 3.3, typ: info, proc: 1, f: "write", err: "timeout"},
		// second 3: nothing invoked; second 4: one ok at 4.6
		hop{t: 4.5, typ: inv, proc: 2, f: "read"}, hop{t: 4.6, typ: okT, proc: 2, f: "read", node: "n2"},
		hop{t: 5.0, typ: inv, proc: -1, f: "stop-partition"}, hop{t: 5.0, typ: info, proc: -1, f: "stop-partition"},
		// second 5: one never completed
		hop{t: 5.5, typ: inv, proc: 0, f: "write"},
		// the workload ends at 6.0; a final read fails then succeeds
		hop{t: 8.0, typ: inv, proc: 3, f: "read"}, hop{t: 8.1, typ: fail, proc: 3, f: "read", err: "no leader"},
		hop{t: 8.3, typ: inv, proc: 3, f: "read"}, hop{t: 8.4, typ: okT, proc: 3, f: "read"},
	)
	av := AnalyzeAvailability(ops, 6e9)
	c := func(inv, ok, exp, fail, info int) OpCounts { return OpCounts{inv, ok, exp, fail, info} }
	if want := c(7, 3, 1, 1, 2); av.OpCounts != want {
		t.Errorf("counts = %+v, want %+v", av.OpCounts, want)
	}
	if want := c(2, 1, 0, 1, 0); av.FinalReads != want {
		t.Errorf("final reads = %+v, want %+v", av.FinalReads, want)
	}
	if av.Answered != 4.0/7 {
		t.Errorf("answered = %v, want 4/7", av.Answered)
	}
	wantSec := []SecondAvailability{
		{1, c(3, 2, 1, 0, 0)}, {2, c(2, 0, 0, 1, 1)}, {3, c(0, 0, 0, 0, 0)}, {4, c(1, 1, 0, 0, 0)}, {5, c(1, 0, 0, 0, 1)}, {6, c(0, 0, 0, 0, 0)},
	}
	if !reflect.DeepEqual(av.PerSecond, wantSec) {
		t.Errorf("per second =\n%+v\nwant\n%+v", av.PerSecond, wantSec)
	}
	if av.LongestNoOK.FromNS != 1.5e9 || av.LongestNoOK.ToNS != 4.6e9 || av.LongestNoOK.Seconds != 3.1 {
		t.Errorf("longest no ok = %+v, want 1.5s to 4.6s", av.LongestNoOK)
	}
	if len(av.Windows) != 1 {
		t.Fatalf("windows = %+v, want the partition", av.Windows)
	}
	w := av.Windows[0]
	if w.Fault != "partition" || w.OpCounts != c(3, 1, 0, 1, 1) || w.LongestNoOK.FromNS != 2e9 || w.LongestNoOK.ToNS != 4.6e9 {
		t.Errorf("partition window = %+v", w)
	}
	if av.DuringFaults != c(3, 1, 0, 1, 1) || av.OutsideFaults != c(4, 2, 1, 0, 1) {
		t.Errorf("during %+v, outside %+v", av.DuringFaults, av.OutsideFaults)
	}
	if len(av.Groups) != 2 || av.Groups[0].Group != "n1" || av.Groups[1].Group != "n2" {
		t.Fatalf("groups = %+v, want n1 and n2", av.Groups)
	}
	// n1's last ok is at 1.5s; nothing it served succeeded after.
	if g := av.Groups[0]; g.OpCounts != c(3, 2, 0, 1, 0) || g.LongestNoOK.FromNS != 1.5e9 || g.LongestNoOK.ToNS != 6e9 {
		t.Errorf("n1 = %+v", g)
	}
	if g := av.Groups[1]; g.OpCounts != c(2, 1, 1, 0, 0) || g.LongestNoOK.FromNS != 1e9 || g.LongestNoOK.ToNS != 4.6e9 {
		t.Errorf("n2 = %+v", g)
	}

	// Without a workload end, every op is the workload's.
	all := AnalyzeAvailability(ops, 0)
	if all.Invoked != 9 || all.FinalReads.Invoked != 0 {
		t.Errorf("no workload end: %d invoked, %d final reads; want 9, 0", all.Invoked, all.FinalReads.Invoked)
	}

	// The report's operations table counts the final reads apart, and
	// each row adds up.
	page, _, err := Render(ReportInput{Test: Test{Name: "x"}, Summary: Summary{Stats: Values{WorkloadEndStat: int64(6e9)}}, Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		`<tr><td>workload</td><td class="n">7</td><td class="n">3</td><td class="n">1</td><td class="n">1</td><td class="n">2</td></tr>`,
		`<tr><td>final reads</td><td class="n">2</td><td class="n">1</td><td class="n">0</td><td class="n">1</td><td class="n">0</td></tr>`,
		`<tr><td>cas</td><td class="n">1</td><td class="n">0</td><td class="n">1</td><td class="n">0</td><td class="n">0</td></tr>`,
	} {
		if !strings.Contains(string(page), row) {
			t.Errorf("the report lacks the row %s", row)
		}
	}

	// results.json holds it as plain JSON.
	b, err := json.Marshal(av)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"per-second":[{"second":1,"invoked":3,"ok":2,"expected-fail":1`, `"longest-no-ok":{"from-ns":1500000000,"to-ns":4600000000,"seconds":3.1}`, `"final-reads":{"invoked":2`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s:\n%s", k, b)
		}
	}
}

func TestAvailabilityEmpty(t *testing.T) {
	av := AnalyzeAvailability(nil, 0)
	if av.Invoked != 0 || av.Answered != -1 || len(av.PerSecond) != 0 {
		t.Errorf("empty history: %+v", av)
	}
	view := availabilityView(av)
	if len(view.Rows) != 2 || view.Rows[0].Percent != "no ops" {
		t.Errorf("empty view rows = %+v", view.Rows)
	}
}

func TestRateWarning(t *testing.T) {
	for _, tc := range []struct {
		target  float64
		invoked int64
		secs    float64
		warn    bool
	}{
		{0, 10, 10, false},     // unpaced
		{100, 1000, 10, false}, // kept up
		{100, 905, 10, false},  // within tolerance
		{100, 500, 10, true},   // half
		{1e6, 12345, 1, true},  // far below
		{100, 0, 0, false},     // no workload phase
	} {
		got := RateWarning(tc.target, tc.invoked, tc.secs)
		if (got != "") != tc.warn {
			t.Errorf("RateWarning(%v, %d, %v) = %q, want warning %v", tc.target, tc.invoked, tc.secs, got, tc.warn)
		}
		if got != "" && !strings.Contains(got, "below --rate") {
			t.Errorf("warning %q does not name --rate", got)
		}
	}
}

// BenchmarkAvailability1M is the cost the harness adds to a run's
// results.json: one pass over a million-op history.
func BenchmarkAvailability1M(b *testing.B) {
	ops := registerHistory(500000, 10, 20*time.Minute, 11, false)
	b.ResetTimer()
	for b.Loop() {
		av := AnalyzeAvailability(ops, 0)
		if av.Invoked != 500000 {
			b.Fatalf("%d invoked", av.Invoked)
		}
	}
	b.ReportMetric(float64(len(ops)), "history-ops")
}
