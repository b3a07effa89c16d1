package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

type junitDoc struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readJUnit(t *testing.T, path string) junitDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d junitDoc
	if err := xml.Unmarshal(b, &d); err != nil {
		t.Fatalf("junit: %v\n%s", err, b)
	}
	return d
}

// TestRunJUnitWithTestCount runs the test three times against a store
// that starts lying on its second cluster: --test-count stops after the
// second run, and the JUnit file holds both, the second failing with the
// anomaly.
func TestRunJUnitWithTestCount(t *testing.T) {
	old := runBackend
	t.Cleanup(func() { runBackend = old })
	for _, tc := range []struct {
		name     string
		lieFrom  int // the Setup from which the store lies (0: never)
		code     int
		suites   int
		failures int
	}{
		{"honest", 0, exitValid, 3, 0},
		{"lies on the second run", 2, exitInvalid, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setups := 0
			b := &memBackend{sut: func() workloads.SUT {
				setups++
				if tc.lieFrom > 0 && setups >= tc.lieFrom {
					return liarSUT{memkv.New(memkv.Options{})}
				}
				return memkv.New(memkv.Options{})
			}}
			runBackend = func(context.Context, kvnodedb.Options) (harness.Backend, func(), error) {
				return b, func() {}, nil
			}
			dir := t.TempDir()
			junit := filepath.Join(dir, "junit.xml")
			code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", "none", "--time-limit", "200ms",
				"--rate", "300", "--store", filepath.Join(dir, "store"), "--seed", "5", "--test-count", "3", "--junit", junit)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			d := readJUnit(t, junit)
			if len(d.Suites) != tc.suites || d.Failures != tc.failures || d.Errors != 0 {
				t.Fatalf("junit: %d suites, %d failures, %d errors; want %d, %d, 0", len(d.Suites), d.Failures, d.Errors, tc.suites, tc.failures)
			}
			if d.Tests != 2*tc.suites {
				t.Errorf("junit: %d test cases, want a run case and a checker case per run (%d)", d.Tests, 2*tc.suites)
			}
			if tc.failures > 0 {
				last := d.Suites[len(d.Suites)-1]
				var texts []string
				for _, c := range last.Cases {
					if c.Failure != nil {
						texts = append(texts, c.Failure.Message+"\n"+c.Failure.Text)
					}
				}
				all := strings.Join(texts, "\n")
				if !strings.Contains(all, "nonlinearizable: ") || !strings.Contains(all, "not linearizable") {
					t.Errorf("the failure does not carry the anomaly summary:\n%s", all)
				}
				for _, c := range d.Suites[0].Cases {
					if c.Failure != nil {
						t.Errorf("the first, honest run has a failing case %s", c.Name)
					}
				}
			}
		})
	}
}

func TestRunJUnitBadPath(t *testing.T) {
	code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--junit", "/nonexistent/dir/junit.xml")
	if code != exitBadArgs || !strings.Contains(stderr, "--junit") {
		t.Fatalf("exit %d, stderr %q; want %d naming --junit", code, stderr, exitBadArgs)
	}
}

func TestCheckJUnit(t *testing.T) {
	store := storeOneRun(t)
	latest, err := results.Latest(store)
	if err != nil {
		t.Fatal(err)
	}
	hist := filepath.Join(latest, results.HistoryFile)
	junit := filepath.Join(t.TempDir(), "check.xml")
	if code, stderr := runCLI(t, "check", "--workload", "cas-register", "--junit", junit, hist); code != exitValid {
		t.Fatalf("check: exit %d\n%s", code, stderr)
	}
	if d := readJUnit(t, junit); len(d.Suites) != 1 || d.Tests != 2 || d.Failures != 0 || d.Errors != 0 {
		t.Fatalf("junit of a valid history: %+v", d)
	}

	// The same history with one read answered by a value nobody wrote.
	ops, err := history.ReadFile(hist, "")
	if err != nil {
		t.Fatal(err)
	}
	lied := false
	for i := range ops {
		if op := &ops[i]; op.Type == history.Ok && op.F == "read" {
			op.Value = []any{op.Value.([]any)[0], "999999"}
			lied = true
			break
		}
	}
	if !lied {
		t.Fatal("the history has no ok read to corrupt")
	}
	var buf bytes.Buffer
	w := history.NewWriter(&buf)
	for i := range ops {
		w.Write(&ops[i])
	}
	w.Flush()
	bad := filepath.Join(t.TempDir(), "history.jsonl")
	os.WriteFile(bad, buf.Bytes(), 0o644)
	if code, stderr := runCLI(t, "check", "--workload", "cas-register", "--junit", junit, bad); code != exitInvalid {
		t.Fatalf("check of a lying history: exit %d\n%s", code, stderr)
	}
	if d := readJUnit(t, junit); d.Failures != 2 {
		t.Fatalf("junit of an invalid history: %d failures, want the run and the checker", d.Failures)
	}
}
