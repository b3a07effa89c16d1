package workloads_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

func draw(g workloads.Generator, n int) []workloads.Invocation {
	out := make([]workloads.Invocation, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func TestRegisterGeneratorDeterministic(t *testing.T) {
	w := workloads.NewRegister(workloads.RegisterOptions{})
	a := draw(w.NewGenerator(42), 2000)
	b := draw(w.NewGenerator(42), 2000)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different sequences")
	}
	c := draw(w.NewGenerator(43), 2000)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds gave the same sequence")
	}
}

func TestRegisterGeneratorShape(t *testing.T) {
	opts := workloads.RegisterOptions{Keys: 3, OpsPerKey: 50}
	g := workloads.NewRegister(opts).NewGenerator(1)
	const n = 3000
	perKey := map[int64]int{}
	written := map[int64]bool{}
	fs := map[string]int{}
	for _, inv := range draw(g, n) {
		fs[inv.F]++
		kv := inv.Value.([]any)
		k := kv[0].(int64)
		perKey[k]++
		switch inv.F {
		case "read":
			if kv[1] != nil {
				t.Fatalf("read invocation carries a value: %v", inv.Value)
			}
		case "write":
			v := kv[1].(int64)
			if written[v] {
				t.Fatalf("value %d written twice", v)
			}
			written[v] = true
		case "cas":
			pair := kv[1].([]any)
			old, nw := pair[0].(int64), pair[1].(int64)
			if written[nw] {
				t.Fatalf("value %d written twice", nw)
			}
			written[nw] = true
			if old >= nw {
				t.Fatalf("cas expects %d, which was not written before %d", old, nw)
			}
		default:
			t.Fatalf("unexpected f %q", inv.F)
		}
	}
	for f, c := range fs {
		if c < n/5 {
			t.Errorf("f %s drawn %d times of %d", f, c, n)
		}
	}
	for k, c := range perKey {
		if c > opts.OpsPerKey {
			t.Fatalf("key %d got %d ops, limit %d", k, c, opts.OpsPerKey)
		}
	}
	// n ops over keys of 50 ops each: at least n/50 keys were used.
	if len(perKey) < n/opts.OpsPerKey {
		t.Fatalf("only %d keys used", len(perKey))
	}
	final := g.FinalReads()
	if len(final) != len(perKey) {
		t.Fatalf("%d final reads for %d keys", len(final), len(perKey))
	}
	for i, inv := range final {
		if inv.F != "read" || !reflect.DeepEqual(inv.Value, []any{int64(i), nil}) {
			t.Fatalf("final read %d = %+v", i, inv)
		}
	}
}

func TestRegisterClient(t *testing.T) {
	ctx := context.Background()
	store := memkv.New(memkv.Options{})
	w := workloads.NewRegister(workloads.RegisterOptions{})
	c, err := w.NewClient(ctx, store, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := []struct {
		inv      workloads.Invocation
		wantType history.Type
		wantVal  any
	}{
		{workloads.Invocation{F: "read", Value: []any{int64(1), nil}}, history.Ok, []any{int64(1), nil}},
		{workloads.Invocation{F: "cas", Value: []any{int64(1), []any{int64(1), int64(2)}}}, history.Fail, nil},
		{workloads.Invocation{F: "write", Value: []any{int64(1), int64(3)}}, history.Ok, []any{int64(1), int64(3)}},
		{workloads.Invocation{F: "read", Value: []any{int64(1), nil}}, history.Ok, []any{int64(1), int64(3)}},
		{workloads.Invocation{F: "cas", Value: []any{int64(1), []any{int64(4), int64(5)}}}, history.Fail, nil},
		{workloads.Invocation{F: "cas", Value: []any{int64(1), []any{int64(3), int64(6)}}}, history.Ok, []any{int64(1), []any{int64(3), int64(6)}}},
		{workloads.Invocation{F: "read", Value: []any{int64(1), nil}}, history.Ok, []any{int64(1), int64(6)}},
		{workloads.Invocation{F: "read", Value: []any{int64(2), nil}}, history.Ok, []any{int64(2), nil}},
		{workloads.Invocation{F: "read", Value: "garbage"}, history.Fail, nil},
		{workloads.Invocation{F: "write", Value: []any{int64(1), "x"}}, history.Fail, nil},
		{workloads.Invocation{F: "cas", Value: []any{int64(1), int64(2)}}, history.Fail, nil},
		{workloads.Invocation{F: "delete", Value: []any{int64(1), nil}}, history.Fail, nil},
	}
	for i, s := range steps {
		got := c.Invoke(ctx, s.inv)
		if got.Type != s.wantType {
			t.Fatalf("step %d %v: type %v (%s), want %v", i, s.inv, got.Type, got.Error, s.wantType)
		}
		if s.wantVal != nil && !reflect.DeepEqual(got.Value, s.wantVal) {
			t.Fatalf("step %d: value %v, want %v", i, got.Value, s.wantVal)
		}
	}
	if v, _ := store.Value("r1"); v != "6" {
		t.Fatalf("stored r1 = %q", v)
	}
}

// errKV fails every operation with err.
type errKV struct{ err error }

func (e errKV) Get(context.Context, string) (string, bool, error)         { return "", false, e.err }
func (e errKV) Put(context.Context, string, string) error                 { return e.err }
func (e errKV) CAS(context.Context, string, string, string) (bool, error) { return false, e.err }
func (e errKV) Close() error                                              { return nil }

type errSUT struct{ err error }

func (s errSUT) OpenKV(context.Context) (workloads.KV, error) { return errKV(s), nil }

func TestRegisterOutcomes(t *testing.T) {
	unknown := errors.New("timeout")
	definite := workloads.Definite(errors.New("not leader"))
	wrapped := fmt.Errorf("put: %w", definite)
	tests := []struct {
		err  error
		f    string
		want history.Type
	}{
		{unknown, "write", history.Info},
		{unknown, "cas", history.Info},
		{unknown, "read", history.Fail}, // reads have no effect to be unsure about
		{definite, "write", history.Fail},
		{wrapped, "cas", history.Fail},
		{context.DeadlineExceeded, "write", history.Info},
	}
	w := workloads.NewRegister(workloads.RegisterOptions{})
	for _, tt := range tests {
		c, err := w.NewClient(context.Background(), errSUT{tt.err}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var v any = []any{int64(0), int64(1)}
		if tt.f == "cas" {
			v = []any{int64(0), []any{int64(1), int64(2)}}
		}
		got := c.Invoke(context.Background(), workloads.Invocation{F: tt.f, Value: v})
		if got.Type != tt.want {
			t.Errorf("%s with %v: %v, want %v", tt.f, tt.err, got.Type, tt.want)
		}
		if got.Error == "" {
			t.Errorf("%s with %v: no error text", tt.f, tt.err)
		}
	}
}

func TestDefinite(t *testing.T) {
	if workloads.Definite(nil) != nil {
		t.Fatal("Definite(nil) != nil")
	}
	base := errors.New("refused")
	d := workloads.Definite(base)
	if !workloads.IsDefinite(d) || !workloads.IsDefinite(fmt.Errorf("x: %w", d)) || !errors.Is(d, base) {
		t.Fatal("definite mark lost")
	}
	if workloads.IsDefinite(base) || workloads.IsDefinite(nil) {
		t.Fatal("unmarked error reported definite")
	}
}

func TestNew(t *testing.T) {
	if w, err := workloads.New("register"); err != nil || w.Name() != "register" {
		t.Fatalf("New(register) = %v, %v", w, err)
	}
	if _, err := workloads.New("bogus"); err == nil {
		t.Fatal("New(bogus) succeeded")
	}
}

// FuzzRegisterInvoke feeds the register client invocations of any shape,
// as a corrupt generator or a replayed history might: it must never panic,
// and against a store that never fails it must answer ok or a fail with a
// reason, never an unknown outcome.
func FuzzRegisterInvoke(f *testing.F) {
	for _, s := range []struct{ f, v string }{
		{"read", `[1,null]`}, {"write", `[1,5]`}, {"cas", `[1,[5,6]]`}, {"cas", `[1,[5]]`},
		{"write", `[1,"x"]`}, {"read", `"k"`}, {"nop", `[]`}, {"write", `[1.5,2]`}, {"cas", `[1,{"a":1}]`},
	} {
		f.Add(s.f, s.v)
	}
	f.Fuzz(func(t *testing.T, fn, value string) {
		op, err := history.ParseJSON([]byte(`{"type":"invoke","process":0,"value":` + value + `}`))
		if err != nil {
			return
		}
		store := memkv.New(memkv.Options{})
		c, _ := workloads.NewRegister(workloads.RegisterOptions{}).NewClient(context.Background(), store, 0)
		got := c.Invoke(context.Background(), workloads.Invocation{F: fn, Value: op.Value})
		switch got.Type {
		case history.Ok, history.Fail:
		default:
			t.Fatalf("%s %s: completion type %v against a store that never fails", fn, value, got.Type)
		}
		if got.Type == history.Fail && got.Error == "" {
			t.Fatalf("%s %s: fail without an error", fn, value)
		}
	})
}

// TestRegisterCodec checks the pure codec the blocking client and the
// simulator share: the op each invocation becomes, and the completion each
// result becomes.
func TestRegisterCodec(t *testing.T) {
	codec := workloads.NewRegister(workloads.RegisterOptions{KeyPrefix: "k"}).Codec()
	read := workloads.Invocation{F: "read", Value: []any{int64(7), nil}}
	write := workloads.Invocation{F: "write", Value: []any{int64(7), int64(3)}}
	cas := workloads.Invocation{F: "cas", Value: []any{int64(7), []any{int64(3), int64(4)}}}
	ops := []struct {
		inv  workloads.Invocation
		want workloads.KVOp
		bad  bool
	}{
		{read, workloads.KVOp{Kind: workloads.KVGet, Key: "k7"}, false},
		{write, workloads.KVOp{Kind: workloads.KVPut, Key: "k7", Value: "3"}, false},
		{cas, workloads.KVOp{Kind: workloads.KVCAS, Key: "k7", Old: "3", Value: "4"}, false},
		{workloads.Invocation{F: "write", Value: []any{int64(7), "x"}}, workloads.KVOp{}, true},
		{workloads.Invocation{F: "cas", Value: []any{int64(7), []any{int64(3)}}}, workloads.KVOp{}, true},
		{workloads.Invocation{F: "read", Value: "k"}, workloads.KVOp{}, true},
		{workloads.Invocation{F: "delete", Value: []any{int64(7), nil}}, workloads.KVOp{}, true},
	}
	for _, tt := range ops {
		got, err := codec.Op(tt.inv)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("Op(%v) = %+v, %v; want %+v, error %v", tt.inv, got, err, tt.want, tt.bad)
		}
	}
	unknown := errors.New("timeout")
	definite := workloads.Definite(errors.New("not leader"))
	completions := []struct {
		inv  workloads.Invocation
		res  workloads.KVResult
		typ  history.Type
		want any
	}{
		{read, workloads.KVResult{Found: true, Value: "3"}, history.Ok, []any{int64(7), int64(3)}},
		{read, workloads.KVResult{}, history.Ok, []any{int64(7), nil}},
		{read, workloads.KVResult{Found: true, Value: "junk"}, history.Ok, []any{int64(7), "junk"}},
		{read, workloads.KVResult{Err: unknown}, history.Fail, read.Value},
		{write, workloads.KVResult{}, history.Ok, write.Value},
		{write, workloads.KVResult{Err: unknown}, history.Info, write.Value},
		{write, workloads.KVResult{Err: definite}, history.Fail, write.Value},
		{cas, workloads.KVResult{Swapped: true}, history.Ok, cas.Value},
		{cas, workloads.KVResult{}, history.Fail, cas.Value},
		{cas, workloads.KVResult{Err: unknown}, history.Info, cas.Value},
	}
	for _, tt := range completions {
		got := codec.Complete(tt.inv, tt.res)
		if got.Type != tt.typ || !reflect.DeepEqual(got.Value, tt.want) {
			t.Errorf("Complete(%v, %+v) = %v %v, want %v %v", tt.inv, tt.res, got.Type, got.Value, tt.typ, tt.want)
		}
		if got.Type != history.Ok && got.Error == "" {
			t.Errorf("Complete(%v, %+v): %v without an error", tt.inv, tt.res, got.Type)
		}
	}
}

// TestRegisterReads checks that Reads sets the share of reads.
func TestRegisterReads(t *testing.T) {
	for _, reads := range []int{1, 4, 10} {
		g := workloads.NewRegister(workloads.RegisterOptions{Reads: reads}).NewGenerator(3)
		const n = 5000
		got := 0
		for _, inv := range draw(g, n) {
			if inv.F == "read" {
				got++
			}
		}
		want := n * reads / 10
		if got < want-n/20 || got > want+n/20 {
			t.Errorf("reads %d: %d reads of %d ops, want about %d", reads, got, n, want)
		}
	}
}
