package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// runCapture runs chaos with args and returns its exit code, stdout and
// stderr.
func runCapture(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	capture := func(f **os.File) (func() string, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		old := *f
		*f = w
		var buf strings.Builder
		var wg sync.WaitGroup
		wg.Go(func() { io.Copy(&buf, r) })
		return func() string {
			*f = old
			w.Close()
			wg.Wait()
			r.Close()
			return buf.String()
		}, nil
	}
	stopOut, err := capture(&os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	stopErr, err := capture(&os.Stderr)
	if err != nil {
		stopOut()
		t.Fatal(err)
	}
	code := run(append([]string{"chaos"}, args...))
	return code, stopOut(), stopErr()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonl renders "process type f value" lines as a JSON-lines history.
func jsonl(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		parts := strings.SplitN(l, " ", 4)
		if len(parts) == 3 {
			parts = append(parts, "null")
		}
		fmt.Fprintf(&b, `{"type":%q,"process":%s,"f":%q,"value":%s}`+"\n", parts[1], parts[0], parts[2], parts[3])
	}
	return b.String()
}

var (
	validRegister = jsonl(
		`0 invoke write ["x",1]`, `0 ok write ["x",1]`,
		`1 invoke read ["x",null]`, `1 ok read ["x",1]`)
	invalidRegister = jsonl(
		`0 invoke write ["x",1]`, `0 ok write ["x",1]`,
		`1 invoke read ["x",null]`, `1 ok read ["x",2]`)
)

func TestCheckVerdicts(t *testing.T) {
	dir := t.TempDir()
	valid := writeFile(t, dir, "valid.jsonl", validRegister)
	invalid := writeFile(t, dir, "invalid.jsonl", invalidRegister)
	edn := writeFile(t, dir, "h.edn", `{:type :invoke, :f :write, :value [:x 1], :process 0, :index 0}
{:type :ok, :f :write, :value [:x 1], :process 0, :index 1}
{:type :invoke, :f :read, :value [:x nil], :process 1, :index 2}
{:type :ok, :f :read, :value [:x 1], :process 1, :index 3}
`)
	noExt := writeFile(t, dir, "history", invalidRegister)
	// Knossos's data-file shape: one vector of unkeyed cas-register ops.
	knossos := writeFile(t, dir, "knossos.dat", `[{:process 0, :type :invoke, :f :write, :value 3}
 {:process 1, :type :invoke, :f :cas, :value [3 4]}
 {:process 0, :type :ok, :f :write, :value 3}
 {:process 1, :type :ok, :f :cas, :value [3 4]}
 {:process 0, :type :invoke, :f :read, :value nil}
 {:process 0, :type :ok, :f :read, :value 3}]`)
	// The same shape as a top-level list with comments: a read of a value
	// never written while a write of another is in flight.
	knossosList := writeFile(t, dir, "knossos-list.edn", `({:type :invoke, :f :write, :value 1, :process 0}
 {:type :ok, :f :write, :value 1, :process 0}
 ; 1 is there; 5 is being written while 2 is read
 {:type :invoke, :f :read, :value nil, :process 1}
 {:type :invoke, :f :write, :value 5, :process 2}
 {:type :ok, :f :read, :value 2, :process 1}
 {:type :ok, :f :write, :value 5, :process 2}
)
`)
	bankOK := writeFile(t, dir, "bank.jsonl", jsonl(
		`0 invoke read`, `0 ok read {"a":10,"b":10}`,
		`1 invoke transfer {"from":"a","to":"b","amount":3}`, `1 ok transfer {"from":"a","to":"b","amount":3}`,
		`0 invoke read`, `0 ok read [["a",7],["b",13]]`))
	bankBad := writeFile(t, dir, "bank-bad.jsonl", jsonl(
		`0 invoke read`, `0 ok read {"a":10,"b":10}`,
		`0 invoke read`, `0 ok read {"a":7,"b":10}`))
	appendOK := writeFile(t, dir, "append.jsonl", jsonl(
		`0 invoke txn [["append",1,1]]`, `0 ok txn [["append",1,1]]`,
		`1 invoke txn [["r",1,null]]`, `1 ok txn [["r",1,[1]]]`))
	appendBad := writeFile(t, dir, "append-bad.jsonl", jsonl(
		`0 invoke txn [["append",1,1]]`, `0 ok txn [["append",1,1]]`,
		`1 invoke txn [["append",1,2]]`, `1 ok txn [["append",1,2]]`,
		`2 invoke txn [["r",1,null]]`, `2 ok txn [["r",1,[1,2]]]`,
		`3 invoke txn [["r",1,null]]`, `3 ok txn [["r",1,[2,1]]]`))

	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"valid register", []string{"check", "--workload", "register", valid}, exitValid, "valid: register"},
		{"invalid register", []string{"check", "--workload", "register", invalid}, exitInvalid, "invalid: register, anomalies nonlinearizable (1), not linearizable"},
		{"edn by extension", []string{"check", "--workload", "cas-register", edn}, exitValid, "valid: cas-register"},
		{"format flag", []string{"check", "--workload", "register", "--format", "jsonl", noExt}, exitInvalid, "invalid: register"},
		{"sniffed format", []string{"check", "--workload", "register", noExt}, exitInvalid, "invalid: register"},
		{"knossos vector", []string{"check", "--workload", "cas-register", "--format", "edn", knossos}, exitInvalid, "anomalies nonlinearizable (1)"},
		{"knossos list", []string{"check", "--workload", "register", knossosList}, exitInvalid, "anomalies nonlinearizable (1)"},
		{"knossos list recognized", []string{"check", knossosList}, exitInvalid, "invalid: register"},
		{"bank valid", []string{"check", "--workload", "bank", bankOK}, exitValid, "valid: bank"},
		{"bank wrong total", []string{"check", "--workload", "bank", "--total", "20", bankBad}, exitInvalid, "anomalies wrong-total (1)"},
		{"list-append valid", []string{"check", "--workload", "list-append", appendOK}, exitValid, "valid: list-append"},
		{"list-append invalid", []string{"check", "--workload", "list-append", "--consistency-models", "serializable", appendBad}, exitInvalid, "invalid: list-append"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCapture(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			verdict := map[int]string{exitValid: "valid: ", exitInvalid: "invalid: "}[tc.code]
			if !strings.HasPrefix(stdout, verdict) || !strings.Contains(stdout, tc.stdout) {
				t.Fatalf("stdout %q does not contain %q", stdout, tc.stdout)
			}
			if strings.Count(stdout, "\n") != 1 {
				t.Fatalf("want a one-line verdict, got %q", stdout)
			}
		})
	}
}

func TestCheckUnknownOnTimeout(t *testing.T) {
	// Many concurrent writes of unknown outcome and a read of a value
	// never written: refuting it takes far longer than the timeout.
	var lines []string
	for p := 0; p < 40; p++ {
		lines = append(lines, fmt.Sprintf(`%d invoke write ["x",%d]`, p, p))
	}
	for p := 0; p < 40; p++ {
		lines = append(lines, fmt.Sprintf(`%d info write ["x",%d]`, p, p))
	}
	for p := 0; p < 40; p++ {
		lines = append(lines, fmt.Sprintf(`40 invoke read ["x",null]`), fmt.Sprintf(`40 ok read ["x",%d]`, (p*7)%40))
	}
	lines = append(lines, `40 invoke read ["x",null]`, `40 ok read ["x",-1]`)
	path := writeFile(t, t.TempDir(), "h.jsonl", jsonl(lines...))
	code, stdout, stderr := runCapture(t, "check", "--workload", "register", "--timeout", "200ms", path)
	if code != exitUnknown || !strings.HasPrefix(stdout, "unknown: register") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and an unknown verdict", code, stdout, stderr)
	}
}

func TestCheckJSONAndRunDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "history.jsonl", invalidRegister)
	// A results.json from the run itself: its other checker's result is
	// kept.
	writeFile(t, dir, "results.json", `{"valid":true,"results":{"stats":{"checker":"stats","valid":true,"anomaly-types":[],"anomalies":{},"not":[],"summary":"ok"}}}`)
	code, stdout, stderr := runCapture(t, "check", "--workload", "register", "--json", dir)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1; stderr %s", code, stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, stdout)
	}
	for _, k := range []string{"valid", "anomaly-types", "anomalies", "not"} {
		if _, ok := out[k]; !ok {
			t.Fatalf("--json output lacks %q: %s", k, stdout)
		}
	}
	if out["valid"] != false || fmt.Sprint(out["anomaly-types"]) != "[nonlinearizable]" || fmt.Sprint(out["not"]) != "[linearizable]" {
		t.Fatalf("--json output: valid %v, anomaly-types %v, not %v", out["valid"], out["anomaly-types"], out["not"])
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Valid   checker.Validity
		Results map[string]checker.Result
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Valid != checker.Invalid || sum.Results["linearizable"].Valid != checker.Invalid || sum.Results["stats"].Valid != checker.Valid {
		t.Fatalf("results.json = %s", b)
	}
	files := sum.Results["linearizable"].Files
	if len(files) != 1 {
		t.Fatalf("files = %v, want the visualization", files)
	}
	if _, err := os.Stat(filepath.Join(dir, files[0])); err != nil {
		t.Fatalf("visualization not written next to results.json: %v", err)
	}

	// A valid JSON result carries the same fields, as empty lists.
	valid := writeFile(t, t.TempDir(), "v.jsonl", validRegister)
	code, stdout, _ = runCapture(t, "check", "--workload", "register", "--json", valid)
	if code != exitValid || !strings.Contains(stdout, `"anomaly-types": []`) || !strings.Contains(stdout, `"not": []`) || !strings.Contains(stdout, `"valid": true`) {
		t.Fatalf("exit %d, valid --json output %s", code, stdout)
	}
}

func TestCheckBadArguments(t *testing.T) {
	dir := t.TempDir()
	valid := writeFile(t, dir, "valid.jsonl", validRegister)
	malformed := writeFile(t, dir, "bad.jsonl", jsonl(`0 invoke write ["x",1]`, `0 ok write ["x",1]`)+`{"type":"ok","process":`+"\n")
	badType := writeFile(t, dir, "badtype.edn", "{:type :invoke, :process 0, :f :read}\n{:type :done, :process 0, :f :read}\n")
	unpaired := writeFile(t, dir, "unpaired.jsonl", jsonl(`0 invoke read ["x",null]`, `1 ok read ["x",null]`))
	badValue := writeFile(t, dir, "badvalue.jsonl", jsonl(`0 invoke put "a"`, `0 ok put "a"`))
	// Streamed into Elle as it is read: its pairing is checked op by op.
	unpairedTxn := writeFile(t, dir, "unpairedtxn.jsonl", jsonl(`0 invoke txn [["r",1,null]]`, `0 ok txn [["r",1,[]]]`, `1 ok txn [["r",1,[]]]`))
	twiceTxn := writeFile(t, dir, "twicetxn.jsonl", jsonl(`0 invoke txn [["r",1,null]]`, `0 invoke txn [["r",1,null]]`))
	queue := writeFile(t, dir, "queue.jsonl", jsonl(`0 invoke enqueue 1`, `0 ok enqueue 1`, `0 invoke dequeue`, `0 ok dequeue 1`))
	empty := t.TempDir()
	cases := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no path", []string{"check", "--workload", "register"}, "exactly one PATH"},
		{"two paths", []string{"check", "--workload", "register", valid, valid}, "exactly one PATH"},
		{"no workload, unknown shape", []string{"check", queue}, "--workload is required: the history fits no workload's shape (found ops with f dequeue (2), enqueue (2))"},
		{"unknown workload", []string{"check", "--workload", "queue", valid}, `unknown workload "queue"`},
		{"missing file", []string{"check", "--workload", "register", filepath.Join(dir, "nope.jsonl")}, "no such file"},
		{"directory without history", []string{"check", "--workload", "register", empty}, "neither history.jsonl nor history.edn"},
		{"bad format", []string{"check", "--workload", "register", "--format", "xml", valid}, `--format "xml"`},
		{"elle flags on register", []string{"check", "--workload", "register", "--consistency-models", "serializable", valid}, "apply to list-append and rw-register only"},
		{"malformed line", []string{"check", "--workload", "register", malformed}, "line 3"},
		{"unknown type", []string{"check", "--workload", "register", badType}, "line 2"},
		{"completion without invocation", []string{"check", "--workload", "register", unpaired}, "line 2"},
		{"streamed completion without invocation", []string{"check", "--workload", "list-append", unpairedTxn}, "line 3 (index 2): ok completion"},
		{"streamed invocation while outstanding", []string{"check", "--workload", "list-append", twiceTxn}, "invoked at line 1 is still outstanding"},
		{"value of the wrong shape", []string{"check", "--workload", "kv", badValue}, "not a kv history"},
		{"unknown consistency model", []string{"check", "--workload", "list-append", "--consistency-models", "bogus", valid}, "bogus"},
		{"bad timeout", []string{"check", "--workload", "register", "--timeout", "soon", valid}, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCapture(t, tc.args...)
			if code != exitBadArgs {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitBadArgs, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("stderr %q does not contain %q", stderr, tc.stderr)
			}
		})
	}
}

func TestCheckInternalError(t *testing.T) {
	old := checkerFor
	t.Cleanup(func() { checkerFor = old })
	checkerFor = func(string, json.RawMessage) (checker.Checker, error) {
		return failingChecker{fmt.Errorf("write artifact: %w", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission})}, nil
	}
	path := writeFile(t, t.TempDir(), "h.jsonl", jsonl(`0 invoke txn [["r",1,null]]`, `0 ok txn [["r",1,null]]`))
	code, _, stderr := runCapture(t, "check", "--workload", "rw-register", path)
	if code != exitInternal || !strings.Contains(stderr, "write artifact") {
		t.Fatalf("exit %d, stderr %q; want 255 naming the failure", code, stderr)
	}
}

// failingChecker fails every check with err.
type failingChecker struct{ err error }

func (failingChecker) Name() string { return "failing" }

func (c failingChecker) Check([]history.Op, checker.Options) (checker.Result, error) {
	return checker.Result{}, c.err
}
