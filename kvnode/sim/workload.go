package sim

import (
	"fmt"
	"math/rand"
	"strconv"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/kv"
)

// Workloads the simulator drives.
const (
	// WorkloadRegister is Jepsen's register workload over a few
	// independent keys: read, write and cas with unique written values.
	WorkloadRegister = "register"
	// WorkloadAppend appends unique tokens to a few keys and reads them
	// back; every acknowledged token must appear exactly once.
	WorkloadAppend = "append"
)

// workload generates ops and interprets replies. It is a pure function of
// the random numbers it is given.
type workload interface {
	// next returns the next invocation: history f and value, and the kv op.
	next(r *rand.Rand) (f string, value any, op kv.Op)
	// complete turns a reply into the completion record's type, value and
	// error text.
	complete(f string, value any, rep kv.Reply) (history.Type, any, string)
	// finalRead returns a read of key k, and the number of keys.
	finalRead(k int) (f string, value any, op kv.Op)
	keys() int
}

// newWorkload returns workload name over keys keys; reads is the register
// workload's reads out of every ten ops.
func newWorkload(name string, keys, reads int) (workload, error) {
	switch name {
	case WorkloadRegister:
		if reads < 0 || reads > 10 {
			return nil, fmt.Errorf("register workload: %d reads in ten ops is outside [0, 10]", reads)
		}
		return &registerWorkload{nkeys: keys, reads: reads, recent: make([][]int64, keys)}, nil
	case WorkloadAppend:
		return &appendWorkload{nkeys: keys}, nil
	}
	return nil, fmt.Errorf("unknown workload %q (want %s or %s)", name, WorkloadRegister, WorkloadAppend)
}

func keyName(k int64) string { return "r" + strconv.FormatInt(k, 10) }

// registerWorkload: reads in ten ops are reads, the rest half writes and
// half cas (40/30/30 by default). A cas expects one of the last values
// written to its key, so that many succeed.
type registerWorkload struct {
	nkeys  int
	reads  int
	last   int64
	recent [][]int64 // per key, the last few values written
}

func (w *registerWorkload) keys() int { return w.nkeys }

func (w *registerWorkload) remember(k int, v int64) {
	r := append(w.recent[k], v)
	if len(r) > 3 {
		r = r[len(r)-3:]
	}
	w.recent[k] = r
}

func (w *registerWorkload) next(r *rand.Rand) (string, any, kv.Op) {
	k := r.Intn(w.nkeys)
	key := int64(k)
	switch x := r.Intn(10); {
	case x < w.reads:
		return "read", []any{key, nil}, kv.Op{Kind: kv.Get, Key: keyName(key)}
	case x < w.reads+(10-w.reads+1)/2:
		w.last++
		w.remember(k, w.last)
		return "write", []any{key, w.last}, kv.Op{Kind: kv.Put, Key: keyName(key), Value: strconv.FormatInt(w.last, 10)}
	default:
		var old int64
		if rec := w.recent[k]; len(rec) > 0 {
			old = rec[r.Intn(len(rec))]
		} else {
			old = w.last + 1 // never written: this cas fails
		}
		w.last++
		w.remember(k, w.last)
		return "cas", []any{key, []any{old, w.last}}, kv.Op{Kind: kv.Cas, Key: keyName(key), Old: strconv.FormatInt(old, 10), Value: strconv.FormatInt(w.last, 10)}
	}
}

func (w *registerWorkload) complete(f string, value any, rep kv.Reply) (history.Type, any, string) {
	key := value.([]any)[0]
	switch f {
	case "read":
		if !rep.Found {
			return history.Ok, []any{key, nil}, ""
		}
		v, err := strconv.ParseInt(rep.Value, 10, 64)
		if err != nil {
			return history.Info, value, fmt.Sprintf("read returned %q, not a number", rep.Value)
		}
		return history.Ok, []any{key, v}, ""
	case "cas":
		if !rep.Ok {
			// The store compared and refused: certainly not applied.
			return history.Fail, value, "cas-mismatch"
		}
	}
	return history.Ok, value, ""
}

func (w *registerWorkload) finalRead(k int) (string, any, kv.Op) {
	return "read", []any{int64(k), nil}, kv.Op{Kind: kv.Get, Key: keyName(int64(k))}
}

// appendWorkload: 80% appends of unique tokens, 20% reads of the whole
// value. Tokens are space-terminated decimal strings, so a value splits
// cleanly; values are strings so the history fits the "kv" model of the
// linearizability checker.
type appendWorkload struct {
	nkeys int
	last  int64
}

func (w *appendWorkload) keys() int { return w.nkeys }

func (w *appendWorkload) next(r *rand.Rand) (string, any, kv.Op) {
	key := int64(r.Intn(w.nkeys))
	if r.Intn(10) < 2 {
		return "read", []any{key, nil}, kv.Op{Kind: kv.Get, Key: keyName(key)}
	}
	w.last++
	tok := strconv.FormatInt(w.last, 10) + " "
	return "append", []any{key, tok}, kv.Op{Kind: kv.Append, Key: keyName(key), Value: tok}
}

func (w *appendWorkload) complete(f string, value any, rep kv.Reply) (history.Type, any, string) {
	if f != "read" {
		return history.Ok, value, ""
	}
	return history.Ok, []any{value.([]any)[0], rep.Value}, ""
}

func (w *appendWorkload) finalRead(k int) (string, any, kv.Op) {
	return "read", []any{int64(k), nil}, kv.Op{Kind: kv.Get, Key: keyName(int64(k))}
}
