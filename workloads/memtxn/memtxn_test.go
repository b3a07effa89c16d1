package memtxn

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/workloads"
)

func txn(t *testing.T, kv workloads.TxnKV, ops ...workloads.MicroOp) []workloads.MicroResult {
	t.Helper()
	res, err := kv.Txn(context.Background(), ops)
	if err != nil {
		t.Fatalf("txn: %v", err)
	}
	return res
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{{RefuseRate: -0.1}, {LoseRate: 2}, {StaleReadRate: 1.5}, {LostWriteRate: -1}, {TornRate: 9}} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestAtomicAndReadYourWrites(t *testing.T) {
	s, _ := New(Options{})
	kv, _ := s.OpenTxn(context.Background())
	app := func(k, v string) workloads.MicroOp {
		return workloads.MicroOp{F: workloads.MicroAppend, Key: k, Value: v}
	}
	rd := func(k string) workloads.MicroOp { return workloads.MicroOp{F: workloads.MicroRead, Key: k} }
	res := txn(t, kv, rd("a"), app("a", "1"), app("a", "2"), rd("a"))
	if res[0].Found || res[0].List != nil || !reflect.DeepEqual(res[3].List, []string{"1", "2"}) {
		t.Fatalf("results %+v", res)
	}
	res = txn(t, kv, workloads.MicroOp{F: workloads.MicroWrite, Key: "b", Value: "x"}, rd("b"))
	if !res[1].Found || res[1].Value != "x" {
		t.Fatalf("write then read: %+v", res)
	}
	kv.Close()
	if _, err := kv.Txn(context.Background(), []workloads.MicroOp{rd("a")}); !errors.Is(err, ErrClosed) || !workloads.IsDefinite(err) {
		t.Fatalf("after close: %v", err)
	}
}

func TestLostWriteDoesNotReappear(t *testing.T) {
	s, _ := New(Options{LostWriteRate: 1})
	kv, _ := s.OpenTxn(context.Background())
	app := func(v string) workloads.MicroOp {
		return workloads.MicroOp{F: workloads.MicroAppend, Key: "a", Value: v}
	}
	res := txn(t, kv, app("1"), app("2"), workloads.MicroOp{F: workloads.MicroRead, Key: "a"})
	if !reflect.DeepEqual(res[2].List, []string{"1", "2"}) {
		t.Fatalf("the transaction sees %q, want its own appends", res[2].List)
	}
	if l := s.List("a"); l != nil {
		t.Fatalf("lost appends installed: %q", l)
	}
}

func TestTornAppliesOnlyTheFirstWrite(t *testing.T) {
	s, _ := New(Options{TornRate: 1})
	kv, _ := s.OpenTxn(context.Background())
	txn(t, kv, workloads.MicroOp{F: workloads.MicroAppend, Key: "a", Value: "1"}, workloads.MicroOp{F: workloads.MicroAppend, Key: "b", Value: "1"})
	if s.List("a") == nil || s.List("b") != nil {
		t.Fatalf("a=%q b=%q", s.List("a"), s.List("b"))
	}
}

func TestStaleReadReturnsPreviousVersion(t *testing.T) {
	s, _ := New(Options{StaleReadRate: 1})
	kv, _ := s.OpenTxn(context.Background())
	w := func(v string) { txn(t, kv, workloads.MicroOp{F: workloads.MicroWrite, Key: "a", Value: v}) }
	r := func() workloads.MicroResult {
		return txn(t, kv, workloads.MicroOp{F: workloads.MicroRead, Key: "a"})[0]
	}
	w("1")
	if got := r(); got.Found {
		t.Fatalf("stale read of a one-version key found %q", got.Value)
	}
	w("2")
	if got := r(); got.Value != "1" {
		t.Fatalf("stale read = %q, want 1", got.Value)
	}
}

func TestLoseAppliesAboutHalf(t *testing.T) {
	s, _ := New(Options{LoseRate: 1, Seed: 3})
	kv, _ := s.OpenTxn(context.Background())
	for range 400 {
		_, err := kv.Txn(context.Background(), []workloads.MicroOp{{F: workloads.MicroAppend, Key: "a", Value: "x"}})
		if !errors.Is(err, ErrLost) || workloads.IsDefinite(err) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := len(s.List("a")); n < 150 || n > 250 {
		t.Fatalf("%d of 400 lost transactions applied", n)
	}
}

func TestCheckGuardsTheWholeTransaction(t *testing.T) {
	s, _ := New(Options{})
	kv, _ := s.OpenTxn(context.Background())
	chk := func(k, v string) workloads.MicroOp {
		return workloads.MicroOp{F: workloads.MicroCheck, Key: k, Value: v}
	}
	wr := func(k, v string) workloads.MicroOp {
		return workloads.MicroOp{F: workloads.MicroWrite, Key: k, Value: v}
	}
	// A key never written holds "".
	txn(t, kv, chk("a", ""), wr("a", "1"), wr("b", "1"))
	_, err := kv.Txn(context.Background(), []workloads.MicroOp{wr("b", "2"), chk("a", "0"), wr("a", "2")})
	if !errors.Is(err, ErrCheckFailed) || !workloads.IsDefinite(err) {
		t.Fatalf("mismatched check: err = %v, want a definite ErrCheckFailed", err)
	}
	res := txn(t, kv, workloads.MicroOp{F: workloads.MicroRead, Key: "a"}, workloads.MicroOp{F: workloads.MicroRead, Key: "b"})
	if res[0].Value != "1" || res[1].Value != "1" {
		t.Fatalf("a failed check applied writes: a=%q b=%q", res[0].Value, res[1].Value)
	}
	txn(t, kv, chk("a", "1"), wr("a", "3"))
	if got := txn(t, kv, workloads.MicroOp{F: workloads.MicroRead, Key: "a"})[0].Value; got != "3" {
		t.Fatalf("a matching check did not apply: a=%q", got)
	}
}
