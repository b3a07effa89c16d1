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
	"runtime"
	"sync"
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
	// of each key that is not linearizable (linearizability-N.html).
	Directory string
}

// Anomaly is the only anomaly type this checker reports.
const Anomaly = "nonlinearizable"

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
	// File names porcupine's visualization of this key, relative to
	// Options.Directory (empty when none was written).
	File string `json:"file,omitempty"`
}

// prefixTail bounds how many prefix operations a Violation lists.
const prefixTail = 8

// Check reports whether ops, a history of the given model ("register",
// "cas-register" or "kv"), is linearizable. An error means the model name
// is unknown or the history is malformed (the error then wraps
// history.ErrMalformed); it never means the history is not linearizable.
//
// The search is bounded by Options.Timeout. Finding a violation then costs
// a second search, of each key alone, to name the failing keys: it takes
// at most about Options.Timeout again (at least a couple of seconds).
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
	// The first pass is porcupine's own partitioned check: it stops at the
	// first illegal key and skips the bookkeeping for visualizations, so
	// valid histories pay nothing for explanations.
	verdict := porcupine.CheckOperationsTimeout(pm, pops, opts.Timeout)
	firstPass := time.Since(start)
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
		if err := explain(s, ops, pm, parts, firstPass, opts, &res); err != nil {
			return res, err
		}
	}
	res.Stats["elapsed"] = time.Since(start).String()
	return res, nil
}

// maxVisualizations bounds how many per-key pages a check writes.
const maxVisualizations = 8

// explain finds the keys that are not linearizable by checking each key on
// its own, in parallel, and describes each. The first pass proved that at
// least one exists and found it within firstPass, so each key gets twice
// that (at least a second) and the whole search twice that (at least two
// seconds, at most Options.Timeout when set); keys not decided in time are
// counted as undecided, never reported.
func explain(s *spec, ops []history.Op, pm porcupine.Model, parts [][]porcupine.Operation, firstPass time.Duration, opts Options, res *checker.Result) error {
	perKey := max(time.Second, 2*firstPass)
	budget := max(2*time.Second, 2*firstPass)
	if opts.Timeout > 0 && budget > opts.Timeout {
		budget = max(opts.Timeout, time.Second)
	}
	deadline := time.Now().Add(budget)
	type outcome struct {
		verdict porcupine.CheckResult
		info    porcupine.LinearizationInfo
		skipped bool
	}
	outcomes := make([]outcome, len(parts))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(parts)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				left := time.Until(deadline)
				if left <= 0 {
					outcomes[p].skipped = true
					continue
				}
				outcomes[p].verdict, outcomes[p].info = porcupine.CheckOperationsVerbose(pm, parts[p], min(perKey, left))
			}
		}()
	}
	for p := range parts {
		next <- p
	}
	close(next)
	wg.Wait()

	undecided := 0
	for p, o := range outcomes {
		switch {
		case o.skipped || o.verdict == porcupine.Unknown:
			undecided++
			continue
		case o.verdict != porcupine.Illegal:
			continue
		}
		var longest []porcupine.Operation
		if partials := o.info.PartialLinearizationsOperations(); len(partials) == 1 {
			for _, l := range partials[0] {
				if len(l) > len(longest) {
					longest = l
				}
			}
		}
		v := violation(s, ops, parts[p], longest)
		if opts.Directory != "" && len(res.Anomalies[Anomaly]) < maxVisualizations {
			name := fmt.Sprintf("linearizability-%d.html", len(res.Anomalies[Anomaly])+1)
			if err := visualize(pm, o.info, opts.Directory, name); err != nil {
				return err
			}
			v.File = name
			res.Files = append(res.Files, name)
		}
		res.Anomalies[Anomaly] = append(res.Anomalies[Anomaly], v)
	}
	res.Stats["keys-undecided"] = undecided
	found := len(res.Anomalies[Anomaly])
	if found == 0 {
		res.Anomalies[Anomaly] = append(res.Anomalies[Anomaly], Violation{
			Explanation: fmt.Sprintf("some key is not linearizable, but none of the %d keys could be checked again alone in the time allowed", len(parts)),
		})
		res.Summary = "not linearizable; " + res.Anomalies[Anomaly][0].(Violation).Explanation
		return nil
	}
	res.Summary = fmt.Sprintf("not linearizable: %d of %d keys; %s", found, len(parts),
		res.Anomalies[Anomaly][0].(Violation).Explanation)
	if undecided > 0 {
		res.Summary += fmt.Sprintf(" (%d keys undecided)", undecided)
	}
	return nil
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
			where := fmt.Sprintf("line %d", i+1)
			if comp != nil {
				where = fmt.Sprintf("lines %d-%d", i+1, j+1)
			}
			return nil, st, fmt.Errorf("%s (index %d): %w: %w", where, inv.Index, history.ErrMalformed, err)
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

// visualize writes porcupine's page for one key's check into dir.
func visualize(pm porcupine.Model, info porcupine.LinearizationInfo, dir, name string) error {
	var buf bytes.Buffer
	if err := safeVisualize(pm, info, &buf); err != nil {
		return fmt.Errorf("linearizability: visualize: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("linearizability: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("linearizability: write visualization: %w", err)
	}
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
