package workloads_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memtxn"
)

// drive runs n invocations of w against sut with conc processes, then the
// final reads, and returns the history. It is deterministic for a given
// seed: each step either invokes an operation on an idle process
// (executing it at once) or records the completion of a pending one, so
// completions land in a seeded order and operations overlap as in a real
// run.
func drive(t *testing.T, w workloads.Workload, sut workloads.SUT, seed int64, n, conc int) []history.Op {
	t.Helper()
	ctx := context.Background()
	gen := w.NewGenerator(seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 77))
	var ops []history.Op
	record := func(op history.Op) {
		op.Index = int64(len(ops))
		op.Time = int64(len(ops)) * 1000
		ops = append(ops, op)
	}
	type slot struct {
		proc    history.Process
		client  workloads.Client
		pending *workloads.Completion
		f       string
	}
	slots := make([]*slot, conc)
	nextProc := history.Process(0)
	open := func() *slot {
		c, err := w.NewClient(ctx, sut, nextProc)
		if err != nil {
			t.Fatalf("open client: %v", err)
		}
		s := &slot{proc: nextProc, client: c}
		nextProc++
		return s
	}
	for i := range slots {
		slots[i] = open()
	}
	complete := func(i int) {
		s := slots[i]
		c := *s.pending
		s.pending = nil
		record(history.Op{Type: c.Type, Process: s.proc, F: s.f, Value: c.Value, Error: c.Error})
		if c.Type == history.Info {
			s.client.Close()
			slots[i] = open()
		}
	}
	invoke := func(i int, inv workloads.Invocation) {
		s := slots[i]
		record(history.Op{Type: history.Invoke, Process: s.proc, F: inv.F, Value: inv.Value})
		c := s.client.Invoke(ctx, inv)
		s.pending, s.f = &c, inv.F
	}
	for invoked := 0; invoked < n; {
		i := rng.IntN(conc)
		if slots[i].pending != nil {
			complete(i)
			continue
		}
		invoke(i, gen.Next())
		invoked++
	}
	for i := range slots {
		if slots[i].pending != nil {
			complete(i)
		}
	}
	for _, inv := range gen.FinalReads() {
		invoke(0, inv)
		complete(0)
	}
	for _, s := range slots {
		s.client.Close()
	}
	return ops
}

// check judges ops with the checker w returns.
func check(t *testing.T, w workloads.Workload, ops []history.Op) checker.Result {
	t.Helper()
	res, err := w.Checker().Check(ops, checker.Options{})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return res
}

func newStore(t *testing.T, o memtxn.Options) *memtxn.Store {
	t.Helper()
	s, err := memtxn.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func counts(ops []history.Op) map[history.Type]int {
	m := map[history.Type]int{}
	for _, op := range ops {
		m[op.Type]++
	}
	return m
}

func anomalyNames(r checker.Result) []string {
	var out []string
	for k := range r.Anomalies {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func txnWorkloads() []workloads.Workload {
	return []workloads.Workload{
		workloads.NewListAppend(workloads.ElleOptions{}),
		workloads.NewRWRegister(workloads.ElleOptions{}),
		workloads.NewBank(workloads.BankOptions{}),
	}
}

func TestTxnGeneratorsDeterministic(t *testing.T) {
	for _, w := range txnWorkloads() {
		t.Run(w.Name(), func(t *testing.T) {
			a := draw(w.NewGenerator(42), 1000)
			b := draw(w.NewGenerator(42), 1000)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("same seed gave different sequences")
			}
			if reflect.DeepEqual(a, draw(w.NewGenerator(43), 1000)) {
				t.Fatal("different seeds gave the same sequence")
			}
			if !reflect.DeepEqual(w.NewGenerator(42).FinalReads(), w.NewGenerator(42).FinalReads()) {
				t.Fatal("final reads differ for one seed")
			}
		})
	}
}

func TestElleGeneratorShape(t *testing.T) {
	for _, tc := range []struct {
		w     *workloads.Elle
		write string
	}{
		{workloads.NewListAppend(workloads.ElleOptions{Keys: 3, WritesPerKey: 10}), "append"},
		{workloads.NewRWRegister(workloads.ElleOptions{Keys: 3, WritesPerKey: 10}), "w"},
	} {
		t.Run(tc.w.Name(), func(t *testing.T) {
			g := tc.w.NewGenerator(7)
			seen := map[[2]int64]bool{}
			writesPerKey := map[int64]int{}
			sizes := map[int]int{}
			keysTouched := map[int64]bool{}
			for _, inv := range draw(g, 3000) {
				if inv.F != "txn" {
					t.Fatalf("f = %q", inv.F)
				}
				mops := inv.Value.([]any)
				sizes[len(mops)]++
				active := map[int64]bool{}
				for _, m := range mops {
					p := m.([]any)
					k := p[1].(int64)
					keysTouched[k] = true
					active[k] = true
					switch p[0] {
					case "r":
						if p[2] != nil {
							t.Fatalf("read carries a value: %v", m)
						}
					case tc.write:
						v := p[2].(int64)
						if seen[[2]int64{k, v}] {
							t.Fatalf("value %d written to key %d twice", v, k)
						}
						seen[[2]int64{k, v}] = true
						writesPerKey[k]++
					default:
						t.Fatalf("unexpected micro-op %v", m)
					}
				}
			}
			for n := 1; n <= 4; n++ {
				if sizes[n] < 300 {
					t.Errorf("only %d transactions of %d micro-ops (sizes %v)", sizes[n], n, sizes)
				}
			}
			if len(sizes) != 4 {
				t.Errorf("transaction sizes %v, want 1..4", sizes)
			}
			for k, n := range writesPerKey {
				if n > 10 {
					t.Errorf("key %d got %d writes, over the per-key limit 10", k, n)
				}
			}
			if len(keysTouched) < 20 {
				t.Errorf("only %d keys used: keys do not rotate", len(keysTouched))
			}
			// The final reads cover every key ever touched, and only reads.
			final := map[int64]bool{}
			for _, inv := range g.FinalReads() {
				for _, m := range inv.Value.([]any) {
					p := m.([]any)
					if p[0] != "r" {
						t.Fatalf("final read has %v", m)
					}
					final[p[1].(int64)] = true
				}
			}
			for k := range keysTouched {
				if !final[k] {
					t.Errorf("key %d is never read at the end", k)
				}
			}
		})
	}
}

func TestBankGeneratorShape(t *testing.T) {
	g := workloads.NewBank(workloads.BankOptions{Accounts: 5, MaxTransfer: 3}).NewGenerator(3)
	fs := map[string]int{}
	for _, inv := range draw(g, 3000) {
		fs[inv.F]++
		switch inv.F {
		case "read":
			if inv.Value != nil {
				t.Fatalf("read value %v", inv.Value)
			}
		case "transfer":
			m := inv.Value.(map[string]any)
			from, to, amt := m["from"].(int64), m["to"].(int64), m["amount"].(int64)
			if from == to || from < 0 || to < 0 || from >= 5 || to >= 5 || amt < 1 || amt > 3 {
				t.Fatalf("bad transfer %v", m)
			}
		default:
			t.Fatalf("f = %q", inv.F)
		}
	}
	if fs["read"] < 500 || fs["transfer"] < 1500 {
		t.Fatalf("mix %v", fs)
	}
}

func TestTxnWorkloadsValidOnCorrectStore(t *testing.T) {
	for _, w := range txnWorkloads() {
		t.Run(w.Name(), func(t *testing.T) {
			seeds := []int64{11, 12, 13}
			if testing.Short() {
				seeds = seeds[:1]
			}
			for _, seed := range seeds {
				// Refusals and lost responses make fail and info
				// completions; the history must still check valid.
				s := newStore(t, memtxn.Options{RefuseRate: 0.05, LoseRate: 0.05, Seed: uint64(seed)})
				ops := drive(t, w, s, seed, 600, 5)
				c := counts(ops)
				if c[history.Fail] == 0 || c[history.Info] == 0 || c[history.Ok] < 300 {
					t.Fatalf("seed %d: completions %v: want some of each", seed, c)
				}
				res := check(t, w, ops)
				if res.Valid != checker.Valid {
					t.Fatalf("seed %d: correct store judged %v: %s %v\nreplay: go test ./workloads -run 'TestTxnWorkloadsValidOnCorrectStore/%s'",
						seed, res.Valid, res.Summary, anomalyNames(res), w.Name())
				}
			}
		})
	}
}

func TestTxnWorkloadsCatchMisbehaviour(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    workloads.Workload
		opts memtxn.Options
	}{
		{"list-append/stale-read", workloads.NewListAppend(workloads.ElleOptions{}), memtxn.Options{StaleReadRate: 0.1}},
		{"list-append/lost-append", workloads.NewListAppend(workloads.ElleOptions{}), memtxn.Options{LostWriteRate: 0.05}},
		{"list-append/torn", workloads.NewListAppend(workloads.ElleOptions{}), memtxn.Options{TornRate: 0.1}},
		{"rw-register/stale-read", workloads.NewRWRegister(workloads.ElleOptions{}), memtxn.Options{StaleReadRate: 0.1}},
		{"rw-register/lost-write", workloads.NewRWRegister(workloads.ElleOptions{}), memtxn.Options{LostWriteRate: 0.05}},
		{"bank/torn", workloads.NewBank(workloads.BankOptions{}), memtxn.Options{TornRate: 0.05}},
		{"bank/lost-write", workloads.NewBank(workloads.BankOptions{}), memtxn.Options{LostWriteRate: 0.05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const seed = 5
			tc.opts.Seed = seed
			ops := drive(t, tc.w, newStore(t, tc.opts), seed, 600, 5)
			res := check(t, tc.w, ops)
			if res.Valid != checker.Invalid {
				t.Fatalf("seed %d: misbehaving store judged %v: %s\nreplay: go test ./workloads -run 'TestTxnWorkloadsCatchMisbehaviour/%s'",
					seed, res.Valid, res.Summary, tc.name)
			}
			t.Logf("caught: %v", anomalyNames(res))
		})
	}
}

// TestStaleReadIsACycle pins the anomaly a stale read produces in a
// sequential list-append history: the read misses an append that finished
// before it began, which strict serializability forbids.
func TestStaleReadIsACycle(t *testing.T) {
	w := workloads.NewListAppend(workloads.ElleOptions{})
	s := newStore(t, memtxn.Options{StaleReadRate: 1})
	c, err := w.NewClient(context.Background(), s, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ops []history.Op
	run := func(v []any) {
		inv := workloads.Invocation{F: "txn", Value: v}
		ops = append(ops, history.Op{Index: int64(len(ops)), Type: history.Invoke, F: "txn", Value: v})
		comp := c.Invoke(context.Background(), inv)
		ops = append(ops, history.Op{Index: int64(len(ops)), Type: comp.Type, F: "txn", Value: comp.Value})
	}
	run([]any{[]any{"append", int64(1), int64(1)}})
	run([]any{[]any{"append", int64(1), int64(2)}})
	run([]any{[]any{"r", int64(1), nil}})
	last := ops[len(ops)-1].Value.([]any)[0].([]any)
	if !reflect.DeepEqual(last[2], []any{int64(1)}) {
		t.Fatalf("stale read returned %v, want [1]", last[2])
	}
	res := check(t, w, ops)
	if res.Valid != checker.Invalid {
		t.Fatalf("judged %v: %s", res.Valid, res.Summary)
	}
	if _, ok := res.Anomalies["G-single-item-realtime"]; !ok {
		t.Fatalf("anomalies %v, want G-single-item-realtime", anomalyNames(res))
	}
}

func TestTxnClientShapesAndHonesty(t *testing.T) {
	ctx := context.Background()
	w := workloads.NewListAppend(workloads.ElleOptions{})
	s := newStore(t, memtxn.Options{})
	c, err := w.NewClient(ctx, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	inv := workloads.Invocation{F: "txn", Value: []any{
		[]any{"r", int64(3), nil}, []any{"append", int64(3), int64(1)}, []any{"append", int64(3), int64(2)}, []any{"r", int64(3), nil}}}
	got := c.Invoke(ctx, inv)
	want := []any{[]any{"r", int64(3), []any{}}, []any{"append", int64(3), int64(1)},
		[]any{"append", int64(3), int64(2)}, []any{"r", int64(3), []any{int64(1), int64(2)}}}
	if got.Type != history.Ok || !reflect.DeepEqual(got.Value, want) {
		t.Fatalf("got %v %#v", got.Type, got.Value)
	}
	if l := s.List("la3"); !reflect.DeepEqual(l, []string{"1", "2"}) {
		t.Fatalf("store holds %q", l)
	}
	for _, bad := range []workloads.Invocation{
		{F: "txn", Value: "x"},
		{F: "txn", Value: []any{}},
		{F: "txn", Value: []any{[]any{"w", int64(1), int64(1)}}},
		{F: "txn", Value: []any{[]any{"append", "k", int64(1)}}},
		{F: "txn", Value: []any{[]any{"append", int64(1), "v"}}},
		{F: "read", Value: []any{[]any{"r", int64(1), nil}}},
	} {
		if got := c.Invoke(ctx, bad); got.Type != history.Fail || got.Error == "" {
			t.Errorf("%v: got %v %q, want a fail with an error", bad, got.Type, got.Error)
		}
	}
	rw := workloads.NewRWRegister(workloads.ElleOptions{})
	rc, _ := rw.NewClient(ctx, s, 1)
	got = rc.Invoke(ctx, workloads.Invocation{F: "txn", Value: []any{[]any{"r", int64(1), nil}, []any{"w", int64(1), int64(9)}, []any{"r", int64(1), nil}}})
	want = []any{[]any{"r", int64(1), nil}, []any{"w", int64(1), int64(9)}, []any{"r", int64(1), int64(9)}}
	if got.Type != history.Ok || !reflect.DeepEqual(got.Value, want) {
		t.Fatalf("rw-register got %v %#v", got.Type, got.Value)
	}

	// Unknown outcomes: writes are info, read-only transactions fail.
	lossy := newStore(t, memtxn.Options{LoseRate: 1})
	lc, _ := w.NewClient(ctx, lossy, 2)
	if got := lc.Invoke(ctx, workloads.Invocation{F: "txn", Value: []any{[]any{"append", int64(1), int64(1)}}}); got.Type != history.Info {
		t.Errorf("lost append: %v", got.Type)
	}
	if got := lc.Invoke(ctx, workloads.Invocation{F: "txn", Value: []any{[]any{"r", int64(1), nil}}}); got.Type != history.Fail {
		t.Errorf("lost read: %v", got.Type)
	}
	refusing := newStore(t, memtxn.Options{RefuseRate: 1})
	fc, _ := w.NewClient(ctx, refusing, 3)
	if got := fc.Invoke(ctx, workloads.Invocation{F: "txn", Value: []any{[]any{"append", int64(1), int64(1)}}}); got.Type != history.Fail {
		t.Errorf("refused append: %v", got.Type)
	}
	if refusing.Txns() != 0 {
		t.Errorf("refused transaction was applied")
	}
}

func TestBankClient(t *testing.T) {
	ctx := context.Background()
	w := workloads.NewBank(workloads.BankOptions{Accounts: 3, InitialBalance: 10})
	s := newStore(t, memtxn.Options{})
	c, _ := w.NewClient(ctx, s, 0)
	tr := workloads.Invocation{F: "transfer", Value: map[string]any{"from": int64(0), "to": int64(2), "amount": int64(4)}}
	if got := c.Invoke(ctx, tr); got.Type != history.Ok {
		t.Fatalf("transfer: %v %s", got.Type, got.Error)
	}
	got := c.Invoke(ctx, workloads.Invocation{F: "read"})
	want := map[string]any{"0": int64(6), "1": int64(10), "2": int64(14)}
	if got.Type != history.Ok || !reflect.DeepEqual(got.Value, want) {
		t.Fatalf("read: %v %#v", got.Type, got.Value)
	}
	// Account 0 holds 6: a transfer of 7 would overdraw it, so it fails
	// and changes nothing.
	over := workloads.Invocation{F: "transfer", Value: map[string]any{"from": int64(0), "to": int64(1), "amount": int64(7)}}
	if got := c.Invoke(ctx, over); got.Type != history.Fail || !strings.Contains(got.Error, "insufficient funds") {
		t.Fatalf("overdraft: %v %s", got.Type, got.Error)
	}
	if got := c.Invoke(ctx, workloads.Invocation{F: "read"}); !reflect.DeepEqual(got.Value, want) {
		t.Fatalf("read after a refused overdraft: %#v", got.Value)
	}
	for _, bad := range []any{
		map[string]any{"from": int64(0), "to": int64(1), "amount": int64(0)},
		map[string]any{"from": int64(0), "to": int64(0), "amount": int64(1)},
		map[string]any{"from": int64(0), "to": int64(3), "amount": int64(1)},
		map[string]any{"from": int64(0), "to": "x", "amount": int64(1)},
		"nope",
	} {
		if got := c.Invoke(ctx, workloads.Invocation{F: "transfer", Value: bad}); got.Type != history.Fail {
			t.Errorf("%v: %v", bad, got.Type)
		}
	}
	spec, ok := w.Checker().(*bank.Checker)
	if !ok || spec.Total == nil || *spec.Total != 30 || len(spec.Accounts) != 3 {
		t.Fatalf("checker %#v", w.Checker())
	}
}

func TestTxnWorkloadNeedsTxnSUT(t *testing.T) {
	for _, w := range txnWorkloads() {
		if _, err := w.NewClient(context.Background(), kvOnly{}, 0); err == nil || !errors.Is(err, workloads.ErrNoTxn) {
			t.Errorf("%s: err = %v, want ErrNoTxn", w.Name(), err)
		}
	}
}

type kvOnly struct{}

func (kvOnly) OpenKV(context.Context) (workloads.KV, error) { return nil, fmt.Errorf("unused") }

func TestNewKnowsTxnWorkloads(t *testing.T) {
	for _, name := range []string{"list-append", "rw-register", "bank"} {
		w, err := workloads.New(name)
		if err != nil || w.Name() != name {
			t.Fatalf("New(%q) = %v, %v", name, w, err)
		}
		if !workloads.IsTransactional(name) || !slices.Contains(workloads.Names(), name) {
			t.Fatalf("%s not listed as transactional", name)
		}
	}
	if workloads.IsTransactional("register") {
		t.Fatal("register listed as transactional")
	}
}
