package sim

import (
	"errors"
	"fmt"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/workloads"
)

// The simulator has no workloads of its own: it runs the harness's
// (package workloads), generator, codec, final reads and checker, as chaos
// run does. This file only carries their operations across to the
// simulated clients: a register's single-key ops as kv ops on one replica
// group, a transactional workload's transactions as sharded transactions
// (through kvnode/wlops, as the Docker adapter carries them).

// newWorkload returns the harness workload name over keys keys; reads is
// the register's reads in every ten ops, and only the register has one.
func newWorkload(name string, keys, reads int) (workloads.Workload, error) {
	t := workloads.Tuning{Keys: keys}
	if name == "register" {
		if reads < 0 || reads > 10 {
			return nil, fmt.Errorf("register workload: %d reads in ten ops is outside [0, 10]", reads)
		}
		t.Reads = reads
	}
	return workloads.NewTuned(name, t)
}

var kvKinds = [...]kv.Kind{workloads.KVGet: kv.Get, workloads.KVPut: kv.Put, workloads.KVCAS: kv.Cas}

// kvOp is the store's op for a codec's single-key op.
func kvOp(op workloads.KVOp) (kv.Op, error) {
	if int(op.Kind) >= len(kvKinds) || kvKinds[op.Kind] == 0 {
		return kv.Op{}, fmt.Errorf("codec asked for op kind %d, which the simulator does not map", op.Kind)
	}
	return kv.Op{Kind: kvKinds[op.Kind], Key: op.Key, Value: op.Value, Old: op.Old}, nil
}

// kvResult is a codec's view of a client's outcome of a kv op.
func kvResult(o client.Outcome) workloads.KVResult {
	rep, err := reply(o)
	return workloads.KVResult{Value: rep.Value, Found: rep.Found, Swapped: rep.Ok, Err: err}
}

// reply decodes a client's outcome: the store's reply, or an error that
// is marked workloads.Definite when the op certainly did not take effect.
func reply(o client.Outcome) (kv.Reply, error) {
	switch o.Result {
	case client.OK:
	case client.Failed:
		return kv.Reply{}, workloads.Definite(o.Cause)
	default:
		return kv.Reply{}, o.Cause
	}
	rep, err := kv.DecodeReply(o.Value)
	if err != nil {
		return kv.Reply{}, err
	}
	if rep.Err != "" {
		return kv.Reply{}, errors.New(rep.Err)
	}
	return rep, nil
}
