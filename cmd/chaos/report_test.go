package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/results"
)

// TestReportHistoryFile: chaos report renders a report for a history that
// has no test.json, parameters shown as unknown.
func TestReportHistoryFile(t *testing.T) {
	dir := t.TempDir()
	// Elle's own example shape: a top-level list of completions without
	// :process.
	elleEDN := writeFile(t, dir, "elle.edn", `({:type :ok, :value [[:append :x 1] [:r :y [1]]]}
 {:type :ok, :value [[:append :y 1] [:r :x [1]]]})`)
	etcd := writeFile(t, dir, "jepsen.log", "INFO  jepsen.util - 0\t:invoke\t:write\t1\n"+
		"INFO  jepsen.util - 0\t:ok\t:write\t1\n"+
		"INFO  jepsen.util - 1\t:invoke\t:read\tnil\n"+
		"INFO  jepsen.util - 1\t:ok\t:read\t2\n")
	kv := writeFile(t, dir, "kv.txt", `{:process 1, :type :invoke, :f :put, :key "9", :value "x 1 y"}
{:process 1, :type :ok, :f :put, :key "9", :value "x 1 y"}
{:process 2, :type :invoke, :f :get, :key "9", :value nil}
{:process 2, :type :ok, :f :get, :key "9", :value "x 1 y"}
`)
	cases := []struct {
		path, verdict, workload string
	}{
		{elleEDN, "INVALID", "list-append"},
		{etcd, "INVALID", "register"},
		{kv, "VALID", "kv"},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report")
			code, stdout, stderr := runCapture(t, "report", "--out", out, tc.path)
			if code != exitValid {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			if strings.TrimSpace(stdout) != filepath.Join(out, results.ReportFile) {
				t.Fatalf("stdout %q does not name the report", stdout)
			}
			b, err := os.ReadFile(filepath.Join(out, results.ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			page := string(b)
			for _, want := range []string{tc.verdict, tc.workload, "<td>seed</td><td>unknown</td>", "<td>nodes</td><td>unknown</td>", "without a test.json"} {
				if !strings.Contains(page, want) {
					t.Errorf("the report lacks %q", want)
				}
			}
			if _, err := os.Stat(filepath.Join(out, results.TimelineFile)); err != nil {
				t.Errorf("no timeline: %v", err)
			}
		})
	}
	// By default the report goes next to the history.
	if code, _, stderr := runCapture(t, "report", kv); code != exitValid {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, results.ReportFile)); err != nil {
		t.Fatalf("no report next to the history: %v", err)
	}
	// A malformed history, one of another shape, and an unwritable
	// --out are bad arguments.
	bad := writeFile(t, dir, "bad.edn", "({:type :ok")
	for _, args := range [][]string{
		{"report", bad},
		{"report", "--workload", "bank", kv},
		{"report", "--out", "/proc/nope", kv},
	} {
		if code, _, stderr := runCapture(t, args...); code != exitBadArgs {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitBadArgs, stderr)
		}
	}
}
