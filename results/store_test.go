package results

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
)

func TestDirName(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 24, 10, 15, 0, 123_456_789, time.UTC), "20261124T101500.123"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "20260102T030405.000"},
		{time.Date(2026, 11, 24, 11, 15, 0, 5_000_000, time.FixedZone("CET", 3600)), "20261124T101500.005"},
	}
	for _, tt := range tests {
		if got := DirName(tt.t); got != tt.want {
			t.Errorf("DirName(%v) = %q, want %q", tt.t, got, tt.want)
		}
		back, err := ParseDirName(tt.want)
		if err != nil || !back.Equal(tt.t.Truncate(time.Millisecond)) {
			t.Errorf("ParseDirName(%q) = %v, %v", tt.want, back, err)
		}
	}
	for _, bad := range []string{"", "latest", "2026-11-24", "20261124T101500"} {
		if _, err := ParseDirName(bad); err == nil {
			t.Errorf("ParseDirName(%q) succeeded", bad)
		}
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"register-partition", true},
		{"a.b_c-1", true},
		{"", false},
		{".hidden", false},
		{"..", false},
		{"latest", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
	}
	for _, tt := range tests {
		if err := ValidateName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestCreateLayoutAndLatest(t *testing.T) {
	root := t.TempDir()
	start := time.Date(2026, 11, 24, 10, 15, 0, 123_000_000, time.UTC)
	r1, err := Create(root, "reg", start)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "reg", "20261124T101500.123"); r1.Dir != want {
		t.Fatalf("dir = %s, want %s", r1.Dir, want)
	}
	r2, err := Create(root, "reg", start)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Dir != r1.Dir+"-2" {
		t.Fatalf("colliding run dir = %s", r2.Dir)
	}
	if _, err := Create(root, "bad/name", start); err == nil {
		t.Fatal("bad name accepted")
	}

	if err := r1.MarkLatest(); err != nil {
		t.Fatal(err)
	}
	if err := r2.MarkLatest(); err != nil {
		t.Fatal(err)
	}
	target, _ := os.Readlink(filepath.Join(root, LatestLink))
	if filepath.IsAbs(target) || target != filepath.Join("reg", "20261124T101500.123-2") {
		t.Fatalf("latest -> %q, want a relative path to the second run", target)
	}
	if got, err := Latest(root); err != nil || got != r2.Dir {
		t.Fatalf("Latest = %q, %v", got, err)
	}
	if err := UpdateLatest(root, t.TempDir()); err == nil {
		t.Fatal("latest pointed outside the store")
	}

	if _, err := r1.NodeDir("n1"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(r1.Path(NodesDir, "n1")); err != nil || !fi.IsDir() {
		t.Fatalf("nodes/n1 missing: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := r1.NodeDir(bad); err == nil {
			t.Errorf("NodeDir(%q) accepted", bad)
		}
	}

	f, err := r1.CreateHistory()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := r1.CreateHistory(); err == nil {
		t.Fatal("history created twice")
	}
}

func TestTestAndSummaryRoundTrip(t *testing.T) {
	root := t.TempDir()
	r, err := Create(root, "reg", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
	test := Test{Name: "reg", Start: end.Add(-time.Second), End: &end, Status: StatusDone, Seed: -3,
		Parameters: map[string]any{"nodes": 5.0, "nemesis": "partition"}, Versions: BuildVersions()}
	if err := r.WriteJSON(TestFile, test); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTest(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seed != -3 || got.Parameters["nemesis"] != "partition" || !got.End.Equal(end) || got.Versions.Go == "" {
		t.Fatalf("round trip: %+v", got)
	}
	sum := Summary{Valid: checker.Invalid, Results: map[string]checker.Result{"linear": {Valid: checker.Invalid, Summary: "x"}}}
	if err := r.WriteJSON(ResultsFile, sum); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(r.Path(ResultsFile))
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil || raw["valid"] != false {
		t.Fatalf("results.json valid = %v (%v)", raw["valid"], err)
	}
	gs, err := ReadSummary(r.Dir)
	if err != nil || gs.Valid != checker.Invalid || gs.Results["linear"].Summary != "x" {
		t.Fatalf("summary round trip: %+v, %v", gs, err)
	}
	if _, err := ReadTest(t.TempDir()); err == nil {
		t.Fatal("ReadTest of an empty dir succeeded")
	}
	entries, _ := os.ReadDir(r.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestReportEscapesAndLinks(t *testing.T) {
	test := Test{Name: "reg", Status: StatusDone, Parameters: map[string]any{"nemesis": "<script>alert(1)</script>"}}
	sum := Summary{Valid: checker.Invalid, Results: map[string]checker.Result{
		"linear": {Valid: checker.Invalid, Summary: "key 3 not linearizable", AnomalyTypes: []string{"nonlinearizable"}},
	}, Notes: []string{"final reads & more"}}
	b, err := RenderReport(test, sum, []string{"history.jsonl", "nodes/"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"valid: false", `class="invalid"`, "key 3 not linearizable", "nonlinearizable",
		`href="history.jsonl"`, `href="nodes/"`, "&lt;script&gt;", "final reads &amp; more"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(s, "<script>") || strings.Contains(s, "http://") || strings.Contains(s, "https://") {
		t.Error("report has unescaped script or needs the network")
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"reg", "", "..", "a/b", "latest", ".x", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		if filepath.Base(name) != name || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
			t.Fatalf("accepted %q, which is not one plain path element", name)
		}
	})
}

func FuzzParseDirName(f *testing.F) {
	for _, s := range []string{"20261124T101500.123", "", "20261124T101500", "99991231T235959.999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ts, err := ParseDirName(name)
		if err != nil {
			return
		}
		if got := DirName(ts); got != name {
			t.Fatalf("ParseDirName(%q) = %v, which formats as %q", name, ts, got)
		}
	})
}

func TestSave(t *testing.T) {
	root := t.TempDir()
	start := time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)
	ops := registerHistory(40, 3, time.Second, 7, true)
	end := start.Add(time.Second)
	test := Test{Name: "sim-register-kill", Start: start, End: &end, Status: StatusDone, Seed: 9,
		Parameters: Values{"workload": "register", "backend": "sim"}}
	sum := Summary{Valid: checker.Invalid, Results: map[string]checker.Result{"linearizable": {Valid: checker.Invalid, Summary: "not linearizable"}}}
	run, err := Save(root, test, ops, sum)
	if err != nil {
		t.Fatal(err)
	}
	if latest, err := Latest(root); err != nil || latest != run.Dir {
		t.Fatalf("latest = %q, %v; want %q", latest, err, run.Dir)
	}
	gotT, err := ReadTest(run.Dir)
	if err != nil || gotT.Seed != 9 || gotT.Parameters["backend"] != "sim" {
		t.Fatalf("test.json read back as %+v, %v", gotT, err)
	}
	gotS, err := ReadSummary(run.Dir)
	if err != nil || gotS.Valid != checker.Invalid {
		t.Fatalf("results.json read back as %+v, %v", gotS, err)
	}
	back, err := readHistory(run.Dir)
	if err != nil || len(back) != len(ops) {
		t.Fatalf("history read back: %d ops, %v; want %d", len(back), err, len(ops))
	}
	for _, f := range []string{ReportFile, TimelineFile} {
		b, err := os.ReadFile(run.Path(f))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if page, _ := os.ReadFile(run.Path(ReportFile)); !strings.Contains(string(page), ">INVALID<") || !strings.Contains(string(page), `href="history.jsonl"`) {
		t.Error("the report lacks the verdict or the link to the history")
	}
	runs, err := ListRuns(root)
	if err != nil || len(runs) != 1 || runs[0].Valid != "false" || runs[0].Name != "sim-register-kill" {
		t.Fatalf("ListRuns = %+v, %v", runs, err)
	}
	if _, err := Save(root, Test{Name: "bad/name", Start: start}, ops, sum); err == nil {
		t.Error("Save accepted a test name that is not one path element")
	}
}
