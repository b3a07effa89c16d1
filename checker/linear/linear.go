// Package linear checks histories of single-key operations for
// linearizability with porcupine, one key at a time.
//
// Operations follow Jepsen's semantics: an ok op happened between its
// invocation and its completion; a fail op never happened and is dropped; an
// info op (or an invocation that never completed) may take effect at any
// time after its invocation or never, so porcupine sees it return at
// infinity; a read whose outcome is unknown constrains nothing and is
// dropped.
//
// Real-time order is the order of the history itself: an op completed
// before another was invoked exactly when its completion comes first in the
// history, which is how Jepsen and our harness write histories.
package linear

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// Options tune a check.
type Options struct {
	// Timeout bounds the search; when it runs out the verdict is unknown.
	// Zero means no limit.
	Timeout time.Duration
	// Directory, when not empty, receives porcupine's HTML visualization
	// of the keys that are not linearizable.
	Directory string
}

// Anomaly is the only anomaly type this checker reports.
const Anomaly = "nonlinearizable"

// VisualizationFile is the name of the visualization written into
// Options.Directory.
const VisualizationFile = "linearizability.html"

// never is the return time of ops whose outcome is unknown.
const never = math.MaxInt64

// Violation explains why one key is not linearizable.
type Violation struct {
	// Key is the key, as it appears in the history (nil for an unkeyed
	// register).
	Key any `json:"key"`
	// Op is the invocation and completion of the operation that cannot be
	// linearized after the longest linearizable prefix.
	Op []history.Op `json:"op,omitempty"`
	// PrefixLength is the number of operations in the longest
	// linearizable prefix found, and Prefix its last few operations
	// (invocation and completion), in linearization order.
	PrefixLength int          `json:"prefix-length"`
	Prefix       []history.Op `json:"prefix,omitempty"`
	// State is the key's value after that prefix.
	State string `json:"state"`
	// Explanation is the sentence a person reads.
	Explanation string `json:"explanation"`
}

// prefixTail bounds how many prefix operations a Violation lists.
const prefixTail = 8

// Check reports whether ops, a history of the given model ("register",
// "cas-register" or "kv"), is linearizable. An error means the model name
// is unknown or the history is malformed (the error then wraps
// history.ErrMalformed); it never means the history is not linearizable.
func Check(model string, ops []history.Op, opts Options) (checker.Result, error) {
	start := time.Now()
	s, err := lookup(model)
	if err != nil {
		return checker.Result{}, err
	}
	pairs, err := history.Pair(ops)
	if err != nil {
		return checker.Result{}, fmt.Errorf("linearizability: %w", err)
	}
	pops, stats, err := operations(s, ops, pairs)
	if err != nil {
		return checker.Result{}, fmt.Errorf("linearizability: %w", err)
	}
	pm := s.porcupineModel()
	parts := partition(pops)
	verdict, info := porcupine.CheckOperationsVerbose(pm, pops, opts.Timeout)
	res := checker.Result{
		Checker:   "linearizable",
		Anomalies: map[string][]any{},
		Stats: map[string]any{
			"model":         s.name,
			"operations":    len(pops),
			"keys":          len(parts),
			"indeterminate": stats.indeterminate,
			"dropped-fail":  stats.failed,
			"dropped-reads": stats.unknownReads,
		},
	}
	switch verdict {
	case porcupine.Ok:
		res.Valid = checker.Valid
		res.Summary = fmt.Sprintf("linearizable: %d operations on %d keys", len(pops), len(parts))
	case porcupine.Unknown:
		res.Valid = checker.Unknown
		res.Summary = fmt.Sprintf("unknown: the search timed out after %s (%d operations on %d keys)",
			opts.Timeout, len(pops), len(parts))
	default:
		res.Valid = checker.Invalid
		res.AnomalyTypes = []string{Anomaly}
		res.Not = []string{"linearizable"}
		timedOut := opts.Timeout > 0 && time.Since(start) >= opts.Timeout
		failing := explain(s, ops, parts, info.PartialLinearizationsOperations(), &res)
		res.Summary = fmt.Sprintf("not linearizable: %d of %d keys; %s", len(failing), len(parts),
			res.Anomalies[Anomaly][0].(Violation).Explanation)
		if timedOut {
			res.Summary += " (the search timed out, so some listed keys may only be undecided)"
		}
		if opts.Directory != "" {
			if err := visualize(pm, parts, failing, info, opts, start, &res); err != nil {
				return res, err
			}
		}
	}
	res.Stats["elapsed"] = time.Since(start).String()
	return res, nil
}

type opStats struct {
	indeterminate, failed, unknownReads int
}

// operations turns a paired history into porcupine operations, applying
// Jepsen's semantics for fail and info.
func operations(s *spec, ops []history.Op, pairs history.Pairs) ([]porcupine.Operation, opStats, error) {
	var st opStats
	clients := make(map[history.Process]int)
	pops := make([]porcupine.Operation, 0, len(ops)/2)
	for i := range ops {
		inv := &ops[i]
		if inv.Type != history.Invoke || inv.Process.IsNemesis() {
			continue
		}
		j, done := pairs.Completion(i)
		var comp *history.Op
		ret := int64(never)
		if done {
			switch ops[j].Type {
			case history.Fail:
				st.failed++
				continue
			case history.Ok:
				comp = &ops[j]
				ret = int64(j)
			}
		} else {
			j = history.NoPartner
		}
		in, out, err := s.decode(inv, comp)
		if err != nil {
			line := i + 1
			if comp != nil {
				line = j + 1
			}
			return nil, st, fmt.Errorf("line %d (index %d): %w: %w", line, ops[line-1].Index, history.ErrMalformed, err)
		}
		if comp == nil {
			if in.act == actRead {
				st.unknownReads++
				continue
			}
			st.indeterminate++
		}
		c, ok := clients[inv.Process]
		if !ok {
			c = len(clients)
			clients[inv.Process] = c
		}
		pops = append(pops, porcupine.Operation{
			ClientId: c,
			Input:    in,
			Call:     int64(i),
			Output:   out,
			Return:   ret,
			Metadata: meta{inv: i, comp: j, index: inv.Index, process: inv.Process},
		})
	}
	return pops, st, nil
}

// explain adds a Violation for every partition that has no complete
// linearization, and returns those partitions' numbers.
func explain(s *spec, ops []history.Op, parts [][]porcupine.Operation, partials [][][]porcupine.Operation, res *checker.Result) []int {
	var failing []int
	for p, part := range parts {
		var longest []porcupine.Operation
		if p < len(partials) {
			for _, l := range partials[p] {
				if len(l) > len(longest) {
					longest = l
				}
			}
		}
		if len(longest) == len(part) {
			continue
		}
		failing = append(failing, p)
		res.Anomalies[Anomaly] = append(res.Anomalies[Anomaly], violation(s, ops, part, longest))
	}
	if len(failing) == 0 {
		// porcupine found a violation but reported no partial
		// linearizations (it cannot, but say so rather than claim a key).
		res.Anomalies[Anomaly] = append(res.Anomalies[Anomaly], Violation{
			Explanation: "porcupine reported the history illegal without a partial linearization",
		})
	}
	return failing
}

func violation(s *spec, ops []history.Op, part, longest []porcupine.Operation) Violation {
	key := part[0].Input.(input).key
	state := s.init
	in := make(map[int]bool, len(longest))
	for _, op := range longest {
		_, state = s.step(state, op.Input.(input), op.Output.(output))
		in[op.Metadata.(meta).inv] = true
	}
	v := Violation{Key: key.any(), PrefixLength: len(longest), State: state.String()}
	tail := longest
	if len(tail) > prefixTail {
		tail = tail[len(tail)-prefixTail:]
	}
	for _, op := range tail {
		v.Prefix = append(v.Prefix, opRecords(ops, op.Metadata.(meta))...)
	}
	// The op that blocks the search is the first to complete among those
	// left out: every linearization must place it before its completion.
	var stuck *porcupine.Operation
	for i := range part {
		op := &part[i]
		if in[op.Metadata.(meta).inv] {
			continue
		}
		if stuck == nil || op.Return < stuck.Return {
			stuck = op
		}
	}
	if stuck == nil {
		v.Explanation = fmt.Sprintf("key %s: no linearization found", key)
		return v
	}
	m := stuck.Metadata.(meta)
	v.Op = opRecords(ops, m)
	where := fmt.Sprintf("invoked at line %d", m.inv+1)
	if m.comp != history.NoPartner {
		where = fmt.Sprintf("lines %d-%d", m.inv+1, m.comp+1)
	}
	v.Explanation = fmt.Sprintf("key %s: %s by process %s (%s) cannot be linearized after the longest linearizable prefix of %d operations, which leaves the value %s",
		key, describeInput(stuck.Input.(input), stuck.Output.(output)), m.process, where, len(longest), state)
	return v
}

func opRecords(ops []history.Op, m meta) []history.Op {
	recs := []history.Op{ops[m.inv]}
	if m.comp != history.NoPartner {
		recs = append(recs, ops[m.comp])
	}
	return recs
}

// visualize writes porcupine's visualization of the failing keys. When only
// some keys fail, those are checked again on their own so the page shows
// nothing else.
func visualize(pm porcupine.Model, parts [][]porcupine.Operation, failing []int, info porcupine.LinearizationInfo, opts Options, start time.Time, res *checker.Result) error {
	if len(failing) == 0 {
		return nil
	}
	if len(failing) < len(parts) {
		var sub []porcupine.Operation
		for _, p := range failing {
			sub = append(sub, parts[p]...)
		}
		timeout := time.Duration(0)
		if opts.Timeout > 0 {
			// The failing keys were decided within the budget once, so
			// the same budget again is enough for them alone.
			timeout = opts.Timeout
		}
		_, info = porcupine.CheckOperationsVerbose(pm, sub, timeout)
	}
	var buf bytes.Buffer
	if err := safeVisualize(pm, info, &buf); err != nil {
		return fmt.Errorf("linearizability: visualize: %w", err)
	}
	if err := os.MkdirAll(opts.Directory, 0o755); err != nil {
		return fmt.Errorf("linearizability: %w", err)
	}
	path := filepath.Join(opts.Directory, VisualizationFile)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("linearizability: write visualization: %w", err)
	}
	res.Files = append(res.Files, VisualizationFile)
	return nil
}

// safeVisualize turns a panic inside porcupine's visualization into an
// error, so a rendering problem never takes the verdict down with it.
func safeVisualize(pm porcupine.Model, info porcupine.LinearizationInfo, buf *bytes.Buffer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("porcupine panicked: %v", r)
		}
	}()
	return porcupine.Visualize(pm, info, buf)
}
