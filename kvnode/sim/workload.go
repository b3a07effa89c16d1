package sim

import (
	"errors"
	"fmt"
	"math/rand"
	"strconv"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/workloads"
)

// Workloads the simulator drives.
const (
	// WorkloadRegister is the harness's register workload
	// (workloads.Register): read, write and cas over a few independent
	// keys with unique written values.
	WorkloadRegister = "register"
	// WorkloadAppend appends unique tokens to a few keys and reads them
	// back; every acknowledged token must appear exactly once.
	WorkloadAppend = "append"
)

// workload is a sans-IO workload as the simulator drives it: invocations
// from a generator, and a codec between invocations and the kv ops the
// simulated clients run.
type workload interface {
	workloads.Generator
	// op returns the kv op that performs inv.
	op(inv workloads.Invocation) (kv.Op, error)
	// complete turns the client's outcome of inv's op into its completion.
	complete(inv workloads.Invocation, o client.Outcome) workloads.Completion
}

// newWorkload returns workload name over keys keys; reads is the register
// workload's reads out of every ten ops. The register workload's generator
// is seeded with seed; append draws from rng.
func newWorkload(name string, keys, reads int, seed int64, rng *rand.Rand) (workload, error) {
	switch name {
	case WorkloadRegister:
		if reads < 0 || reads > 10 {
			return nil, fmt.Errorf("register workload: %d reads in ten ops is outside [0, 10]", reads)
		}
		reg := workloads.NewRegister(workloads.RegisterOptions{Keys: keys, Reads: reads})
		return &registerWorkload{Generator: reg.NewGenerator(seed), codec: reg.Codec()}, nil
	case WorkloadAppend:
		return &appendWorkload{nkeys: keys, rng: rng}, nil
	}
	return nil, fmt.Errorf("unknown workload %q (want %s or %s)", name, WorkloadRegister, WorkloadAppend)
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

// registerWorkload runs workloads.Register, generator and codec, on the
// simulated clients: its history comes from the same code as chaos run's.
type registerWorkload struct {
	workloads.Generator
	codec workloads.RegisterCodec
}

var kvKinds = [...]kv.Kind{workloads.KVGet: kv.Get, workloads.KVPut: kv.Put, workloads.KVCAS: kv.Cas}

func (w *registerWorkload) op(inv workloads.Invocation) (kv.Op, error) {
	op, err := w.codec.Op(inv)
	if err != nil {
		return kv.Op{}, err
	}
	if int(op.Kind) >= len(kvKinds) || kvKinds[op.Kind] == 0 {
		return kv.Op{}, fmt.Errorf("register codec asked for op kind %d, which the simulator does not map", op.Kind)
	}
	return kv.Op{Kind: kvKinds[op.Kind], Key: op.Key, Value: op.Value, Old: op.Old}, nil
}

func (w *registerWorkload) complete(inv workloads.Invocation, o client.Outcome) workloads.Completion {
	rep, err := reply(o)
	return w.codec.Complete(inv, workloads.KVResult{Value: rep.Value, Found: rep.Found, Swapped: rep.Ok, Err: err})
}

func keyName(k int64) string { return "r" + strconv.FormatInt(k, 10) }

// appendWorkload: 80% appends of unique tokens, 20% reads of the whole
// value. Tokens are space-terminated decimal strings, so a value splits
// cleanly; values are strings so the history fits the "kv" model of the
// linearizability checker.
type appendWorkload struct {
	nkeys int
	rng   *rand.Rand
	last  int64
}

func (w *appendWorkload) Next() workloads.Invocation {
	key := int64(w.rng.Intn(w.nkeys))
	if w.rng.Intn(10) < 2 {
		return workloads.Invocation{F: "read", Value: []any{key, nil}}
	}
	w.last++
	return workloads.Invocation{F: "append", Value: []any{key, strconv.FormatInt(w.last, 10) + " "}}
}

func (w *appendWorkload) FinalReads() []workloads.Invocation {
	out := make([]workloads.Invocation, w.nkeys)
	for k := range out {
		out[k] = workloads.Invocation{F: "read", Value: []any{int64(k), nil}}
	}
	return out
}

func (w *appendWorkload) op(inv workloads.Invocation) (kv.Op, error) {
	v, ok := inv.Value.([]any)
	if !ok || len(v) != 2 {
		return kv.Op{}, fmt.Errorf("append: value %v is not [key, v]", inv.Value)
	}
	key, ok := v[0].(int64)
	if !ok {
		return kv.Op{}, fmt.Errorf("append: key %v is not an integer", v[0])
	}
	switch inv.F {
	case "read":
		return kv.Op{Kind: kv.Get, Key: keyName(key)}, nil
	case "append":
		tok, ok := v[1].(string)
		if !ok {
			return kv.Op{}, fmt.Errorf("append: token %v is not a string", v[1])
		}
		return kv.Op{Kind: kv.Append, Key: keyName(key), Value: tok}, nil
	}
	return kv.Op{}, fmt.Errorf("append: unknown f %q", inv.F)
}

func (w *appendWorkload) complete(inv workloads.Invocation, o client.Outcome) workloads.Completion {
	rep, err := reply(o)
	switch {
	case workloads.IsDefinite(err):
		return workloads.Completion{Type: history.Fail, Value: inv.Value, Error: err.Error()}
	case err != nil:
		return workloads.Completion{Type: history.Info, Value: inv.Value, Error: err.Error()}
	case inv.F == "read":
		return workloads.Completion{Type: history.Ok, Value: []any{inv.Value.([]any)[0], rep.Value}}
	}
	return workloads.Completion{Type: history.Ok, Value: inv.Value}
}
