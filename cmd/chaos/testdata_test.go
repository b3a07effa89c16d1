package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// sharedTestdata holds public labelled histories, read in place.
const sharedTestdata = "../../../shared/testdata"

type manifest struct {
	Cases map[string]json.RawMessage `json:"cases"`
}

func readSharedManifest(t *testing.T, name string) (string, map[string]json.RawMessage) {
	t.Helper()
	dir := filepath.Join(sharedTestdata, name)
	b, err := os.ReadFile(filepath.Join(dir, "MANIFEST.json"))
	if err != nil {
		t.Skipf("shared test data not available (%v): skipping the %s histories", err, name)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s/MANIFEST.json: %v", dir, err)
	}
	if len(m.Cases) == 0 {
		t.Fatalf("%s/MANIFEST.json lists no cases", dir)
	}
	return dir, m.Cases
}

func sortedCases(cases map[string]json.RawMessage) []string {
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// verdictCode maps a manifest's expectation to the exit code it allows:
// exactly 0 or 1, or (for "not-false") anything but 1.
func wantCode(t *testing.T, v any) (code int, notFalse bool) {
	switch v {
	case true:
		return exitValid, false
	case false:
		return exitInvalid, false
	case "not-false":
		return exitValid, true
	}
	t.Fatalf("unknown expectation %v", v)
	return 0, false
}

// checkCase runs chaos check and compares the exit code with the
// manifest's verdict.
func checkCase(t *testing.T, args []string, want any) {
	t.Helper()
	code, stdout, stderr := runCapture(t, args...)
	wc, notFalse := wantCode(t, want)
	ok := code == wc
	if notFalse {
		ok = code == exitValid || code == exitUnknown
	}
	if !ok {
		t.Fatalf("chaos %s: exit %d, want the manifest's verdict %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, stdout, stderr)
	}
}

// TestSharedElleHistories checks every elle-cli history with the
// options its manifest names, as a user would: chaos check FILE.
func TestSharedElleHistories(t *testing.T) {
	dir, cases := readSharedManifest(t, "elle-cli")
	for _, name := range sortedCases(cases) {
		var c struct {
			Model         string         `json:"model"`
			Inputs        []string       `json:"inputs"`
			Options       map[string]any `json:"options"`
			ExpectedValid any            `json:"expected_valid"`
		}
		if err := json.Unmarshal(cases[name], &c); err != nil {
			t.Fatalf("case %s: %v", name, err)
		}
		t.Run(name, func(t *testing.T) {
			if len(c.Inputs) != 1 {
				t.Fatalf("%d inputs, want 1", len(c.Inputs))
			}
			args := []string{"check", "--workload", c.Model}
			for k, v := range c.Options {
				switch k {
				case "consistency-models", "anomalies":
					var names []string
					for _, x := range v.([]any) {
						names = append(names, fmt.Sprint(x))
					}
					args = append(args, "--"+k, strings.Join(names, ","))
				case "linearizable-keys?", "sequential-keys?", "wfr-keys?":
					if v == true {
						args = append(args, "--"+strings.TrimSuffix(k, "?"))
					}
				case "cycle-search-timeout":
					// Milliseconds in elle-cli; allow more on a loaded
					// machine, the verdicts do not depend on it.
				default:
					t.Logf("option %s=%v has no chaos check flag", k, v)
				}
			}
			args = append(args, filepath.Join(dir, c.Inputs[0]))
			checkCase(t, args, c.ExpectedValid)
		})
	}
}

// TestSharedPorcupineHistories checks porcupine's etcd logs (Jepsen text
// logs of a cas register) and kv logs (EDN with :key) without naming the
// workload: chaos check recognizes both.
func TestSharedPorcupineHistories(t *testing.T) {
	short := map[string]bool{"etcd_000.log": true, "etcd_002.log": true, "etcd_007.log": true, "etcd_040.log": true,
		"etcd_100.log": true, "c01-ok.txt": true, "c01-bad.txt": true, "c10-ok.txt": true, "c10-bad.txt": true}
	for _, set := range []string{"porcupine-etcd", "porcupine-kv"} {
		t.Run(set, func(t *testing.T) {
			dir, cases := readSharedManifest(t, set)
			for _, name := range sortedCases(cases) {
				var c struct {
					Expected any `json:"expected_linearizable"`
				}
				if err := json.Unmarshal(cases[name], &c); err != nil {
					t.Fatalf("case %s: %v", name, err)
				}
				if c.Expected == "skip" || (testing.Short() && !short[name]) {
					continue
				}
				t.Run(name, func(t *testing.T) {
					checkCase(t, []string{"check", filepath.Join(dir, name)}, c.Expected)
				})
			}
		})
	}
}
