package elle

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/chaoskv/chaos/history"
)

// TestRealtimeBarriers: the barrier chain adds at most three edges per
// transaction, yet its transitive closure, restricted to transactions, is
// exactly "A committed before B was invoked".
func TestRealtimeBarriers(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		// Random overlapping intervals from a few processes; some end info.
		var ops []history.Op
		busy := map[int]bool{}
		for len(ops) < 200 {
			p := rng.IntN(6)
			typ := history.Invoke
			if busy[p] {
				typ = []history.Type{history.Ok, history.Ok, history.Ok, history.Info}[rng.IntN(4)]
				delete(busy, p)
			} else {
				busy[p] = true
			}
			ops = append(ops, history.Op{Index: int64(len(ops)), Type: typ, Process: history.Process(p), F: "txn", Value: []any{[]any{"append", int64(0), int64(len(ops))}}})
		}
		b := NewBuilder("list-append")
		for i := range ops {
			_ = b.Take(&ops[i])
		}
		p, err := b.finish()
		if err != nil {
			t.Fatal(err)
		}
		r := &run{p: p}
		var out edges
		nb := r.realtimeEdges(&out)
		n := len(p.txns) + nb
		reach := make([][]bool, n)
		for i := range reach {
			reach[i] = make([]bool, n)
		}
		for i := range out.from {
			reach[out.from[i]][out.to[i]] = true
		}
		for k := range n {
			for i := range n {
				if !reach[i][k] {
					continue
				}
				for j := range n {
					if reach[k][j] {
						reach[i][j] = true
					}
				}
			}
		}
		for a := range len(p.txns) {
			for b := range len(p.txns) {
				want := p.txns[a].st == stOK && p.txns[a].cmpPos < p.txns[b].invPos
				if reach[a][b] != want {
					t.Fatalf("seed %d: %s: reachable %v, want %v", seed, fmt.Sprintf("T%d->T%d", a, b), reach[a][b], want)
				}
			}
		}
		if len(out.from) > 3*len(p.txns) {
			t.Errorf("seed %d: %d edges for %d transactions", seed, len(out.from), n)
		}
	}
}
