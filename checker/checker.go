// Package checker holds what every checker shares: the verdict type and the
// result shape (the one elle-cli and Jepsen print), and the Checker
// interface a workload returns to judge its histories. Checkers are pure
// functions from a history to a Result; the sub-packages implement them.
package checker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/chaoskv/chaos/history"
)

// Validity is a checker's verdict: true, false or unknown.
type Validity int8

// The three verdicts.
const (
	Unknown Validity = iota
	Valid
	Invalid
)

// String returns "true", "false" or "unknown".
func (v Validity) String() string {
	switch v {
	case Valid:
		return "true"
	case Invalid:
		return "false"
	default:
		return "unknown"
	}
}

// MarshalJSON encodes the verdict as Jepsen does: true, false or "unknown".
func (v Validity) MarshalJSON() ([]byte, error) {
	switch v {
	case Valid:
		return []byte("true"), nil
	case Invalid:
		return []byte("false"), nil
	default:
		return []byte(`"unknown"`), nil
	}
}

// UnmarshalJSON accepts true, false, "unknown" (and the strings "true" and
// "false").
func (v *Validity) UnmarshalJSON(b []byte) error {
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return fmt.Errorf("validity: %w", err)
	}
	switch x {
	case true, "true":
		*v = Valid
	case false, "false":
		*v = Invalid
	case "unknown", nil:
		*v = Unknown
	default:
		return fmt.Errorf("validity: want true, false or \"unknown\", got %s", b)
	}
	return nil
}

// Merge combines verdicts of independent checks: any invalid makes the
// whole invalid; otherwise any unknown makes it unknown.
func Merge(vs ...Validity) Validity {
	out := Valid
	for _, v := range vs {
		switch {
		case v == Invalid:
			return Invalid
		case v == Unknown:
			out = Unknown
		}
	}
	return out
}

// ExitCode maps a verdict to Jepsen's exit codes: 0 valid, 1 invalid,
// 2 unknown.
func (v Validity) ExitCode() int {
	switch v {
	case Valid:
		return 0
	case Invalid:
		return 1
	default:
		return 2
	}
}

// Result is what a checker returns. Anomalies maps an anomaly type (such as
// "G1c" or "nonlinearizable") to its instances; each instance is a
// JSON-encodable value that carries the ops involved and a human-readable
// explanation.
type Result struct {
	Checker      string           `json:"checker"`
	Valid        Validity         `json:"valid"`
	AnomalyTypes []string         `json:"anomaly-types"`
	Anomalies    map[string][]any `json:"anomalies"`
	// Not lists the weakest consistency models the history violates;
	// AlsoNot every stronger model, which it violates too.
	Not     []string `json:"not"`
	AlsoNot []string `json:"also-not,omitempty"`
	// Summary is one line a person reads first.
	Summary string `json:"summary"`
	// Stats are counters the checker wants to show (ops checked, keys,
	// cycles searched, elapsed time, ...).
	Stats map[string]any `json:"stats,omitempty"`
	// Files names artifacts the checker wrote (such as a visualization),
	// relative to the directory it was told to write into.
	Files []string `json:"files,omitempty"`
}

// Options are what a checker is told besides the history: how long it may
// search and where its artifacts go.
type Options struct {
	// Timeout bounds the search; past it the verdict is unknown. Zero
	// means no limit.
	Timeout time.Duration
	// Directory, when not empty, receives the checker's artifacts (such as
	// a visualization of a failing key).
	Directory string
}

// Checker judges histories. A workload returns the checker configured for
// it (model, consistency models, bank total, ...); its JSON encoding, an
// object whose "checker" field names the kind, is what test.json records so
// a later check rebuilds the same checker.
type Checker interface {
	// Name is the name a result of this checker goes by when the checker
	// did not produce one itself.
	Name() string
	// Check judges ops. An error means the history could not be judged
	// (malformed, of another workload's shape) or an artifact could not
	// be written.
	Check(ops []history.Op, opts Options) (Result, error)
}

// Streamer is a Checker that can also take a history op by op as it is
// read, so that a history of millions of operations is never held whole.
type Streamer interface {
	Checker
	// Stream returns take, to be given every op of the history in order
	// (it may clear what it keeps of an op, such as its value), and check,
	// which then judges what take took as Check would judge the ops.
	Stream() (take func(*history.Op) error, check func(Options) (Result, error))
}

// Check runs c on ops, except that a history without client operations is
// unknown whatever the checker, since there is nothing to judge.
func Check(c Checker, ops []history.Op, opts Options) (Result, error) {
	for i := range ops {
		if ops[i].IsClient() {
			return c.Check(ops, opts)
		}
	}
	return Result{Checker: c.Name(), Valid: Unknown, Anomalies: map[string][]any{},
		Summary: "unknown: the history holds no client operations, so there is nothing to check",
		Stats:   map[string]any{"ops": len(ops), "client-ops": 0}}, nil
}
