package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// A history's shape is what its client ops look like: their f and, on
// invocations and ok completions, their value. Each check workload
// accepts one shape; a history of another shape is a bad argument, named
// as such, rather than a history the checker finds nothing in.

// opShape is the shape of one workload's ops.
type opShape struct {
	workload string
	expect   string // what the workload's ops look like, for errors
	fits     func(op *history.Op) bool
}

// shapes lists the workloads' shapes in the order a history is recognized
// by: the first shape that every client op fits names the workload.
var shapes = []opShape{
	{"list-append", `f "txn" (or none) with a list of ["append", key, value] and ["r", key, list] micro-ops`, txnFits("append", "r")},
	{"rw-register", `f "txn" (or none) with a list of ["w", key, value] and ["r", key, value] micro-ops`, txnFits("w", "r")},
	{"register", `f "read", "write" or "cas" with a value such as [key, v] or v ([key, [old, new]] or [old, new] for cas)`, registerFits},
	{"kv", `f "get", "put" or "append" (or "read", "write") with a value [key, string]`, kvFits},
	{"bank", `f "read" (completing with a map of account to balance) or "transfer" with {from, to, amount}`, bankFits},
}

func shapeOf(workload string) (opShape, bool) {
	if workload == "cas-register" {
		workload = "register"
	}
	for _, s := range shapes {
		if s.workload == workload {
			return s, true
		}
	}
	return opShape{}, false
}

// valued says whether op's value is part of its shape: a failed or
// indeterminate completion may carry anything (an error, :timed-out).
func valued(op *history.Op) bool { return op.Type == history.Invoke || op.Type == history.Ok }

func txnFits(fns ...string) func(op *history.Op) bool {
	return func(op *history.Op) bool {
		if op.F != "txn" && op.F != "" {
			return false
		}
		if !valued(op) || (op.Type == history.Invoke && op.Value == nil) {
			return true
		}
		mops, ok := op.Value.([]any)
		if !ok {
			return false
		}
		for _, m := range mops {
			mop, ok := m.([]any)
			if !ok || len(mop) < 2 || len(mop) > 3 {
				return false
			}
			f, ok := mop[0].(string)
			if !ok || !slices.Contains(fns, f) {
				return false
			}
		}
		return true
	}
}

func registerFits(op *history.Op) bool {
	switch op.F {
	case "read", "write", "cas":
	default:
		return false
	}
	if !valued(op) {
		return true
	}
	_, isMap := op.Value.(map[string]any)
	return !isMap
}

func kvFits(op *history.Op) bool {
	switch op.F {
	case "get", "put", "append", "read", "write":
	default:
		return false
	}
	if !valued(op) {
		return true
	}
	kv, ok := op.Value.([]any)
	if !ok || len(kv) != 2 {
		return false
	}
	switch kv[1].(type) {
	case string, nil:
		return true
	}
	return false
}

func bankFits(op *history.Op) bool {
	switch op.F {
	case "transfer":
		if !valued(op) {
			return true
		}
		_, ok := op.Value.(map[string]any)
		return ok
	case "read":
		if !valued(op) || op.Value == nil {
			return true
		}
		switch op.Value.(type) {
		case map[string]any, []any:
			return op.Type == history.Ok
		}
	}
	return false
}

// checkShape returns an error naming what workload expects and what the
// history holds when a client op does not fit the workload's shape.
func checkShape(workload string, ops []history.Op) error {
	sc, ok := newShapeCheck(workload)
	if !ok {
		return nil
	}
	for i := range ops {
		sc.add(&ops[i])
	}
	return sc.err()
}

// shapeCheck checks a history's ops against a workload's shape one at a
// time, so it can run while the history streams by: it keeps the first op
// that does not fit and tallies every op for the error.
type shapeCheck struct {
	workload string
	shape    opShape
	tally    opTally
	n        int        // ops seen
	bad      history.Op // the first client op that does not fit
	badPos   int        // its position, from 1; 0 when every op fits
}

func newShapeCheck(workload string) (*shapeCheck, bool) {
	s, ok := shapeOf(workload)
	return &shapeCheck{workload: workload, shape: s}, ok
}

func (c *shapeCheck) add(op *history.Op) {
	c.n++
	if !op.IsClient() {
		return
	}
	c.tally.add(op)
	if c.badPos == 0 && !c.shape.fits(op) {
		c.bad, c.badPos = *op, c.n
	}
}

func (c *shapeCheck) err() error {
	if c.badPos == 0 {
		return nil
	}
	return fmt.Errorf("%w: not a %s history: expected %s; found %s; the first op that does not fit is op %d (index %d): %s",
		history.ErrMalformed, c.workload, c.shape.expect, c.tally.String(), c.badPos, c.bad.Index, clip(string(history.AppendJSON(nil, &c.bad)), 300))
}

// recognize names the workload whose shape every client op of the
// history fits.
func recognize(ops []history.Op) (string, error) {
	for _, s := range shapes {
		fit := true
		for i := range ops {
			if ops[i].IsClient() && !s.fits(&ops[i]) {
				fit = false
				break
			}
		}
		if fit {
			return s.workload, nil
		}
	}
	return "", fmt.Errorf("the history fits no workload's shape (found %s)", describeOps(ops))
}

// describeOps tallies a history's client ops by f and, for transactions,
// by micro-op function.
func describeOps(ops []history.Op) string {
	var t opTally
	for i := range ops {
		if ops[i].IsClient() {
			t.add(&ops[i])
		}
	}
	return t.String()
}

// opTally counts client ops by f and, for transactions, micro-ops by
// function.
type opTally struct{ fs, mfs map[string]int }

func (t *opTally) add(op *history.Op) {
	if t.fs == nil {
		t.fs, t.mfs = map[string]int{}, map[string]int{}
	}
	f := op.F
	if f == "" {
		f = "(none)"
	}
	t.fs[f]++
	if mops, ok := op.Value.([]any); ok && (op.F == "txn" || op.F == "") {
		for _, m := range mops {
			if mop, ok := m.([]any); ok && len(mop) > 0 {
				if name, ok := mop[0].(string); ok {
					t.mfs[name]++
				}
			}
		}
	}
}

func (t *opTally) String() string {
	if len(t.fs) == 0 {
		return "no client ops"
	}
	out := "ops with f " + tally(t.fs)
	if len(t.mfs) > 0 {
		out += " and micro-ops " + tally(t.mfs)
	}
	return out
}

func tally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s (%d)", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
