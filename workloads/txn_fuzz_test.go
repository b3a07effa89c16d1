package workloads_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
)

// answer is a well-formed answer to ops: every read finds "7".
func answer(ops []workloads.MicroOp) []workloads.MicroResult {
	res := make([]workloads.MicroResult, len(ops))
	for i, o := range ops {
		if o.F == workloads.MicroRead {
			res[i] = workloads.MicroResult{Value: "7", Found: true, List: []string{"7"}}
		} else {
			res[i] = workloads.MicroResult{Value: o.Value}
		}
	}
	return res
}

// FuzzTxnCodecs feeds arbitrary invocations to every transactional
// workload's codec: a malformed one must complete at once and never ok
// (never a panic); a well-formed one must ask for micro-ops, complete ok
// within two steps when every step is answered (or fail a transfer for
// want of funds), and never ok when a step
// is answered with too few results or an error (fail when the error is
// definite).
func FuzzTxnCodecs(f *testing.F) {
	f.Add("txn", `[["append",1,2],["r",1,null]]`)
	f.Add("txn", `[["w",3,4],["r",3,null]]`)
	f.Add("txn", `[["r",1.5,null]]`)
	f.Add("txn", `[]`)
	f.Add("txn", `[["append",1]]`)
	f.Add("read", `null`)
	f.Add("transfer", `{"from":1,"to":2,"amount":3}`)
	f.Add("transfer", `{"from":1,"to":1,"amount":3}`)
	f.Add("cas", `[1,2]`)
	f.Fuzz(func(t *testing.T, fn, value string) {
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			return
		}
		inv := workloads.Invocation{F: fn, Value: v}
		for _, w := range []workloads.TxnWorkload{
			workloads.NewListAppend(workloads.ElleOptions{}),
			workloads.NewRWRegister(workloads.ElleOptions{}),
			workloads.NewBank(workloads.BankOptions{}),
		} {
			step := w.Codec().Start(inv)
			if step.Done() {
				if step.Completion.Type == history.Ok {
					t.Fatalf("%s: malformed %v %v completed ok", w.Name(), fn, value)
				}
				continue
			}
			for n := 1; !step.Done(); n++ {
				if n > 2 {
					t.Fatalf("%s: %v %v takes more than two transactions", w.Name(), fn, value)
				}
				if len(step.Ops) == 0 {
					t.Fatalf("%s: %v %v: a step without micro-ops", w.Name(), fn, value)
				}
				res := answer(step.Ops)
				if c := step.Next(res[:len(res)-1], nil); c.Done() && c.Completion.Type == history.Ok && fn != "transfer" {
					t.Fatalf("%s: %v %v: completed ok with too few results", w.Name(), fn, value)
				}
				if c := step.Next(nil, errors.New("timeout")); !c.Done() || c.Completion.Type == history.Ok {
					t.Fatalf("%s: %v %v: an error did not end it, or ended it ok", w.Name(), fn, value)
				}
				if c := step.Next(nil, workloads.Definite(errors.New("refused"))); !c.Done() || c.Completion.Type != history.Fail {
					t.Fatalf("%s: %v %v: a definite error gave %v", w.Name(), fn, value, c.Completion.Type)
				}
				step = step.Next(res, nil)
			}
			poor := strings.Contains(step.Completion.Error, workloads.ErrInsufficientFunds.Error())
			if step.Completion.Type != history.Ok && !(poor && step.Completion.Type == history.Fail) {
				t.Fatalf("%s: %v %v: answered in full, completed %v %s", w.Name(), fn, value, step.Completion.Type, step.Completion.Error)
			}
		}
	})
}
