package memkv

import (
	"context"
	"errors"
	"testing"

	"github.com/chaoskv/chaos/workloads"
)

func TestFaultInjection(t *testing.T) {
	s := New(Options{RefuseRate: 0.2, LoseRate: 0.2, Seed: 9})
	kv, _ := s.OpenKV(context.Background())
	var refused, lost, ok int
	for i := range 2000 {
		err := kv.Put(context.Background(), "k", "v")
		switch {
		case err == nil:
			ok++
		case workloads.IsDefinite(err) && errors.Is(err, ErrRefused):
			refused++
		case errors.Is(err, ErrLost) && !workloads.IsDefinite(err):
			lost++
		default:
			t.Fatalf("op %d: unexpected error %v", i, err)
		}
	}
	for name, n := range map[string]int{"refused": refused, "lost": lost, "ok": ok} {
		if n < 200 {
			t.Errorf("%s only %d of 2000", name, n)
		}
	}
}

func TestRefusedIsNotApplied(t *testing.T) {
	s := New(Options{RefuseRate: 1})
	kv, _ := s.OpenKV(context.Background())
	if err := kv.Put(context.Background(), "k", "v"); !workloads.IsDefinite(err) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := s.Value("k"); ok {
		t.Fatal("refused write was applied")
	}
	if sw, err := kv.CAS(context.Background(), "k", "", "v"); sw || err == nil {
		t.Fatalf("cas = %v, %v", sw, err)
	}
}

func TestCASAndClose(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	kv, _ := s.OpenKV(ctx)
	if sw, err := kv.CAS(ctx, "k", "a", "b"); sw || err != nil {
		t.Fatalf("cas on missing key = %v, %v", sw, err)
	}
	kv.Put(ctx, "k", "a")
	if sw, err := kv.CAS(ctx, "k", "a", "b"); !sw || err != nil {
		t.Fatalf("cas = %v, %v", sw, err)
	}
	if v, found, _ := kv.Get(ctx, "k"); !found || v != "b" {
		t.Fatalf("get = %q %v", v, found)
	}
	kv.Close()
	if _, _, err := kv.Get(ctx, "k"); !workloads.IsDefinite(err) {
		t.Fatalf("get after close: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.OpenKV(cctx); err == nil {
		t.Fatal("open with a cancelled context succeeded")
	}
	if s.Opens() != 1 {
		t.Fatalf("opens = %d", s.Opens())
	}
}
