package results

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/history"
)

func TestNemesisWindowsOfEveryKind(t *testing.T) {
	nem := func(t float64, typ history.Type, f string, v any, err string) hop {
		return hop{t: t, typ: typ, proc: -1, f: f, val: v, err: err}
	}
	ops := hist(
		hop{t: 0.5, typ: inv, proc: 0, f: "read"}, hop{t: 0.6, typ: okT, proc: 0, f: "read"},
		nem(1, inv, "reconfig", map[string]any{"op": "join", "group": int64(2)}, ""),
		nem(1.25, info, "reconfig", map[string]any{"op": "join", "group": int64(2), "config": int64(3)}, ""),
		nem(2, inv, "kill", []any{"n1"}, ""), nem(2.1, info, "kill", []any{"n1"}, ""),
		nem(3, inv, "clock-strobe", map[string]any{"node": "n2"}, ""), nem(3.5, info, "clock-strobe", map[string]any{"node": "n2"}, ""),
		nem(4, inv, "start", []any{"n1"}, ""), nem(4.1, info, "start", []any{"n1"}, ""),
		nem(5, inv, "start-partition", []any{"n3"}, ""), nem(5.2, info, "start-partition", []any{"n3"}, "no leader"),
		// A Jepsen-style lone completion with no invocation.
		nem(6, info, "lose-unsynced", []any{"n2"}, ""),
		nem(7, inv, "membership", map[string]any{"op": "remove", "node": "n3"}, ""),
		hop{t: 8, typ: inv, proc: 0, f: "read"}, hop{t: 9, typ: okT, proc: 0, f: "read"},
	)
	a := analyze(ops)
	type w struct {
		fault      string
		start, end float64
		event      bool
		failed     bool
		open       bool
		value      string
	}
	var got []w
	for _, x := range a.windows {
		got = append(got, w{x.fault, float64(x.start/1e6) / 1e3, float64(x.end/1e6) / 1e3, x.event, x.failed != "", x.open, x.value})
	}
	want := []w{
		{"reconfig", 1, 1.25, true, false, false, "join config=3 group=2"},
		{"kill", 2.1, 4.1, false, false, false, `["n1"]`},
		{"clock-strobe", 3, 3.5, true, false, false, `{"node": "n2"}`},
		{"partition", 5, 5.2, true, true, false, `["n3"]`},
		{"lose-unsynced", 6, 6, true, false, false, `["n2"]`},
		{"membership", 7, 9, true, false, true, `remove node="n3"`},
	}
	if len(got) != len(want) {
		t.Fatalf("windows =\n%+v\nwant\n%+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("window %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// The failed partition start is drawn but is no fault window.
	av := a.availability()
	var faults []string
	for _, x := range av.Windows {
		faults = append(faults, x.Fault)
	}
	if strings.Join(faults, ",") != "reconfig,kill,clock-strobe,lose-unsynced,membership" {
		t.Errorf("availability windows = %v", faults)
	}
	// Each kind gets its lane in the nemesis timeline, and its shading in
	// the plots.
	tl := string(a.nemesisTimeline())
	plot := string(a.throughputPlot())
	for _, k := range []string{"reconfig", "kill", "clock-strobe", "partition", "lose-unsynced", "membership"} {
		if !strings.Contains(tl, `>`+k+`</text>`) || !strings.Contains(tl, `class="nemesis-window" data-fault="`+k+`"`) {
			t.Errorf("nemesis timeline has no lane or bar for %s", k)
		}
		if !strings.Contains(plot, `class="fault-shade" data-fault="`+k+`"`) {
			t.Errorf("throughput plot has no shading for %s", k)
		}
	}
	if !strings.Contains(tl, "failed: no leader") || !strings.Contains(tl, `stroke-dasharray="3 2"`) {
		t.Error("the failed partition start is not drawn as failed")
	}
}

// TestJepsenNemesisWindows: Jepsen logs each nemesis action as two info
// ops; plain start and stop are its generic nemesis, kill then start a
// process kill.
func TestJepsenNemesisWindows(t *testing.T) {
	nem := func(t float64, f string, v any) hop { return hop{t: t, typ: info, proc: -1, f: f, val: v} }
	ops := hist(
		hop{t: 0.5, typ: inv, proc: 0, f: "read"}, hop{t: 0.6, typ: okT, proc: 0, f: "read"},
		nem(1, "start", nil), nem(1.1, "start", "Cut off {:n1 #{:n2}}"),
		nem(3, "stop", nil), nem(3.1, "stop", "fully connected"),
		nem(4, "kill", nil), nem(4.2, "kill", []any{"n2"}),
		nem(5, "start", nil), nem(5.2, "start", []any{"n2"}),
		nem(6, "bump-clock", nil), nem(6.5, "bump-clock", map[string]any{"n1": int64(100)}),
		nem(7, "start", nil),
		hop{t: 8, typ: inv, proc: 0, f: "read"}, hop{t: 9, typ: okT, proc: 0, f: "read"},
	)
	a := analyze(ops)
	var got []string
	for _, w := range a.windows {
		got = append(got, fmt.Sprintf("%s %d-%d open=%v", w.fault, w.start/1e8, w.end/1e8, w.open))
	}
	want := []string{"nemesis 11-31 open=false", "kill 42-52 open=false", "bump-clock 60-65 open=false", "nemesis 70-90 open=true"}
	if !slices.Equal(got, want) {
		t.Errorf("windows = %q, want %q", got, want)
	}
}

func TestReportOfReconfigRun(t *testing.T) {
	r := reconfigRun(t, t.TempDir())
	page := readFile(t, r.Path(ReportFile))
	tl := readFile(t, r.Path(TimelineFile))
	noActiveContent(t, "report", page)
	noActiveContent(t, "timeline", tl)

	// Every nemesis kind: a lane in the nemesis timeline, shading in each
	// plot, a band in the per-process timeline.
	lanes := regexp.MustCompile(`(?s)<title>nemesis timeline</title>.*?</svg>`).FindString(page)
	for _, k := range []string{"reconfig", "partition", "clock-bump"} {
		if !strings.Contains(lanes, ">"+k+"</text>") {
			t.Errorf("the nemesis timeline has no %s lane", k)
		}
		plots := regexp.MustCompile(`(?s)<svg class="plot".*?</svg>`).FindAllString(page, -1)
		shaded := 0
		for _, p := range plots {
			if strings.Contains(p, `class="fault-shade" data-fault="`+k+`"`) {
				shaded++
			}
		}
		// latency of txn, quantiles, throughput, availability
		if shaded < 4 {
			t.Errorf("%s shades %d plots, want at least 4", k, shaded)
		}
		if !strings.Contains(tl, `class="fault-shade" data-fault="`+k+`"`) {
			t.Errorf("timeline.html has no %s band", k)
		}
	}
	if n := strings.Count(lanes, `class="nemesis-window" data-fault="reconfig"`); n != 4 {
		t.Errorf("%d reconfig bars, want 4 (three done, one refused)", n)
	}
	mustContain(t, "report", page, "join config=2 group=3", "failed: shard controller move 5 to 2: no quorum", "leave config=4 group=1")
	mustContain(t, "timeline", tl, "reconfig 6.00s–6.30s: move config=3 group=3 shard=7", "failed: shard controller move 5 to 2: no quorum", "✗ reconfig")

	// Availability: the series, the longest stall overall and per window,
	// per serving group.
	mustContain(t, "report", page, "availability per second", "answered (ok + expected fail)", "longest with no ok",
		"whole workload", "during any fault", "outside every fault", "Availability by serving group", "<td>group 1</td>", "<td>group 2</td>")
	// The operations table adds up.
	row := regexp.MustCompile(`<tr><td>workload</td><td class="n">(\d+)</td><td class="n">(\d+)</td><td class="n">(\d+)</td><td class="n">(\d+)</td><td class="n">(\d+)</td></tr>`).FindStringSubmatch(page)
	if row == nil {
		t.Fatal("no workload row in the operations table")
	}
	n := make([]int, 5)
	for i := range n {
		n[i], _ = strconv.Atoi(row[i+1])
	}
	if n[0] != 600 || n[0] != n[1]+n[2]+n[3]+n[4] {
		t.Errorf("workload row %v: invoked must be 600 = ok + expected fail + fail + info", n)
	}

	// The seed pastes back as --seed.
	seed := strconv.FormatInt(reconfigSeed, 10)
	mustContain(t, "report", page, "<td>seed</td><td>"+seed+"</td>", "<td>first-seed</td><td>"+seed+"</td>", "(--rate 100)")
	if strings.Contains(page, "e+15") {
		t.Error("the report prints a number in exponent form")
	}
}

func TestSeedDecodesAsInteger(t *testing.T) {
	r := reconfigRun(t, t.TempDir())
	test, err := ReadTest(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	// A whole float64 such as --rate 100 comes back as an integer too;
	// readers take either.
	if test.Seed != reconfigSeed || test.Parameters["first-seed"] != int64(reconfigSeed) || test.Parameters["rate"] != int64(100) || test.Parameters["groups"] != int64(3) {
		t.Errorf("test.json decoded as seed %d, parameters %#v", test.Seed, test.Parameters)
	}
	var v Values
	if err := json.Unmarshal([]byte(`{"a":[1,2.5,{"b":9007199254740993}],"c":-3,"d":1e3,"e":"x"}`), &v); err != nil {
		t.Fatal(err)
	}
	want := Values{"a": []any{int64(1), 2.5, map[string]any{"b": int64(9007199254740993)}}, "c": int64(-3), "d": int64(1000), "e": "x"}
	if b1, b2 := display(v["a"]), display(want["a"]); b1 != b2 || v["c"] != want["c"] || v["d"] != want["d"] || v["e"] != want["e"] {
		t.Errorf("decoded %#v, want %#v", v, want)
	}
	if m := v["a"].([]any)[2].(map[string]any); m["b"] != int64(9007199254740993) {
		t.Errorf("nested integer decoded as %#v", m["b"])
	}
	if got := display(float64(reconfigSeed)); got != strconv.FormatInt(reconfigSeed, 10) {
		t.Errorf("display of a whole float64 = %q", got)
	}
	if err := os.WriteFile(r.Path(ResultsFile), []byte(`{"valid":true,"results":{},"stats":{"invoked":12345678901}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSummary(r.Dir)
	if err != nil || s.Stats["invoked"] != int64(12345678901) {
		t.Errorf("results.json stats decoded as %#v (%v)", s.Stats, err)
	}
}

// FuzzValuesDecode decodes arbitrary JSON as Values: it must never panic,
// and what it decodes must survive a JSON round trip unchanged, whole
// numbers staying int64.
func FuzzValuesDecode(f *testing.F) {
	f.Add(`{"seed":3764154334088693,"rate":2.5,"l":[1,{"x":-0}],"s":"a"}`)
	f.Add(`{"big":1e400,"n":18446744073709551616,"neg":-9223372036854775808}`)
	f.Add(`[1]`)
	f.Fuzz(func(t *testing.T, in string) {
		var v Values
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode %q: %v", in, err)
		}
		var w Values
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatalf("decode the re-encoding %s of %q: %v", b, in, err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip of %q changed %#v to %#v", in, v, w)
		}
	})
}

// TestMembershipConfigurationsOnTheTimeline follows a group through its
// membership changes: each completed change ends one configuration and
// starts the next, a failed one changes nothing, and the nemesis timeline
// draws every configuration in the group's lane, labelled with its
// members.
func TestMembershipConfigurationsOnTheTimeline(t *testing.T) {
	nem := func(t float64, typ history.Type, v map[string]any, err string) hop {
		return hop{t: t, typ: typ, proc: -1, f: "membership", val: v, err: err}
	}
	change := func(from, to []any) map[string]any {
		return map[string]any{"op": "x", "group": int64(1), "from": from, "to": to}
	}
	a3 := []any{"n1", "n2", "n3"}
	b3 := []any{"n2", "n3", "n4"}
	c4 := []any{"n1", "n2", "n3", "n4"}
	ops := hist(
		hop{t: 0.5, typ: inv, proc: 0, f: "read"}, hop{t: 0.6, typ: okT, proc: 0, f: "read"},
		nem(1, inv, change(a3, b3), ""), nem(1.5, info, change(a3, b3), ""),
		nem(2, inv, change(b3, c4), ""), nem(2.5, info, change(b3, c4), "409 Conflict"),
		nem(3, inv, change(b3, a3), ""), nem(3.5, info, change(b3, a3), ""),
		hop{t: 8, typ: inv, proc: 0, f: "read"}, hop{t: 9, typ: okT, proc: 0, f: "read"},
	)
	a := analyze(ops)
	var got []string
	for _, c := range a.configs {
		got = append(got, fmt.Sprintf("%s %s-%s %v", c.lane(), secs(c.start), secs(c.end), c.members))
	}
	want := []string{
		"members g1 0.00s-1.50s [n1 n2 n3]",
		"members g1 1.50s-3.50s [n2 n3 n4]",
		"members g1 3.50s-9.00s [n1 n2 n3]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("configurations =\n%q\nwant\n%q", got, want)
	}
	tl := string(a.nemesisTimeline())
	if n := strings.Count(tl, `class="config-span" data-lane="members g1"`); n != 3 {
		t.Errorf("%d configuration bars, want 3", n)
	}
	for _, s := range []string{`>members g1</text>`, `>n2 n3 n4</text>`} {
		if !strings.Contains(tl, s) {
			t.Errorf("nemesis timeline lacks %s", s)
		}
	}
}
