// Package history defines the operation records that every test produces and
// every checker consumes, and their on-disk codecs.
//
// A history is a sequence of Jepsen-shaped operations: each client operation
// appears once as an invocation and once as a completion (ok, fail or info).
package history

import (
	"fmt"
)

// Type is the kind of an operation record.
type Type uint8

// Operation record kinds, as Jepsen names them.
const (
	// Invoke marks the start of an operation.
	Invoke Type = iota + 1
	// Ok means the operation certainly took effect.
	Ok
	// Fail means the operation certainly did not take effect.
	Fail
	// Info means the outcome is unknown: it may take effect at any later time.
	Info
)

var typeNames = [...]string{Invoke: "invoke", Ok: "ok", Fail: "fail", Info: "info"}

// String returns the Jepsen name of t.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType parses a Jepsen type name.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if n != "" && n == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("unknown op type %q (want invoke, ok, fail or info)", s)
}

// Process identifies the logical client that performed an operation.
// Non-negative values are client processes; NemesisProcess is the nemesis.
type Process int64

// NemesisProcess is the process of fault-injection records; it is written
// as the string "nemesis".
const NemesisProcess Process = -1

// IsNemesis reports whether p is the nemesis.
func (p Process) IsNemesis() bool { return p == NemesisProcess }

// String returns the process as it appears in a history.
func (p Process) String() string {
	if p == NemesisProcess {
		return "nemesis"
	}
	return fmt.Sprintf("%d", int64(p))
}

// Op is one record of a history.
//
// Value holds the decoded JSON payload: nil, bool, int64 (integral numbers),
// float64, string, []any or map[string]any. Register operations carry
// [key, value] (or [key, [old, new]] for cas); transactions carry a list of
// micro-operations [f, key, value].
type Op struct {
	Index   int64   // position in the history, 0-based
	Time    int64   // nanoseconds since the test started
	Type    Type    // invoke, ok, fail or info
	Process Process // client process, or NemesisProcess
	F       string  // the function: read, write, cas, txn, start, stop, ...
	Value   any     // payload, see above
	Error   string  // optional error text on fail or info completions
	Node    string  // optional: the node the client talked to
}

// IsClient reports whether op was performed by a client (not the nemesis).
func (op *Op) IsClient() bool { return !op.Process.IsNemesis() }
