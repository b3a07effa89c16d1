package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
	"github.com/chaoskv/chaos/workloads/memtxn"
)

// checkAgrees checks a stored run's directory, and its history file with
// the run's workload named, and wants the verdict the run gave.
func checkAgrees(t *testing.T, dir, workload string, runCode int) {
	t.Helper()
	before, err := os.ReadFile(filepath.Join(dir, results.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var runSum results.Summary
	if err := json.Unmarshal(before, &runSum); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", dir},
		{"check", filepath.Join(dir, "history.jsonl")},
		{"check", "--workload", workload, filepath.Join(dir, "history.jsonl")},
	} {
		code, stdout, stderr := runCapture(t, args...)
		if code != runCode {
			t.Fatalf("%v: exit %d, but the run that made it exited %d\nstdout: %s\nstderr: %s", args, code, runCode, stdout, stderr)
		}
		if !strings.Contains(stdout, ": "+workload+",") {
			t.Fatalf("%v: verdict line %q does not name the run's workload %s", args, stdout, workload)
		}
		if strings.Contains(stderr, "overrides") {
			t.Fatalf("%v: stderr %q reports an override where the flags agree with the run", args, stderr)
		}
	}
	after, err := results.ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range runSum.Results {
		if after.Results[name].Valid != r.Valid {
			t.Fatalf("checker %s: the run said %v, chaos check says %v", name, r.Valid, after.Results[name].Valid)
		}
	}
}

// TestCheckAgreesWithRun: for every workload, chaos check of a run
// directory the suite stored (and of its history file) gives the verdict
// the run gave, with the run's checker options.
func TestCheckAgreesWithRun(t *testing.T) {
	old := runBackend
	t.Cleanup(func() { runBackend = old })
	memTxn := func(o memtxn.Options) func() workloads.SUT {
		return func() workloads.SUT {
			s, err := memtxn.New(o)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	tests := []struct {
		name     string
		workload string
		extra    []string
		sut      func() workloads.SUT
		code     int
	}{
		{"register valid", "register", nil, func() workloads.SUT { return memkv.New(memkv.Options{LoseRate: 0.05}) }, exitValid},
		{"register invalid", "register", nil, func() workloads.SUT { return liarSUT{memkv.New(memkv.Options{})} }, exitInvalid},
		{"list-append valid", "list-append", nil, memTxn(memtxn.Options{LoseRate: 0.05, RefuseRate: 0.05}), exitValid},
		{"list-append invalid", "list-append", nil, memTxn(memtxn.Options{StaleReadRate: 0.2}), exitInvalid},
		// Stale reads are allowed under read-committed: chaos check must
		// hold the history to the run's models, not the default.
		{"list-append read-committed", "list-append", []string{"--consistency-models", "read-committed"}, memTxn(memtxn.Options{StaleReadRate: 0.2}), exitValid},
		{"rw-register valid", "rw-register", nil, memTxn(memtxn.Options{LoseRate: 0.05}), exitValid},
		{"bank valid", "bank", nil, memTxn(memtxn.Options{RefuseRate: 0.05, LoseRate: 0.05}), exitValid},
		{"bank invalid", "bank", nil, memTxn(memtxn.Options{TornRate: 0.1}), exitInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runBackend = func(context.Context, kvnodedb.Options) (harness.Backend, func(), error) {
				return &memBackend{sut: tt.sut}, func() {}, nil
			}
			store := t.TempDir()
			args := append([]string{"run", "--kvnode-binary", os.Args[0], "--workload", tt.workload, "--nemesis", "none",
				"--time-limit", "300ms", "--rate", "500", "--store", store, "--seed", "3"}, tt.extra...)
			code, stderr := runCLI(t, args...)
			if code != tt.code {
				t.Fatalf("run: exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			latest, err := results.Latest(store)
			if err != nil {
				t.Fatal(err)
			}
			checkAgrees(t, latest, tt.workload, code)
		})
	}
}

// TestCheckRunOverrides: a flag that differs from the run's test.json
// wins, and chaos check says so.
func TestCheckRunOverrides(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "history.jsonl", jsonl(
		`0 invoke txn [["append",1,1]]`, `0 ok txn [["append",1,1]]`,
		`1 invoke txn [["r",1,null]]`, `1 ok txn [["r",1,[1]]]`))
	writeFile(t, dir, results.TestFile, `{"name":"t","start":"2026-01-01T00:00:00Z","status":"done","seed":1,
"parameters":{"workload":"list-append","check-timeout":"5m0s","checker":{"checker":"elle","model":"list-append","consistency-models":["serializable"]}}}`)
	code, stdout, stderr := runCapture(t, "check", dir)
	if code != exitValid || !strings.HasPrefix(stdout, "valid: list-append") || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCapture(t, "check", "--consistency-models", "snapshot-isolation", "--timeout", "10s", filepath.Join(dir, "history.jsonl"))
	if code != exitValid {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, want := range []string{"--consistency-models snapshot-isolation overrides the run's serializable", "--timeout 10s overrides the run's 5m0s", results.TestFile} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not say %q", stderr, want)
		}
	}
	// Another workload than the run's is an override too; this history
	// is not of its shape.
	code, _, stderr = runCapture(t, "check", "--workload", "rw-register", dir)
	if code != exitBadArgs || !strings.Contains(stderr, "--workload rw-register overrides the run's list-append") || !strings.Contains(stderr, "not a rw-register history") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestCheckEmptyHistory: a history without client operations is unknown,
// with the same reason, whatever the workload.
func TestCheckEmptyHistory(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"empty.jsonl":   "",
		"empty.edn":     "[]",
		"nemesis.jsonl": `{"type":"info","process":"nemesis","f":"start","value":null}` + "\n" + `{"type":"info","process":"nemesis","f":"stop","value":null}` + "\n",
	}
	for name, content := range files {
		p := writeFile(t, dir, name, content)
		for _, w := range []string{"", "register", "cas-register", "kv", "list-append", "rw-register", "bank"} {
			args := []string{"check", p}
			if w != "" {
				args = []string{"check", "--workload", w, p}
			}
			code, stdout, stderr := runCapture(t, args...)
			if code != exitUnknown || !strings.HasPrefix(stdout, "unknown: ") || !strings.Contains(stdout, "the history holds no client operations") {
				t.Errorf("%s as %q: exit %d, stdout %q, stderr %q; want 2 and the reason", name, w, code, stdout, stderr)
			}
		}
	}
}

// TestCheckWrongShape: a history of another workload's shape exits 254,
// naming what was expected and what was found.
func TestCheckWrongShape(t *testing.T) {
	dir := t.TempDir()
	register := writeFile(t, dir, "register.jsonl", validRegister)
	appends := writeFile(t, dir, "append.jsonl", jsonl(
		`0 invoke txn [["append",1,1]]`, `0 ok txn [["append",1,1]]`,
		`1 invoke txn [["r",1,null]]`, `1 ok txn [["r",1,[1]]]`))
	rw := writeFile(t, dir, "rw.jsonl", jsonl(`0 invoke txn [["w",1,1]]`, `0 ok txn [["w",1,1]]`))
	bankH := writeFile(t, dir, "bank.jsonl", jsonl(`0 invoke read`, `0 ok read {"a":10,"b":10}`))
	cases := []struct {
		workload, path string
		want           []string
	}{
		{"list-append", register, []string{"not a list-append history", `expected f "txn"`, "found ops with f read (2), write (2)"}},
		{"rw-register", appends, []string{"not a rw-register history", `["w", key, value]`, "micro-ops append (2), r (2)"}},
		{"list-append", rw, []string{"not a list-append history", "micro-ops w (2)"}},
		{"register", appends, []string{"not a register history", "found ops with f txn (4)"}},
		{"bank", register, []string{"not a bank history", `"transfer"`}},
		{"register", bankH, []string{"not a register history", "op 2 (index 1)"}},
		{"kv", bankH, []string{"not a kv history"}},
	}
	for _, tc := range cases {
		code, stdout, stderr := runCapture(t, "check", "--workload", tc.workload, tc.path)
		if code != exitBadArgs {
			t.Errorf("%s as %s: exit %d, want 254; stdout %q stderr %q", filepath.Base(tc.path), tc.workload, code, stdout, stderr)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s as %s: stderr %q does not say %q", filepath.Base(tc.path), tc.workload, stderr, w)
			}
		}
	}
	// Recognized without --workload.
	for path, w := range map[string]string{register: "register", appends: "list-append", rw: "rw-register", bankH: "bank"} {
		code, stdout, stderr := runCapture(t, "check", path)
		if code == exitBadArgs || !strings.Contains(stdout, ": "+w+",") || !strings.Contains(stderr, "recognized from the history") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want it checked as %s", filepath.Base(path), code, stdout, stderr, w)
		}
	}
}
