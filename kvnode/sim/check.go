package sim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/linear"
	"github.com/chaoskv/chaos/history"
)

// checkModel is the linearizability model that judges a workload.
func checkModel(workload string) string {
	if workload == WorkloadAppend {
		return "kv"
	}
	return "cas-register"
}

// Check judges a simulator history of the given workload: linearizability
// per key (porcupine, giving up as unknown after timeout), and for the
// append workload also that the final read of each key holds every
// acknowledged token exactly once.
func Check(workload string, h []history.Op, timeout time.Duration) checker.Result {
	res, err := linear.Check(checkModel(workload), h, linear.Options{Timeout: timeout})
	if err != nil {
		return checker.Result{Checker: "linearizable", Valid: checker.Unknown, Summary: "cannot check: " + err.Error()}
	}
	if workload != WorkloadAppend {
		return res
	}
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
