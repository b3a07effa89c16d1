package sim

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/linear"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
)

// appendInput is an append or read in the append-order model: an append of
// the token at position pos of the final value, or a read that saw the
// first n tokens.
type appendInput struct {
	key    string
	append bool
	pos    int
	n      int
}

// appendOrderModel's state is how many tokens of the final value have been
// appended. Every token in the final value took effect, and the final read
// fixes the order in which they did, so an append is only possible as the
// next position; this keeps porcupine's search linear where the plain
// string model (checker/linear's "kv") explodes with concurrent appends.
var appendOrderModel = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		idx := map[string]int{}
		var out [][]porcupine.Operation
		for _, op := range ops {
			k := op.Input.(appendInput).key
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, nil)
			}
			out[i] = append(out[i], op)
		}
		return out
	},
	Init: func() any { return 0 },
	Step: func(state, input, _ any) (bool, any) {
		s, in := state.(int), input.(appendInput)
		if in.append {
			return s == in.pos-1, in.pos
		}
		return s == in.n, s
	},
	Hash: func(state any) uint64 { return uint64(state.(int)) },
	DescribeOperation: func(input, _ any) string {
		in := input.(appendInput)
		if in.append {
			return fmt.Sprintf("append(%s, token #%d)", in.key, in.pos)
		}
		return fmt.Sprintf("read(%s) -> %d tokens", in.key, in.n)
	},
}

// checkAppendOrder checks an append history for linearizability against
// the order the final read of each key shows. Reads that are not a prefix
// of the final value are reported directly; tokens missing from the final
// value are left to checkAppends.
func checkAppendOrder(h []history.Op, timeout time.Duration) checker.Result {
	res := checker.Result{Checker: "linearizable", Anomalies: map[string][]any{}, Stats: map[string]any{"model": "append-order"}}
	pairs, err := history.Pair(h)
	if err != nil {
		res.Summary = "cannot check: " + err.Error()
		return res
	}
	// The final value of each key: its last ok read.
	final := map[string][]string{}
	for i := range h {
		op := &h[i]
		if op.Type != history.Ok || op.F != "read" || !op.IsClient() {
			continue
		}
		if kv, ok := op.Value.([]any); ok && len(kv) == 2 {
			s, _ := kv[1].(string)
			final[string(history.AppendValue(nil, kv[0]))] = strings.Fields(s)
		}
	}
	pos := map[string]map[string]int{}
	for k, toks := range final {
		pos[k] = map[string]int{}
		for i, t := range toks {
			if _, dup := pos[k][t]; !dup {
				pos[k][t] = i + 1
			}
		}
	}
	var ops []porcupine.Operation
	for i := range h {
		inv := &h[i]
		if inv.Type != history.Invoke || !inv.IsClient() {
			continue
		}
		kv, ok := inv.Value.([]any)
		if !ok || len(kv) != 2 {
			res.Summary = fmt.Sprintf("cannot check: op %d: value is not [key, v]", inv.Index)
			return res
		}
		key := string(history.AppendValue(nil, kv[0]))
		j, done := pairs.Completion(i)
		if done && h[j].Type == history.Fail {
			continue
		}
		known := done && h[j].Type == history.Ok
		ret := int64(math.MaxInt64)
		if known {
			ret = h[j].Time
		}
		switch inv.F {
		case "append":
			tok, _ := kv[1].(string)
			p, in := pos[key][strings.TrimSpace(tok)]
			if !in {
				continue // never took effect (info), or lost (checkAppends says so)
			}
			ops = append(ops, porcupine.Operation{ClientId: int(inv.Process), Input: appendInput{key: key, append: true, pos: p}, Call: inv.Time, Return: ret})
		case "read":
			if !known {
				continue
			}
			ckv, _ := h[j].Value.([]any)
			s, _ := ckv[1].(string)
			toks := strings.Fields(s)
			for n, t := range toks {
				if n >= len(final[key]) || final[key][n] != t {
					res.Anomalies["nonlinearizable"] = append(res.Anomalies["nonlinearizable"],
						fmt.Sprintf("key %s: read (op %d) is not a prefix of the final value: token %d is %s", key, h[j].Index, n+1, t))
					break
				}
			}
			ops = append(ops, porcupine.Operation{ClientId: int(inv.Process), Input: appendInput{key: key, n: len(toks)}, Call: inv.Time, Return: ret})
		default:
			res.Summary = fmt.Sprintf("cannot check: op %d: unknown f %q for the append workload", inv.Index, inv.F)
			return res
		}
	}
	res.Stats["operations"] = len(ops)
	if len(res.Anomalies["nonlinearizable"]) > 0 {
		res.Valid = checker.Invalid
		res.AnomalyTypes, res.Not = []string{"nonlinearizable"}, []string{"linearizable"}
		res.Summary = "not linearizable: " + res.Anomalies["nonlinearizable"][0].(string)
		return res
	}
	verdict, info := porcupine.CheckOperationsVerbose(appendOrderModel, ops, timeout)
	switch verdict {
	case porcupine.Ok:
		res.Valid = checker.Valid
		res.Summary = fmt.Sprintf("linearizable: %d operations on %d keys", len(ops), len(final))
	case porcupine.Illegal:
		res.Valid = checker.Invalid
		res.AnomalyTypes, res.Not = []string{"nonlinearizable"}, []string{"linearizable"}
		for _, part := range info.PartialLinearizationsOperations() {
			longest := 0
			for _, p := range part {
				longest = max(longest, len(p))
			}
			res.Anomalies["nonlinearizable"] = append(res.Anomalies["nonlinearizable"],
				fmt.Sprintf("no order of the appends and reads fits real time; the longest linearizable prefix has %d operations", longest))
		}
		if len(res.Anomalies["nonlinearizable"]) == 0 {
			res.Anomalies["nonlinearizable"] = []any{"no order of the appends and reads fits real time"}
		}
		res.Summary = "not linearizable: " + res.Anomalies["nonlinearizable"][0].(string)
	default:
		res.Valid = checker.Unknown
		res.Summary = fmt.Sprintf("unknown: the search timed out after %v", timeout)
	}
	return res
}

// Check judges a simulator history of the given workload: linearizability
// per key (porcupine, giving up as unknown after opts.Timeout), and for the
// append workload also that the final read of each key holds every
// acknowledged token exactly once. For the register workload,
// opts.Directory receives porcupine's visualization of failing keys.
func Check(workload string, h []history.Op, opts linear.Options) checker.Result {
	timeout := opts.Timeout
	if workload != WorkloadAppend {
		c, err := workloads.CheckerFor(workload, nil)
		if err != nil {
			return checker.Result{Checker: "linearizable", Valid: checker.Unknown, Summary: "cannot check: " + err.Error()}
		}
		res, err := c.Check(h, checker.Options{Timeout: opts.Timeout, Directory: opts.Directory})
		if err != nil {
			return checker.Result{Checker: "linearizable", Valid: checker.Unknown, Summary: "cannot check: " + err.Error()}
		}
		return res
	}
	res := checkAppendOrder(h, timeout)
	anomalies, err := checkAppends(h)
	if err != nil {
		res.Valid = checker.Merge(res.Valid, checker.Unknown)
		res.Summary += "; append check impossible: " + err.Error()
		return res
	}
	if len(anomalies) > 0 {
		if res.Anomalies == nil {
			res.Anomalies = map[string][]any{}
		}
		types := map[string]bool{}
		for _, a := range anomalies {
			res.Anomalies[a.kind] = append(res.Anomalies[a.kind], a.text)
			types[a.kind] = true
		}
		for t := range types {
			res.AnomalyTypes = append(res.AnomalyTypes, t)
		}
		sort.Strings(res.AnomalyTypes)
		res.Valid = checker.Invalid
		res.Summary = fmt.Sprintf("%s; %s (and %d more append anomalies)", res.Summary, anomalies[0].text, len(anomalies)-1)
	}
	return res
}

type appendAnomaly struct{ kind, text string }

// checkAppends compares the last ok read of every key with the appends: an
// append acknowledged before that read was invoked must appear exactly
// once; any other append at most once; nothing else may appear.
func checkAppends(h []history.Op) ([]appendAnomaly, error) {
	pairs, err := history.Pair(h)
	if err != nil {
		return nil, err
	}
	type appendInfo struct {
		ok      bool
		okIndex int // position of the ok completion
	}
	appends := map[string]map[string]*appendInfo{} // key -> token -> info
	final := map[string]int{}                      // key -> position of the last ok read's invocation
	finalComp := map[string]int{}
	var keys []string
	for i := range h {
		inv := &h[i]
		if inv.Type != history.Invoke || !inv.IsClient() {
			continue
		}
		kv, ok := inv.Value.([]any)
		if !ok || len(kv) != 2 {
			return nil, fmt.Errorf("op %d: value is not [key, v]", inv.Index)
		}
		key := string(history.AppendValue(nil, kv[0]))
		if appends[key] == nil {
			appends[key] = map[string]*appendInfo{}
			keys = append(keys, key)
		}
		j, done := pairs.Completion(i)
		switch inv.F {
		case "append":
			tok, ok := kv[1].(string)
			if !ok {
				return nil, fmt.Errorf("op %d: append token %v is not a string", inv.Index, kv[1])
			}
			ai := &appendInfo{}
			if done && h[j].Type == history.Ok {
				ai.ok, ai.okIndex = true, j
			}
			appends[key][strings.TrimSpace(tok)] = ai
		case "read":
			if done && h[j].Type == history.Ok {
				if prev, seen := finalComp[key]; !seen || j > prev {
					final[key], finalComp[key] = i, j
				}
			}
		}
	}
	var out []appendAnomaly
	for _, key := range keys {
		ri, ok := final[key]
		if !ok {
			continue
		}
		rv, _ := h[finalComp[key]].Value.([]any)
		s, _ := rv[1].(string)
		count := map[string]int{}
		for _, tok := range strings.Fields(s) {
			count[tok]++
			if count[tok] == 2 {
				out = append(out, appendAnomaly{"duplicate-append", fmt.Sprintf("key %s: token %s appears more than once in the final read (op %d)", key, tok, h[finalComp[key]].Index)})
			}
			if _, known := appends[key][tok]; !known {
				out = append(out, appendAnomaly{"phantom-append", fmt.Sprintf("key %s: token %s in the final read was never appended", key, tok)})
			}
		}
		var toks []string
		for tok := range appends[key] {
			toks = append(toks, tok)
		}
		sort.Strings(toks)
		for _, tok := range toks {
			ai := appends[key][tok]
			if ai.ok && ai.okIndex < ri && count[tok] == 0 {
				out = append(out, appendAnomaly{"lost-append", fmt.Sprintf("key %s: acknowledged append of %s is missing from the final read (op %d)", key, tok, h[finalComp[key]].Index)})
			}
		}
	}
	return out, nil
}
