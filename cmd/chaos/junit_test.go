package main

import (
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend"
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
			runBackend = func(context.Context, dockerbackend.Options) (harness.Backend, func(), error) {
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
