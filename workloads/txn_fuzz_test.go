package workloads_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
)

// FuzzTxnShapers feeds arbitrary invocations to every transactional
// workload's shaper: a malformed one must be refused with an error (never
// a panic), and a well-formed one must complete ok with results of the
// right length and never ok without them.
func FuzzTxnShapers(f *testing.F) {
	f.Add("txn", `[["append",1,2],["r",1,null]]`)
	f.Add("txn", `[["w",3,4],["r",3,null]]`)
	f.Add("txn", `[["r",1.5,null]]`)
	f.Add("txn", `[]`)
	f.Add("txn", `[["append",1]]`)
	f.Add("read", `null`)
	f.Add("cas", `[1,2]`)
	f.Fuzz(func(t *testing.T, fn, value string) {
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			return
		}
		inv := workloads.Invocation{F: fn, Value: v}
		for _, w := range []interface {
			Shaper() workloads.TxnShaper
		}{
			workloads.NewListAppend(workloads.ElleOptions{}),
			workloads.NewRWRegister(workloads.ElleOptions{}),
		} {
			s := w.Shaper()
			ops, err := s.MicroOps(inv)
			if err != nil {
				if c := s.Complete(inv, nil, nil); c.Type == history.Ok {
					t.Fatalf("malformed %v %v completed ok", fn, value)
				}
				continue
			}
			if len(ops) == 0 {
				t.Fatalf("%v %v: no micro-ops and no error", fn, value)
			}
			res := make([]workloads.MicroResult, len(ops))
			for i, o := range ops {
				if o.F == workloads.MicroRead {
					res[i] = workloads.MicroResult{Value: "7\x1f", Found: true, List: []string{"7"}}
				} else {
					res[i] = workloads.MicroResult{Value: o.Value}
				}
			}
			if c := s.Complete(inv, res, nil); c.Type != history.Ok {
				t.Fatalf("%v %v: complete with results = %v %s", fn, value, c.Type, c.Error)
			}
			if c := s.Complete(inv, res[:len(res)-1], nil); c.Type == history.Ok {
				t.Fatalf("%v %v: completed ok with too few results", fn, value)
			}
			if c := s.Complete(inv, nil, errors.New("timeout")); c.Type == history.Ok {
				t.Fatalf("%v %v: completed ok after an error", fn, value)
			}
			if c := s.Complete(inv, nil, workloads.Definite(errors.New("refused"))); c.Type != history.Fail {
				t.Fatalf("%v %v: definite error gave %v", fn, value, c.Type)
			}
		}
	})
}
