// Package wlops carries the harness's workload transactions across to
// kvnode: a codec's micro-ops (package workloads) as kvnode's transaction
// micro-ops (package txn), and a committed transaction's results back.
// Both worlds drive kvnode through it, the Docker adapter
// (harness/dockerbackend/kvnodedb) and the simulator (kvnode/sim), so a
// micro-op means the same in a simulated history as in a real one.
package wlops

import (
	"fmt"

	"github.com/chaoskv/chaos/kvnode/txn"
	"github.com/chaoskv/chaos/workloads"
)

// MicroOps is kvnode's transaction for a workload's micro-ops.
func MicroOps(ops []workloads.MicroOp) ([]txn.MicroOp, error) {
	out := make([]txn.MicroOp, len(ops))
	for i, o := range ops {
		switch o.F {
		case workloads.MicroRead:
			out[i] = txn.MicroOp{F: txn.Read, Key: o.Key}
		case workloads.MicroWrite:
			out[i] = txn.MicroOp{F: txn.Write, Key: o.Key, Value: o.Value}
		case workloads.MicroAppend:
			out[i] = txn.MicroOp{F: txn.Append, Key: o.Key, Value: o.Value}
		case workloads.MicroCheck:
			out[i] = txn.MicroOp{F: txn.Check, Key: o.Key, Value: o.Value}
		default:
			return nil, fmt.Errorf("micro-op %d: kvnode has no function %q", i, o.F)
		}
	}
	return out, nil
}

// MicroResults is a workload's view of a committed transaction's results.
func MicroResults(rs []txn.MicroResult) []workloads.MicroResult {
	out := make([]workloads.MicroResult, len(rs))
	for i, r := range rs {
		out[i] = workloads.MicroResult{Value: r.Value, Found: r.Found, List: r.List}
	}
	return out
}
