package elle

import (
	"time"
)

// edgeKind is a bit set of dependency kinds.
type edgeKind uint8

const (
	kWW edgeKind = 1 << iota
	kWR
	kRW
	kProcess
	kRealtime
)

func (k edgeKind) String() string {
	switch k {
	case kWW:
		return "ww"
	case kWR:
		return "wr"
	case kRW:
		return "rw"
	case kProcess:
		return "process"
	case kRealtime:
		return "realtime"
	}
	return "mixed"
}

// edges accumulates dependency edges before they are frozen into a graph.
type edges struct {
	from, to []int32
	kind     []edgeKind
}

func newEdges(capacity int) edges {
	return edges{from: make([]int32, 0, capacity), to: make([]int32, 0, capacity), kind: make([]edgeKind, 0, capacity)}
}

func (e *edges) add(a, b int32, k edgeKind) {
	if a == b {
		return
	}
	e.from = append(e.from, a)
	e.to = append(e.to, b)
	e.kind = append(e.kind, k)
}

func (e *edges) len() int { return len(e.from) }

// graph is a directed multigraph in compressed sparse row form: the edges
// leaving v are to[off[v]:off[v+1]] with kinds kind[off[v]:off[v+1]].
type graph struct {
	n    int
	off  []int32
	to   []int32
	kind []edgeKind
}

// freeze builds the CSR graph over n nodes by a counting sort on the
// source, which keeps this linear and allocation-light.
func freeze(n int, lists ...*edges) *graph {
	g := &graph{n: n, off: make([]int32, n+1)}
	total := 0
	for _, l := range lists {
		total += l.len()
		for _, f := range l.from {
			g.off[f+1]++
		}
	}
	for i := 1; i <= n; i++ {
		g.off[i] += g.off[i-1]
	}
	g.to = make([]int32, total)
	g.kind = make([]edgeKind, total)
	fill := make([]int32, n)
	copy(fill, g.off[:n])
	for _, l := range lists {
		for i, f := range l.from {
			at := fill[f]
			fill[f]++
			g.to[at] = l.to[i]
			g.kind[at] = l.kind[i]
		}
	}
	return g
}

// budget bounds the cycle search in wall time.
type budget struct {
	deadline time.Time
	steps    int
	out      bool
}

// spend counts one unit of search work and reports whether the budget is
// exhausted. It reads the clock only every 1024 steps.
func (b *budget) spend() bool {
	if b.out {
		return true
	}
	b.steps++
	if b.steps&1023 == 0 && !b.deadline.IsZero() && time.Now().After(b.deadline) {
		b.out = true
	}
	return b.out
}

// sccFinder runs Tarjan's algorithm iteratively (no recursion, so a
// million-node chain cannot overflow the stack). Its arrays are sized once
// for the whole graph and reset only where a run touched them.
type sccFinder struct {
	g       *graph
	index   []int32
	low     []int32
	onStack []bool
	stack   []int32
	call    []frame
	touched []int32
}

type frame struct {
	v int32
	e int32
}

func newSCCFinder(g *graph) *sccFinder {
	f := &sccFinder{
		g:       g,
		index:   make([]int32, g.n),
		low:     make([]int32, g.n),
		onStack: make([]bool, g.n),
	}
	for i := range f.index {
		f.index[i] = -1
	}
	return f
}

// run finds the strongly connected components reachable from roots using
// only edges whose kind intersects mask and whose target satisfies member
// (nil: every node). It calls emit for each component of two or more nodes;
// the slice is reused after emit returns.
func (f *sccFinder) run(roots []int32, mask edgeKind, member func(int32) bool, emit func([]int32)) {
	g := f.g
	next := int32(0)
	for _, r := range roots {
		if f.index[r] != -1 {
			continue
		}
		f.visit(r, &next)
		for len(f.call) > 0 {
			fr := &f.call[len(f.call)-1]
			v := fr.v
			if fr.e < g.off[v+1] {
				e := fr.e
				fr.e++
				if g.kind[e]&mask == 0 {
					continue
				}
				w := g.to[e]
				if member != nil && !member(w) {
					continue
				}
				if f.index[w] == -1 {
					f.visit(w, &next)
				} else if f.onStack[w] && f.index[w] < f.low[v] {
					f.low[v] = f.index[w]
				}
				continue
			}
			f.call = f.call[:len(f.call)-1]
			if len(f.call) > 0 {
				p := f.call[len(f.call)-1].v
				if f.low[v] < f.low[p] {
					f.low[p] = f.low[v]
				}
			}
			if f.low[v] == f.index[v] {
				i := len(f.stack) - 1
				for f.stack[i] != v {
					i--
				}
				comp := f.stack[i:]
				for _, w := range comp {
					f.onStack[w] = false
				}
				if len(comp) > 1 {
					emit(comp)
				}
				f.stack = f.stack[:i]
			}
		}
	}
}

func (f *sccFinder) visit(v int32, next *int32) {
	f.index[v] = *next
	f.low[v] = *next
	*next++
	f.stack = append(f.stack, v)
	f.onStack[v] = true
	f.call = append(f.call, frame{v: v, e: f.g.off[v]})
	f.touched = append(f.touched, v)
}

// reset forgets every node the previous runs visited.
func (f *sccFinder) reset() {
	for _, v := range f.touched {
		f.index[v] = -1
	}
	f.touched = f.touched[:0]
}
