package elle

import (
	"fmt"
	"slices"
	"strings"
)

// cstep is one edge of a found cycle.
type cstep struct {
	from, to int32
	kind     edgeKind
}

// cycleStats counts the non-trivial components and the transactions in
// the largest.
type cycleStats struct {
	sccs, largest int
}

// searcher finds and classifies cycles inside strongly connected
// components. Its per-node arrays are allocated once and stamped, so a
// search touches only the nodes it visits.
type searcher struct {
	r     *run
	g     *graph
	f     *sccFinder
	b     *budget
	comp  []int32 // component id per node, -1 outside every non-trivial one
	mark  []int32 // membership stamp of the sub-component being searched
	stamp int32
	seen  []int32 // BFS visit stamp
	seenS int32
	par   []int32 // BFS parent edge
	parN  []int32 // BFS parent node
	queue []int32
	// Product-BFS state: visit stamps per (node, flags), and the states.
	pseen   []int32
	pstamp  int32
	pstates []pstate
}

// searchCycles finds the non-trivial components of the dependency graph
// and reports, per component, the cycles that Elle's anomaly classes
// describe. Cycles made of data dependencies alone are searched first;
// only if a component has none are process or realtime edges added, so a
// "-process" or "-realtime" anomaly is one that needs those edges.
func (r *run) searchCycles(b *budget, wantSSI bool) cycleStats {
	g := r.g
	s := &searcher{r: r, g: g, f: newSCCFinder(g), b: b,
		comp: make([]int32, g.n), mark: make([]int32, g.n)}
	for i := range s.comp {
		s.comp[i] = -1
	}
	roots := make([]int32, g.n)
	for i := range roots {
		roots[i] = int32(i)
	}
	full := kWW | kWR | kRW | r.extra
	var sccs [][]int32
	var st cycleStats
	txns := int32(len(r.p.txns))
	s.f.run(roots, full, nil, func(c []int32) {
		sccs = append(sccs, slices.Clone(c))
		real := 0
		for _, v := range c {
			if v < txns {
				real++
			}
		}
		st.largest = max(st.largest, real)
	})
	s.f.reset()
	st.sccs = len(sccs)
	if len(sccs) == 0 {
		return st
	}
	s.seen = make([]int32, g.n)
	s.par = make([]int32, g.n)
	s.parN = make([]int32, g.n)
	for i, c := range sccs {
		for _, v := range c {
			s.comp[v] = int32(i)
		}
	}
	suffix := map[edgeKind]string{kProcess: "-process", kRealtime: "-realtime"}[r.extra]
	for i, c := range sccs {
		if b.out {
			break
		}
		if !s.level(c, int32(i), 0, "") && r.extra != 0 && !b.out {
			s.level(c, int32(i), r.extra, suffix)
		}
	}
	// A component whose data-only cycles are all G2 never had its process
	// or realtime cycles searched, yet one with a single or non-adjacent
	// anti-dependency would still rule out the strong(-session) snapshot
	// isolation: look for one when nothing else has ruled it out.
	ssi := map[edgeKind]string{kProcess: "strong-session-snapshot-isolation", kRealtime: "strong-snapshot-isolation"}[r.extra]
	if wantSSI && ssi != "" && !b.out && !r.violates(ssi) {
		mask := kWW | kWR | r.extra
		for i, c := range sccs {
			if b.out {
				break
			}
			cyc := s.single(c, int32(i), mask)
			if cyc == nil {
				cyc = s.product(c, int32(i), mask, false)
			}
			if cyc != nil {
				s.report(ssi+"-cycle-exists", cyc, mask)
				break
			}
		}
	}
	return st
}

// violates reports whether the anomalies found so far rule out model m.
func (r *run) violates(m string) bool {
	var types []string
	for t := range r.anomalies {
		types = append(types, t)
	}
	not, also := violatedModels(types)
	return slices.Contains(not, m) || slices.Contains(also, m)
}

// level searches one component for each cycle class using data edges plus
// the extra kinds ex, reporting at most one cycle per class. It reports
// whether it found any.
func (s *searcher) level(c []int32, id int32, ex edgeKind, suffix string) bool {
	found := false
	if cyc := s.inSubSCCs(c, id, kWW|ex, kWW|ex); cyc != nil {
		s.report("G0"+suffix, cyc, kWW|ex)
		found = true
	}
	mask := kWW | kWR | ex
	if s.b.out {
		return found
	}
	if cyc := s.inSubSCCs(c, id, mask, kWR); cyc != nil {
		s.report("G1c"+suffix, cyc, mask)
		found = true
	}
	if s.b.out {
		return found
	}
	if cyc := s.single(c, id, mask); cyc != nil {
		s.report("G-single-item"+suffix, cyc, mask)
		found = true
	}
	if s.b.out {
		return found
	}
	if cyc := s.product(c, id, mask, false); cyc != nil {
		s.report("G-nonadjacent-item"+suffix, cyc, mask)
		found = true
	}
	if s.b.out {
		return found
	}
	if cyc := s.product(c, id, mask, true); cyc != nil {
		s.report("G2-item"+suffix, cyc, mask)
		found = true
	}
	return found
}

// inSubSCCs splits component c by the edges in mask and returns a cycle
// that starts with an edge of kind start (a subset of mask) and returns
// within one piece along mask edges. Such an edge u->v lies on a cycle
// exactly when u and v share a piece, so one BFS per class suffices.
func (s *searcher) inSubSCCs(c []int32, id int32, mask, start edgeKind) []cstep {
	var subs [][]int32
	member := func(w int32) bool { return s.comp[w] == id }
	s.f.run(c, mask, member, func(sc []int32) { subs = append(subs, slices.Clone(sc)) })
	s.f.reset()
	g := s.g
	for _, sc := range subs {
		s.stamp++
		for _, v := range sc {
			s.mark[v] = s.stamp
		}
		stamp := s.stamp
		in := func(w int32) bool { return s.mark[w] == stamp }
		for _, u := range sc {
			for e := g.off[u]; e < g.off[u+1]; e++ {
				if g.kind[e]&start == 0 || !in(g.to[e]) {
					continue
				}
				if s.b.spend() {
					return nil
				}
				path := s.bfs(g.to[e], u, mask, in)
				if path != nil {
					return append([]cstep{{u, g.to[e], g.kind[e]}}, path...)
				}
			}
		}
	}
	return nil
}

// single returns a cycle of one rw edge u->v closed by a path from v back
// to u along mask edges inside component c, or nil.
func (s *searcher) single(c []int32, id int32, mask edgeKind) []cstep {
	g := s.g
	in := func(w int32) bool { return s.comp[w] == id }
	for _, u := range c {
		for e := g.off[u]; e < g.off[u+1]; e++ {
			if g.kind[e]&kRW == 0 || !in(g.to[e]) {
				continue
			}
			if path := s.bfs(g.to[e], u, mask, in); path != nil {
				return append([]cstep{{u, g.to[e], kRW}}, path...)
			}
			if s.b.out {
				return nil
			}
		}
	}
	return nil
}

// bfs returns a shortest path from src to dst along edges in mask whose
// targets satisfy in, or nil.
func (s *searcher) bfs(src, dst int32, mask edgeKind, in func(int32) bool) []cstep {
	g := s.g
	s.seenS++
	s.seen[src] = s.seenS
	s.queue = append(s.queue[:0], src)
	for qi := 0; qi < len(s.queue); qi++ {
		x := s.queue[qi]
		if s.b.spend() {
			return nil
		}
		for e := g.off[x]; e < g.off[x+1]; e++ {
			if g.kind[e]&mask == 0 {
				continue
			}
			w := g.to[e]
			if s.seen[w] == s.seenS || !in(w) {
				continue
			}
			s.seen[w] = s.seenS
			s.par[w] = e
			s.parN[w] = x
			if w == dst {
				var path []cstep
				for y := dst; y != src; y = s.parN[y] {
					path = append(path, cstep{s.parN[y], y, g.kind[s.par[y]]})
				}
				slices.Reverse(path)
				return path
			}
			s.queue = append(s.queue, w)
		}
	}
	return nil
}

// product searches component c for a cycle with at least two rw edges:
// with adjacent set, some two of them consecutive (G2-item); otherwise no
// two consecutive (G-nonadjacent). It runs a BFS over (node, last edge was
// rw, property so far) from each rw edge.
func (s *searcher) product(c []int32, id int32, mask edgeKind, adjacent bool) []cstep {
	g := s.g
	if s.pseen == nil {
		s.pseen = make([]int32, 4*g.n)
	}
	states := s.pstates[:0]
	defer func() { s.pstates = states[:0] }()
	for _, u := range c {
		for e0 := g.off[u]; e0 < g.off[u+1]; e0++ {
			v := g.to[e0]
			if g.kind[e0]&kRW == 0 || s.comp[v] != id {
				continue
			}
			states = append(states[:0], pstate{node: v, flags: 1, parent: -1, kind: kRW})
			s.pstamp++
			s.pseen[v<<2|1] = s.pstamp
			for qi := 0; qi < len(states); qi++ {
				if s.b.spend() {
					return nil
				}
				cur := states[qi]
				for e := g.off[cur.node]; e < g.off[cur.node+1]; e++ {
					w := g.to[e]
					if s.comp[w] != id {
						continue
					}
					k := g.kind[e]
					var fl uint8
					switch {
					case k&mask != 0:
						fl = cur.flags &^ 1
					case k&kRW != 0:
						lastRW := cur.flags&1 != 0
						if adjacent {
							fl = 1 | cur.flags&2
							if lastRW {
								fl |= 2
							}
						} else {
							if lastRW {
								continue
							}
							fl = 1 | 2
						}
					default:
						continue
					}
					key := w<<2 | int32(fl)
					if s.pseen[key] == s.pstamp {
						continue
					}
					s.pseen[key] = s.pstamp
					states = append(states, pstate{node: w, flags: fl, parent: int32(qi), kind: k})
					if w != u {
						continue
					}
					done := fl&2 != 0 || fl&1 != 0
					if !adjacent {
						done = fl&2 != 0 && fl&1 == 0
					}
					if !done {
						// Reaching u without the property: do not walk on
						// through it, which would make the cycle non-simple.
						states = states[:len(states)-1]
						continue
					}
					path := []cstep{}
					for i := int32(len(states) - 1); states[i].parent >= 0; i = states[i].parent {
						pi := states[i].parent
						path = append(path, cstep{states[pi].node, states[i].node, states[i].kind})
					}
					slices.Reverse(path)
					return append([]cstep{{u, v, kRW}}, path...)
				}
			}
		}
	}
	return nil
}

// pstate is a state of the product BFS: a node, and flags 1 (the last
// edge was rw) and 2 (an adjacent rw pair was seen, for G2; a second rw
// edge was seen, for G-nonadjacent).
type pstate struct {
	node   int32
	flags  uint8
	parent int32
	kind   edgeKind
}

// bestKind relabels a non-rw step with the most informative kind the graph
// has between the same two transactions: data dependencies first.
func (s *searcher) bestKind(st cstep, mask edgeKind) edgeKind {
	if st.kind == kRW {
		return kRW
	}
	g := s.g
	var have edgeKind
	for e := g.off[st.from]; e < g.off[st.from+1]; e++ {
		if g.to[e] == st.to {
			have |= g.kind[e]
		}
	}
	have &= mask &^ kRW
	for _, k := range []edgeKind{kWW, kWR, kProcess, kRealtime} {
		if have&k != 0 {
			return k
		}
	}
	return st.kind
}

// fold rewrites a cycle so it starts at a transaction and every run of
// hops through realtime barrier nodes becomes one realtime step.
func (s *searcher) fold(cyc []cstep) []cstep {
	n := int32(len(s.r.p.txns))
	start := 0
	for cyc[start].from >= n {
		start++
	}
	var out []cstep
	for i := 0; i < len(cyc); i++ {
		st := cyc[(start+i)%len(cyc)]
		if st.to < n {
			out = append(out, st)
			continue
		}
		from := st.from
		for st.to >= n {
			i++
			st = cyc[(start+i)%len(cyc)]
		}
		out = append(out, cstep{from, st.to, kRealtime})
	}
	return out
}

// report turns a cycle into an Anomaly whose steps explain themselves.
func (s *searcher) report(typ string, cyc []cstep, mask edgeKind) {
	r := s.r
	p := r.p
	cyc = s.fold(cyc)
	m := len(cyc)
	names := make([]string, m)
	a := &Anomaly{Type: typ}
	for i, st := range cyc {
		names[i] = fmt.Sprintf("T%d", i+1)
		a.Txns = append(a.Txns, p.export(st.from))
	}
	var legend []string
	for i, st := range cyc {
		tx := &p.txns[st.from]
		legend = append(legend, fmt.Sprintf("%s be op %d (process %d)", names[i], tx.ref(), tx.proc))
	}
	sentences := []string{"Let " + strings.Join(legend, ", ") + "."}
	for i, st := range cyc {
		k := s.bestKind(st, mask)
		na, nb := names[i], names[(i+1)%m]
		var step Step
		ok := false
		switch k {
		case kWW, kWR, kRW:
			step, ok = r.ex.explain(k, st.from, st.to, na, nb)
		case kProcess:
			step, ok = Step{Type: "process", Explanation: fmt.Sprintf("%s completed before %s was invoked on the same process, so %s < %s (process).",
				p.describe(na, st.from), p.describe(nb, st.to), na, nb)}, true
		case kRealtime:
			step, ok = Step{Type: "realtime", Explanation: fmt.Sprintf("%s completed (op %d) before %s was invoked (op %d), so %s < %s (realtime).",
				p.describe(na, st.from), p.txns[st.from].ref(), p.describe(nb, st.to), p.txns[st.to].inv, na, nb)}, true
		}
		if !ok {
			step = Step{Type: k.String(), Explanation: fmt.Sprintf("%s < %s (%s).", na, nb, k)}
		}
		if k == kProcess || k == kRealtime {
			step.AMop, step.BMop = -1, -1
		}
		step.From, step.To = i, (i+1)%m
		a.Steps = append(a.Steps, step)
		sentences = append(sentences, step.Explanation)
	}
	chain := strings.Join(append(slices.Clone(names), names[0]), " < ")
	sentences = append(sentences, fmt.Sprintf("So %s: a cycle, which no order of the transactions can satisfy (%s).", chain, describeType(typ)))
	a.Explanation = strings.Join(sentences, " ")
	r.add(a)
}

func describeType(typ string) string {
	base, variant := typ, ""
	for _, suf := range []string{"-process", "-realtime"} {
		if strings.HasSuffix(typ, suf) {
			base, variant = strings.TrimSuffix(typ, suf), suf[1:]
		}
	}
	var d string
	switch base {
	case "G0":
		d = "G0: write-write dependencies only"
	case "G1c":
		d = "G1c: write-write and write-read dependencies"
	case "G-single-item":
		d = "G-single: exactly one read-write anti-dependency"
	case "G-nonadjacent-item":
		d = "G-nonadjacent: several anti-dependencies, none adjacent"
	case "G2-item":
		d = "G2-item: two or more anti-dependencies, some adjacent"
	case "strong-snapshot-isolation-cycle-exists":
		d = "a cycle strong snapshot isolation forbids: no adjacent anti-dependencies, closed by realtime order"
	case "strong-session-snapshot-isolation-cycle-exists":
		d = "a cycle strong session snapshot isolation forbids: no adjacent anti-dependencies, closed by process order"
	default:
		d = base
	}
	if variant != "" {
		d += ", needing " + variant + " order"
	}
	return d
}
