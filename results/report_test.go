package results

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/history"
)

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustContain(t *testing.T, what, page string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

// noActiveContent fails when a page could run a script or reach the
// network: the reports are read offline and hold strings from histories.
func noActiveContent(t *testing.T, what, page string) {
	t.Helper()
	for _, bad := range []string{"<script", "http://", "https://", "javascript:", " onload=", " onerror="} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("%s contains %q", what, bad)
		}
	}
}

func TestReportOfRuns(t *testing.T) {
	root := t.TempDir()
	runs := fixtures(t, root)

	valid := readFile(t, runs["valid"].Path(ReportFile))
	mustContain(t, "valid report", valid, `class="verdict valid">VALID<`, "valid: true", "register", "partition, kill", "paxos",
		"latency of read", "latency of write", "latency quantiles", "throughput", "nemesis timeline", "during any fault",
		"outside every fault", `href="timeline.html"`, `href="nodes/n1/log"`, "ok ops/s")
	if n := strings.Count(valid, `<svg class="plot"`); n < 6 {
		t.Errorf("valid report has %d plots, want at least 6 (2 latency, quantiles, throughput, nemesis, availability)", n)
	}
	noActiveContent(t, "valid report", valid)

	lin := readFile(t, runs["linear"].Path(ReportFile))
	mustContain(t, "linearizability report", lin, `class="verdict invalid">INVALID<`, "Linearizability failures",
		`href="linearizability-1.html"`, "&lt;script&gt;alert(1)&lt;/script&gt;")
	if _, err := os.Stat(runs["linear"].Path("linearizability-1.html")); err != nil {
		t.Errorf("the linked visualization is missing: %v", err)
	}
	noActiveContent(t, "linearizability report", lin)

	for _, kind := range []string{"G1c", "G-single"} {
		page := readFile(t, runs[kind].Path(ReportFile))
		mustContain(t, kind+" report", page, `class="verdict invalid">INVALID<`, "Transactional anomalies", ">"+kind, `<svg class="cycle"`, "T1 → T2")
		// Each cycle diagram labels its edges with their kinds.
		svgs := regexp.MustCompile(`(?s)<svg class="cycle".*?</svg>`).FindAllString(page, -1)
		if len(svgs) == 0 {
			t.Fatalf("%s: no cycle diagram", kind)
		}
		if !regexp.MustCompile(`>(ww|wr|rw)[ <]`).MatchString(svgs[0]) {
			t.Errorf("%s: the cycle diagram labels no ww/wr/rw edge", kind)
		}
		noActiveContent(t, kind+" report", page)
	}

	for name, r := range runs {
		tl := readFile(t, r.Path(TimelineFile))
		mustContain(t, name+" timeline", tl, "worker 0", "worker 4", `href="report.html"`)
		noActiveContent(t, name+" timeline", tl)
	}
	mustContain(t, "timeline", readFile(t, runs["valid"].Path(TimelineFile)), "timeout &lt;b&gt;after&lt;/b&gt; 500ms", "partition")
}

func TestRebuildIsDeterministic(t *testing.T) {
	root := t.TempDir()
	runs := fixtures(t, root)
	for name, r := range runs {
		before := readFile(t, r.Path(ReportFile))
		tlBefore := readFile(t, r.Path(TimelineFile))
		os.Remove(r.Path(ReportFile))
		os.Remove(r.Path(TimelineFile))
		if err := Rebuild(r.Dir); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if after := readFile(t, r.Path(ReportFile)); after != before {
			t.Errorf("%s: the rebuilt report differs from the one written after the run", name)
		}
		if after := readFile(t, r.Path(TimelineFile)); after != tlBefore {
			t.Errorf("%s: the rebuilt timeline differs", name)
		}
	}
}

func TestRebuildWithoutResultsOrHistory(t *testing.T) {
	r, err := Create(t.TempDir(), "reg", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(TestFile, Test{Name: "reg", Status: StatusInterrupted}); err != nil {
		t.Fatal(err)
	}
	if err := Rebuild(r.Dir); err != nil {
		t.Fatal(err)
	}
	page := readFile(t, r.Path(ReportFile))
	mustContain(t, "report", page, "UNKNOWN", "not checked", "History not shown")
	if err := Rebuild(t.TempDir()); err == nil {
		t.Error("Rebuild of a directory without test.json succeeded")
	}
}

func TestFaultWindowsAndAvailability(t *testing.T) {
	for _, tc := range []struct {
		f      string
		fault  string
		starts bool
		ok     bool
	}{
		{"start-partition", "partition", true, true},
		{"stop-partition", "partition", false, true},
		{"kill", "kill", true, true},
		{"start", "kill", false, true},
		{"pause", "pause", true, true},
		{"resume", "pause", false, true},
		{"start-clock", "clock", true, true},
		{"read", "", false, false},
	} {
		fault, starts, ok := faultOf(tc.f, false, nil)
		if fault != tc.fault || starts != tc.starts || ok != tc.ok {
			t.Errorf("faultOf(%q) = %q, %v, %v; want %q, %v, %v", tc.f, fault, starts, ok, tc.fault, tc.starts, tc.ok)
		}
	}
	ops := registerHistory(2000, 5, 10*time.Second, 3, false)
	a := analyze(ops)
	if len(a.windows) != 2 || a.windows[0].fault != "partition" || a.windows[1].fault != "kill" {
		t.Fatalf("windows = %+v, want a partition then a kill", a.windows)
	}
	if w := a.windows[0]; w.start < 2e9 || w.end > 4.1e9 || w.value != `["n1" "n2"]` {
		t.Errorf("partition window = %+v, want 2s to 4s on n1, n2", w)
	}
	av := a.availability()
	if len(av.Windows) != 2 {
		t.Fatalf("availability windows = %+v, want 2", av.Windows)
	}
	during, outside := av.DuringFaults, av.OutsideFaults
	if during.Invoked+outside.Invoked != len(a.calls) || av.Invoked != len(a.calls) {
		t.Errorf("%d ops during faults + %d outside, %d in all; want %d calls", during.Invoked, outside.Invoked, av.Invoked, len(a.calls))
	}
	if outside.Answered() != 1 || during.Answered() > 0.6 || during.Answered() < 0.1 {
		t.Errorf("answered during faults %v, outside %v: want about 1/3 inside and all outside", during.Answered(), outside.Answered())
	}
	// A fault never healed lasts to the end of the history.
	cutAt := slices.IndexFunc(ops, func(op history.Op) bool { return op.F == "stop-partition" })
	a = analyze(ops[:cutAt])
	if w := a.windows[len(a.windows)-1]; !w.open || w.end != a.span {
		t.Errorf("unhealed window %+v should be open and end at the history's end %d", w, a.span)
	}
}

func TestAnalyzeToleratesMalformedHistories(t *testing.T) {
	ops := []history.Op{
		{Index: 0, Time: 5, Type: history.Ok, Process: 1, F: "read"},
		{Index: 1, Time: 6, Type: history.Invoke, Process: 1, F: "read"},
		{Index: 2, Time: 7, Type: history.Invoke, Process: 1, F: "write"},
		{Index: 3, Time: 1, Type: history.Ok, Process: 1, F: "write"},
		{Index: 4, Time: 9, Type: history.Info, Process: history.NemesisProcess, F: "stop-partition"},
	}
	a := analyze(ops)
	if a.pairWarning == "" {
		t.Error("no warning for ops that do not pair")
	}
	page, _, err := Render(ReportInput{Test: Test{Name: "x"}, Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "report", string(page), "did not pair up")
}

func TestLatencyPlotsAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 200k-op history")
	}
	ops := registerHistory(100000, 10, 10*time.Minute, 5, false)
	page, tl, err := Render(ReportInput{Test: Test{Name: "big", Parameters: map[string]any{"concurrency": 10}}, Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	// 2 functions x 3 outcomes, each at most maxPointsPerSeries samples
	// plus two extremes per bucket.
	limit := 2 * 3 * (maxPointsPerSeries + 2*latencyBuckets)
	if n := bytes.Count(page, []byte("<circle")); n > limit || n < 1000 {
		t.Errorf("%d points drawn, want between 1000 and %d", n, limit)
	}
	if len(page) > 4<<20 || len(tl) > 8<<20 {
		t.Errorf("report %d bytes, timeline %d bytes: too big to open quickly", len(page), len(tl))
	}
	mustContain(t, "timeline", string(tl), "Showing the first 10000 of 100000 operations")
}

func TestSampleKeepsExtremes(t *testing.T) {
	ops := registerHistory(40000, 4, 100*time.Second, 9, false)
	a := analyze(ops)
	var slowest *call
	for i := range a.calls {
		c := &a.calls[i]
		if c.f == "read" && c.typ == history.Ok && (slowest == nil || c.latency() > slowest.latency()) {
			slowest = c
		}
	}
	s := a.sample("read", history.Ok)
	if len(s) >= a.counts["read"][history.Ok] || len(s) > maxPointsPerSeries+2*latencyBuckets {
		t.Fatalf("sample of %d from %d: not downsampled", len(s), a.counts["read"][history.Ok])
	}
	for _, c := range s {
		if c == slowest {
			return
		}
	}
	t.Error("the slowest read was sampled away")
}

func TestAnomaliesAreNeverDropped(t *testing.T) {
	var insts []any
	for i := range 300 {
		insts = append(insts, &elle.Anomaly{Type: "G1c", Explanation: "cycle number " + string(rune('A'+i%26)),
			Txns:  []elle.Txn{{Index: int64(2 * i)}, {Index: int64(2*i + 1)}},
			Steps: []elle.Step{{From: 0, To: 1, Type: "wr", Key: 1}, {From: 1, To: 0, Type: "ww", Key: 2}}})
	}
	res := checker.Result{Checker: "elle", Valid: checker.Invalid, AnomalyTypes: []string{"G1c"}, Anomalies: map[string][]any{"G1c": insts}}
	page, _, err := Render(ReportInput{Test: Test{Name: "x"}, Summary: Summary{Valid: checker.Invalid, Results: map[string]checker.Result{"elle": res}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(page, []byte(`<svg class="cycle"`)); n != maxCycleDiagrams {
		t.Errorf("%d cycle diagrams for 300 anomalies, want the first %d", n, maxCycleDiagrams)
	}
	if n := bytes.Count(page, []byte(`<div class="anomaly">`)); n != 300 {
		t.Errorf("%d anomalies listed, want all 300", n)
	}
	if n := bytes.Count(page, []byte("T2 → T1 (ww)")); n != 300 {
		t.Errorf("%d cycles spelled out, want all 300", n)
	}
}

func TestCycleDiagramLaysOutARing(t *testing.T) {
	for n := 1; n <= 6; n++ {
		a := &elle.Anomaly{Type: "G2"}
		for i := range n {
			a.Txns = append(a.Txns, elle.Txn{Index: int64(i), Value: []any{[]any{"append", "<k>", int64(i)}}})
			a.Steps = append(a.Steps, elle.Step{From: i, To: (i + 1) % n, Type: []string{"ww", "wr", "rw", "realtime", "process"}[i%5], Key: "<k>"})
		}
		svg := string(cycleSVG(a, n))
		if got := strings.Count(svg, "<rect"); got != n {
			t.Errorf("%d txns: %d boxes", n, got)
		}
		if got := strings.Count(svg, "marker-end="); got != n {
			t.Errorf("%d txns: %d edges", n, got)
		}
		if strings.Contains(svg, "<k>") || !strings.Contains(svg, "&lt;k&gt;") {
			t.Errorf("%d txns: key not escaped", n)
		}
		if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
			t.Errorf("%d txns: layout has NaN or Inf", n)
		}
	}
	if cycleSVG(&elle.Anomaly{Type: "lost-update"}, 0) != "" {
		t.Error("a diagram for an anomaly without a cycle")
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		raw, want float64
	}{{0.7, 1}, {1, 1}, {1.3, 2}, {3, 5}, {7, 10}, {0.013, 0.02}, {450, 500}} {
		if got := niceStep(tc.raw); got < tc.want*0.999 || got > tc.want*1.001 {
			t.Errorf("niceStep(%v) = %v, want %v", tc.raw, got, tc.want)
		}
	}
	if ts := linearTicks(0, 10, 5); len(ts) != 6 || ts[0] != 0 || ts[5] != 10 {
		t.Errorf("linearTicks(0, 10, 5) = %v", ts)
	}
}

func BenchmarkReport1M(b *testing.B) {
	ops := registerHistory(500000, 10, 20*time.Minute, 11, false)
	b.ResetTimer()
	size := 0
	for b.Loop() {
		page, tl, err := Render(ReportInput{Test: Test{Name: "big", Parameters: map[string]any{"concurrency": 10}}, Ops: ops})
		if err != nil {
			b.Fatal(err)
		}
		size = len(page) + len(tl)
	}
	b.ReportMetric(float64(len(ops)), "history-ops")
	b.ReportMetric(float64(size)/1e6, "page-MB")
}

func BenchmarkRebuild1M(b *testing.B) {
	root := b.TempDir()
	ops := registerHistory(500000, 10, 20*time.Minute, 11, false)
	r := storeRun(b, root, "big", "register", time.Now(), ops, func(string) checker.Result {
		return checker.Result{Checker: "linear", Valid: checker.Valid}
	})
	b.ResetTimer()
	for b.Loop() {
		if err := Rebuild(r.Dir); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzReportEscapes renders histories whose strings come from the fuzzer:
// the page must never fail, panic, or carry markup from the history.
func FuzzReportEscapes(f *testing.F) {
	f.Add("read", evilKey, "<img src=x onerror=alert(1)>", "x\"'&")
	f.Add("start-<b>", "k", "", "\x00\xff")
	f.Fuzz(func(t *testing.T, fn, key, val, errText string) {
		ops := []history.Op{
			{Index: 0, Time: 1, Type: history.Invoke, Process: 0, F: fn, Value: []any{key, val}},
			{Index: 1, Time: 2e6, Type: history.Info, Process: 0, F: fn, Value: []any{key, val}, Error: errText, Node: val},
			{Index: 2, Time: 3e6, Type: history.Invoke, Process: history.NemesisProcess, F: "start-" + fn, Value: val},
			{Index: 3, Time: 4e6, Type: history.Info, Process: history.NemesisProcess, F: "start-" + fn, Value: val},
		}
		test := Test{Name: "fuzz", Parameters: map[string]any{"workload": val, key: fn}}
		page, tl, err := Render(ReportInput{Test: test, Ops: ops, Files: []string{key}})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range [][]byte{page, tl} {
			s := strings.ToLower(string(p))
			if strings.Contains(s, "<script") || strings.Contains(s, "<img") || strings.Contains(s, "<b>") {
				t.Fatalf("history markup reached the page:\n%s", p)
			}
		}
	})
}

func TestFaultLabel(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{map[string]any{"kind": "kill", "nodes": []any{"n1"}}, `["n1"]`},
		{map[string]any{"kind": "partition", "components": []any{[]any{"n3"}, []any{"n1", "n2"}}, "grudge": map[string]any{}}, `[["n3"] ["n1" "n2"]]`},
		{map[string]any{"kind": "loss"}, `{"kind": "loss"}`},
		{[]any{"n1", "n2"}, `["n1" "n2"]`},
		{nil, ""},
	} {
		if got := faultLabel(tc.v); got != tc.want {
			t.Errorf("faultLabel(%v) = %s, want %s", tc.v, got, tc.want)
		}
	}
}
