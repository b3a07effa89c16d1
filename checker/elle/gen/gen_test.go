package gen

import (
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/history"
)

func TestListAppendShape(t *testing.T) {
	cfg := Config{Txns: 500, Processes: 5, Keys: 3, FailRate: 0.1, InfoRate: 0.1, Seed: 9}
	ops, err := ListAppend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2*cfg.Txns {
		t.Fatalf("%d ops for %d transactions", len(ops), cfg.Txns)
	}
	open := map[history.Process]bool{}
	counts := map[history.Type]int{}
	for i, op := range ops {
		if op.Index != int64(i) {
			t.Fatalf("op %d has index %d", i, op.Index)
		}
		counts[op.Type]++
		if op.Type == history.Invoke {
			if open[op.Process] {
				t.Fatalf("op %d: process %d invoked twice", i, op.Process)
			}
			open[op.Process] = true
			continue
		}
		if !open[op.Process] {
			t.Fatalf("op %d: completion without invocation", i)
		}
		delete(open, op.Process)
	}
	if counts[history.Fail] == 0 || counts[history.Info] == 0 || counts[history.Ok] == 0 {
		t.Fatalf("type counts %v: want some of each", counts)
	}
	again, _ := ListAppend(cfg)
	if !reflect.DeepEqual(ops, again) {
		t.Fatal("same seed, different history")
	}
	cfg.Seed++
	other, _ := ListAppend(cfg)
	if reflect.DeepEqual(ops, other) {
		t.Fatal("different seeds, same history")
	}
}

func TestListAppendBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Txns: 1}, {Txns: 1, Processes: 1}, {Txns: -1, Processes: 1, Keys: 1}, {Txns: 1, Processes: 1, Keys: 1, Inject: "G9"}} {
		if _, err := ListAppend(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
