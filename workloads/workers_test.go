package workloads

import (
	"testing"

	"github.com/chaoskv/chaos/history"
)

// countGen yields read invocations numbered from 1, and two final reads.
type countGen struct{ n int }

func (g *countGen) Next() Invocation {
	g.n++
	return Invocation{F: "read", Value: g.n}
}

func (g *countGen) FinalReads() []Invocation {
	return []Invocation{{F: "final", Value: 1}, {F: "final", Value: 2}}
}

func TestWorkersRetireAndBudget(t *testing.T) {
	w, err := NewWorkers(&countGen{}, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		worker   int
		typ      history.Type
		wantProc history.Process // the worker's process after the completion
	}
	steps := []step{
		{0, history.Ok, 0},
		{1, history.Info, 4}, // retired: 1 + 3 workers
		{1, history.Fail, 4},
		{1, history.Info, 7},
		{2, history.Type(99), 5}, // not an outcome: unknown, so retired
	}
	for i, s := range steps {
		inv, ok := w.Next()
		if !ok {
			t.Fatalf("step %d: budget spent after %d invocations", i, w.Phase().Invoked)
		}
		c := w.Complete(s.worker, inv, Completion{Type: s.typ})
		if s.typ == history.Type(99) && (c.Type != history.Info || c.Error == "") {
			t.Errorf("step %d: a completion of no known type became %v %q, want info with the reason", i, c.Type, c.Error)
		}
		if c.Type != history.Ok && c.Value != inv.Value {
			t.Errorf("step %d: a %v without a value carries %v, want the invocation's %v", i, c.Type, c.Value, inv.Value)
		}
		if got := w.Process(s.worker); got != s.wantProc {
			t.Errorf("step %d: worker %d is process %d, want %d", i, s.worker, got, s.wantProc)
		}
	}
	if _, ok := w.Next(); ok || !w.Budgeted() {
		t.Fatal("a sixth invocation was drawn past the op limit of 5")
	}
	want := Tally{Invoked: 5, Ok: 1, Fail: 1, Info: 3}
	if got := w.Phase(); got != want {
		t.Errorf("phase tally %+v, want %+v", got, want)
	}
	// Final reads run above every process used (7), and a fresh one after
	// an Info.
	reads := w.FinalReads()
	if len(reads) != 2 {
		t.Fatalf("final reads %v", reads)
	}
	if p := w.FinalProcess(); p != 8 {
		t.Errorf("first final process %d, want 8", p)
	}
	w.InvokeFinal()
	w.CompleteFinal(reads[0], Completion{Type: history.Info})
	if p := w.FinalProcess(); p != 9 {
		t.Errorf("final process after an info %d, want 9", p)
	}
	w.InvokeFinal()
	w.CompleteFinal(reads[0], Completion{Type: history.Ok, Value: 3})
	if got, want := w.Final(), (Tally{Invoked: 2, Ok: 1, Info: 1}); got != want {
		t.Errorf("final tally %+v, want %+v", got, want)
	}
	if got := w.MaxProcess(); got != 9 {
		t.Errorf("max process %d, want 9", got)
	}
}

func TestWorkersRefuseBadArguments(t *testing.T) {
	for _, tt := range []struct {
		n     int
		limit int64
	}{{0, 1}, {-1, 0}, {2, -1}} {
		if _, err := NewWorkers(&countGen{}, tt.n, tt.limit); err == nil {
			t.Errorf("NewWorkers(%d workers, limit %d) accepted", tt.n, tt.limit)
		}
	}
	w, err := NewWorkers(&countGen{}, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, ok := w.Next(); !ok {
			t.Fatal("an op limit of 0 must mean no limit")
		}
	}
}
