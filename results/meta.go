package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/chaoskv/chaos/checker"
)

// Run statuses recorded in test.json.
const (
	StatusRunning     = "running"
	StatusDone        = "done"
	StatusInterrupted = "interrupted"
	StatusError       = "error"
)

// Test is test.json: what was run, with which parameters, by which build.
type Test struct {
	Name   string     `json:"name"`
	Start  time.Time  `json:"start"`
	End    *time.Time `json:"end,omitempty"`
	Status string     `json:"status"`
	Seed   int64      `json:"seed"`
	// Parameters holds every parameter of the run, flags and defaults alike.
	Parameters Values   `json:"parameters"`
	Versions   Versions `json:"versions"`
	// Error says why a run that did not finish stopped.
	Error string `json:"error,omitempty"`
	// Timings holds the durations of setup, first op and teardown.
	Timings *Timings `json:"timings,omitempty"`
}

// Versions identifies the software under test and the harness.
type Versions struct {
	Go       string `json:"go"`
	Module   string `json:"module,omitempty"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// Kvnode identifies the node binary the cluster ran, when known.
	Kvnode string `json:"kvnode,omitempty"`
}

// BuildVersions reads the running binary's build information.
func BuildVersions() Versions {
	v := Versions{Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// Summary is results.json: the verdict and every checker's result.
type Summary struct {
	Valid checker.Validity `json:"valid"`
	// Results maps a check's name to its result.
	Results map[string]checker.Result `json:"results"`
	// Stats are the run's counters (ops by type, faults, durations).
	Stats Values `json:"stats,omitempty"`
	// Notes are remarks a person should read with the verdict, such as
	// final reads that never succeeded.
	Notes []string `json:"notes,omitempty"`
}

// Values holds parameters or counters of any JSON shape. Decoded from
// JSON, a whole number within int64's range becomes an int64 and any
// other number a float64,
// at every depth: a seed or a count read back from test.json or
// results.json prints as the integer it was, not as 3.7e+15.
type Values map[string]any

// UnmarshalJSON decodes v, keeping whole numbers integers.
func (v *Values) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	for k, x := range m {
		m[k] = numbers(x)
	}
	*v = m
	return nil
}

// numbers replaces the json.Numbers in x by int64 or float64.
func numbers(x any) any {
	switch t := x.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, err := t.Float64()
		if err != nil {
			return string(t)
		}
		// 1e3 and 100.0 are whole too; a float64 below 2^63 in magnitude
		// converts exactly.
		if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f)
		}
		return f
	case []any:
		for i := range t {
			t[i] = numbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = numbers(t[k])
		}
	}
	return x
}

// ReadTest reads a run's test.json.
func ReadTest(dir string) (Test, error) {
	var t Test
	err := readJSON(dir, TestFile, &t)
	return t, err
}

// ReadSummary reads a run's results.json.
func ReadSummary(dir string) (Summary, error) {
	var s Summary
	err := readJSON(dir, ResultsFile, &s)
	return s, err
}

func readJSON(dir, name string, v any) error {
	b, err := os.ReadFile(dir + string(os.PathSeparator) + name)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s in %s: %w", name, dir, err)
	}
	return nil
}
