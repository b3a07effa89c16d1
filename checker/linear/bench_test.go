package linear

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// genRegister simulates processes against a linearizable keyed register
// and records the history: every op takes effect at one instant between
// its invocation and completion, and many ops overlap. A fraction infoRate
// of writes end as info, half of them having taken effect.
func genRegister(seed uint64, nOps, keys, procs int, infoRate float64) []history.Op {
	rng := rand.New(rand.NewPCG(seed, 1))
	state := make([]int64, keys)
	written := make([]bool, keys)
	type pending struct {
		op      history.Op
		applied bool
		info    bool
	}
	inflight := make(map[history.Process]*pending)
	nextProc := history.Process(procs)
	free := make([]history.Process, procs)
	for i := range free {
		free[i] = history.Process(i)
	}
	var ops []history.Op
	emit := func(op history.Op) {
		op.Index = int64(len(ops))
		op.Time = int64(len(ops)) * 1000
		ops = append(ops, op)
	}
	invoked := 0
	for invoked < nOps || len(inflight) > 0 {
		r := rng.IntN(3)
		switch {
		case r == 0 && invoked < nOps && len(free) > 0:
			i := rng.IntN(len(free))
			p := free[i]
			free[i] = free[len(free)-1]
			free = free[:len(free)-1]
			k := int64(rng.IntN(keys))
			op := history.Op{Type: history.Invoke, Process: p}
			if rng.IntN(2) == 0 {
				op.F, op.Value = "read", []any{k, nil}
			} else {
				op.F, op.Value = "write", []any{k, int64(rng.IntN(5))}
			}
			emit(op)
			inflight[p] = &pending{op: op, info: op.F == "write" && rng.Float64() < infoRate}
			invoked++
		case len(inflight) > 0:
			// Pick an in-flight op: apply it, or complete it if applied.
			var p history.Process
			n := rng.IntN(len(inflight))
			for q := range inflight {
				if n == 0 {
					p = q
					break
				}
				n--
			}
			pd := inflight[p]
			kv := pd.op.Value.([]any)
			k := kv[0].(int64)
			if !pd.applied {
				pd.applied = true
				if pd.info && rng.IntN(2) == 0 {
					continue // an info write that never takes effect
				}
				if pd.op.F == "write" {
					state[k], written[k] = kv[1].(int64), true
				} else if written[k] {
					pd.op.Value = []any{k, state[k]}
				}
				continue
			}
			comp := pd.op
			comp.Type = history.Ok
			if pd.info {
				comp.Type = history.Info
			}
			emit(comp)
			delete(inflight, p)
			if pd.info {
				// Jepsen retires a process after info.
				p = nextProc
				nextProc++
			}
			free = append(free, p)
		}
	}
	return ops
}

func TestGeneratedRegisterHistories(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		ops := genRegister(seed, 2000, 5, 8, 0.05)
		res, err := Check("register", ops, Options{Timeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("seed %d: a history of a linearizable register is %v: %s", seed, res.Valid, res.Summary)
		}
		// Corrupt one ok read of a history without info ops (pending
		// info writes make refutations exponential): it must be caught.
		ops = genRegister(seed, 2000, 5, 8, 0)
		for i := len(ops) - 1; i >= 0; i-- {
			if ops[i].Type == history.Ok && ops[i].F == "read" {
				kv := ops[i].Value.([]any)
				ops[i].Value = []any{kv[0], int64(99)}
				break
			}
		}
		res, err = Check("register", ops, Options{Timeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Valid != checker.Invalid {
			t.Fatalf("seed %d: a read of a value never written is %v: %s", seed, res.Valid, res.Summary)
		}
	}
}

// BenchmarkRegister100k checks 100k register operations (200k history
// records) over 100 keys from 20 processes.
func BenchmarkRegister100k(b *testing.B) {
	for _, bc := range []struct {
		name     string
		infoRate float64
	}{{"ok-only", 0}, {"1pct-info-writes", 0.01}} {
		b.Run(bc.name, func(b *testing.B) {
			ops := genRegister(42, 100_000, 100, 20, bc.infoRate)
			b.ResetTimer()
			for b.Loop() {
				res, err := Check("register", ops, Options{Timeout: 5 * time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				if res.Valid != checker.Valid {
					b.Fatalf("valid = %v: %s", res.Valid, res.Summary)
				}
			}
			b.ReportMetric(float64(100_000*b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
