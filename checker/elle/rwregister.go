package elle

import (
	"fmt"
	"slices"
	"strings"
)

// Version-order sources, used as edge kinds of the version graph.
const (
	srcInit edgeKind = 1 << iota
	srcWFR
	srcSeq
	srcLin
)

var sourceNames = []struct {
	k    edgeKind
	name string
}{{srcInit, "initial-state"}, {srcLin, "linearizable-keys"}, {srcSeq, "sequential-keys"}, {srcWFR, "wfr-keys"}}

type rwWrite struct {
	txn   int32
	mop   int32
	ver   int32
	final bool
}

type rwRead struct {
	txn int32
	mop int32
	ver int32
	rmw bool
}

// touch summarises how one committed transaction used one key: the version
// it saw first and the version it left behind.
type touch struct {
	txn         int32
	key         int32
	first, last int32
}

// rwRegister infers dependencies for rw-register histories. Versions are
// (key, value) pairs; nil is every key's initial version.
type rwRegister struct {
	r       *run
	vix     elemIndex
	nilVer  []int32
	verKey  []int32
	verVal  []any
	writes  []rwWrite
	reads   []rwRead
	touches []touch
	vg      *graph
	bad     []bool
	writer  []int32 // final committed-or-indeterminate writer per version
}

func (rr *rwRegister) version(key int32, v any) int32 {
	if v == nil {
		for int(key) >= len(rr.nilVer) {
			rr.nilVer = append(rr.nilVer, -1)
		}
		if rr.nilVer[key] < 0 {
			rr.nilVer[key] = int32(len(rr.verKey))
			rr.verKey = append(rr.verKey, key)
			rr.verVal = append(rr.verVal, nil)
		}
		return rr.nilVer[key]
	}
	if id := rr.vix.get(key, v); id >= 0 {
		return id
	}
	id := int32(len(rr.verKey))
	rr.vix.put(key, v, id)
	rr.verKey = append(rr.verKey, key)
	rr.verVal = append(rr.verVal, v)
	return id
}

func (rr *rwRegister) scan() {
	p := rr.r.p
	rr.vix = newElemIndex(p.nmops / 2)
	rr.writes = make([]rwWrite, 0, p.nmops/2+1)
	rr.reads = make([]rwRead, 0, p.nmops/2+1)
	rr.touches = make([]touch, 0, p.nmops/2+1)
	type kstate struct {
		key         int32
		read, wrote bool
		val         any
		first       int32
		hasFirst    bool
	}
	var ks []kstate
	var seen []int32
	for ti := range p.txns {
		t := int32(ti)
		tx := &p.txns[t]
		mops := p.txnMops(t)
		seen = seen[:0]
		first := len(rr.writes)
		for j := len(mops) - 1; j >= 0; j-- {
			m := &mops[j]
			if m.f != fWrite {
				continue
			}
			final := !slices.Contains(seen, m.key)
			if final {
				seen = append(seen, m.key)
			}
			rr.writes = append(rr.writes, rwWrite{txn: t, mop: tx.mopLo + int32(j), ver: rr.version(m.key, m.val), final: final})
		}
		slices.Reverse(rr.writes[first:])
		if tx.st != stOK {
			continue
		}
		ks = ks[:0]
		for j := range mops {
			m := &mops[j]
			var s *kstate
			for i := range ks {
				if ks[i].key == m.key {
					s = &ks[i]
					break
				}
			}
			if s == nil {
				ks = append(ks, kstate{key: m.key})
				s = &ks[len(ks)-1]
			}
			if m.f == fWrite {
				s.wrote = true
				s.val = m.val
				continue
			}
			if s.wrote || s.read {
				// A later read still observed some version: it carries
				// the same dependencies as a first read (a
				// non-repeatable read shows up as a cycle through them),
				// but only a first read can be read-modify-write.
				rr.reads = append(rr.reads, rwRead{txn: t, mop: tx.mopLo + int32(j), ver: rr.version(m.key, m.val)})
				if !eqScalar(m.val, s.val) {
					key := p.keys.value(m.key)
					rr.r.add(&Anomaly{
						Type: "internal", Txns: []Txn{p.export(t)}, Key: key,
						Mop: exportMop(p, m), Expected: s.val,
						Explanation: fmt.Sprintf("%s read key %v = %s, but its own earlier operations on that key imply %s.",
							p.describe("T1", t), key, fmtVal(m.val), fmtVal(s.val)),
					})
				}
				if !s.wrote {
					s.val = m.val
				}
				continue
			}
			s.read = true
			s.val = m.val
			ver := rr.version(m.key, m.val)
			s.first, s.hasFirst = ver, true
			rmw := false
			for k := j + 1; k < len(mops); k++ {
				if mops[k].f == fWrite && mops[k].key == m.key {
					rmw = true
					break
				}
			}
			rr.reads = append(rr.reads, rwRead{txn: t, mop: tx.mopLo + int32(j), ver: ver, rmw: rmw})
		}
		for i := range ks {
			s := &ks[i]
			last := s.first
			if s.wrote {
				last = rr.version(s.key, s.val)
			}
			if !s.hasFirst {
				s.first = last
			}
			rr.touches = append(rr.touches, touch{txn: t, key: s.key, first: s.first, last: last})
		}
	}
}

// versionGraph builds each key's version order from the enabled sources
// and reports keys whose order is cyclic.
func (rr *rwRegister) versionGraph() {
	r := rr.r
	p := r.p
	ve := newEdges(len(rr.verKey) + 3*len(rr.touches))
	nk := len(p.keys.vals)
	for v := range rr.verKey {
		if rr.verVal[v] != nil {
			ve.add(rr.version(rr.verKey[v], nil), int32(v), srcInit)
		}
	}
	if r.opts.WFRKeys {
		for _, tc := range rr.touches {
			ve.add(tc.first, tc.last, srcWFR)
		}
	}
	if r.opts.SequentialKeys {
		last := map[[2]int64]int32{}
		for _, tc := range rr.touches {
			k := [2]int64{p.txns[tc.txn].proc, int64(tc.key)}
			if prev, ok := last[k]; ok {
				ve.add(prev, tc.first, srcSeq)
			}
			ve.add(tc.first, tc.last, srcSeq)
			last[k] = tc.last
		}
	}
	if r.opts.LinearizableKeys {
		rr.linearizable(&ve, nk)
	}
	rr.vg = freeze(len(rr.verKey), &ve)
	rr.bad = make([]bool, nk)
	src := make([]edgeKind, nk)
	for v := range rr.verKey {
		for e := rr.vg.off[v]; e < rr.vg.off[v+1]; e++ {
			src[rr.verKey[v]] |= rr.vg.kind[e]
		}
	}
	f := newSCCFinder(rr.vg)
	all := make([]int32, len(rr.verKey))
	for i := range all {
		all[i] = int32(i)
	}
	f.run(all, srcInit|srcWFR|srcSeq|srcLin, nil, func(comp []int32) {
		k := rr.verKey[comp[0]]
		rr.bad[k] = true
		var vals []any
		for _, v := range comp {
			vals = append(vals, rr.verVal[v])
		}
		slices.SortFunc(vals, cmpScalar)
		var names []string
		for _, s := range sourceNames {
			if src[k]&s.k != 0 {
				names = append(names, s.name)
			}
		}
		key := p.keys.value(k)
		r.add(&Anomaly{
			Type: "cyclic-versions", Key: key, Values: vals, Sources: names,
			Explanation: fmt.Sprintf("The versions %s of key %v must each precede another in a cycle (inferred from %s), so no order of writes explains them.",
				fmtList(vals), key, strings.Join(names, ", ")),
		})
	})
}

// linearizable orders versions per key by realtime: when one transaction
// on a key completed before another on the same key began, the second saw
// a version no older than the one the first left.
func (rr *rwRegister) linearizable(ve *edges, nk int) {
	p := rr.r.p
	off := bucket(nk, len(rr.touches), func(i int) int32 { return rr.touches[i].key })
	byKey := permute(rr.touches, off, func(t touch) int32 { return t.key })
	type ev struct {
		pos  int32
		i    int32 // index into the key's touches
		done bool
	}
	var evs []ev
	var frontier, preds []int32
	var inF []bool
	var predLo, predHi []int32
	for k := 0; k < nk; k++ {
		ts := byKey[off[k]:off[k+1]]
		if len(ts) < 2 {
			continue
		}
		evs = evs[:0]
		for i := range ts {
			tx := &p.txns[ts[i].txn]
			evs = append(evs, ev{pos: tx.invPos, i: int32(i)}, ev{pos: tx.cmpPos, i: int32(i), done: true})
		}
		slices.SortFunc(evs, func(a, b ev) int { return int(a.pos - b.pos) })
		// The frontier construction of realtimeEdges: link each invocation
		// to the completed operations no later-completed one supersedes,
		// and let each completion supersede its own predecessors.
		inF = append(inF[:0], make([]bool, len(ts))...)
		predLo = append(predLo[:0], make([]int32, len(ts))...)
		predHi = append(predHi[:0], make([]int32, len(ts))...)
		frontier, preds = frontier[:0], preds[:0]
		for _, e := range evs {
			if !e.done {
				frontier = slices.DeleteFunc(frontier, func(a int32) bool { return !inF[a] })
				predLo[e.i] = int32(len(preds))
				for _, a := range frontier {
					ve.add(ts[a].last, ts[e.i].first, srcLin)
					preds = append(preds, a)
				}
				predHi[e.i] = int32(len(preds))
				continue
			}
			for _, a := range preds[predLo[e.i]:predHi[e.i]] {
				inF[a] = false
			}
			inF[e.i] = true
			frontier = append(frontier, e.i)
		}
	}
}

func (rr *rwRegister) infer(out *edges) {
	r := rr.r
	p := r.p
	nv := len(rr.verKey)
	rr.writer = make([]int32, nv)
	inter := make([]int32, nv)
	failed := make([]int32, nv)
	for i := range rr.writer {
		rr.writer[i], inter[i], failed[i] = -1, -1, -1
	}
	for _, w := range rr.writes {
		switch {
		case p.txns[w.txn].st == stFail:
			if failed[w.ver] < 0 {
				failed[w.ver] = w.txn
			}
		case w.final:
			if rr.writer[w.ver] < 0 {
				rr.writer[w.ver] = w.txn
			}
		default:
			if inter[w.ver] < 0 {
				inter[w.ver] = w.txn
			}
		}
	}
	off := bucket(nv, len(rr.reads), func(i int) int32 { return rr.reads[i].ver })
	reads := permute(rr.reads, off, func(x rwRead) int32 { return x.ver })
	for v := int32(0); int(v) < nv; v++ {
		k := rr.verKey[v]
		rs := reads[off[v]:off[v+1]]
		key := p.keys.value(k)
		var rmw []int32
		for i := range rs {
			rd := &rs[i]
			switch w := rr.writer[v]; {
			case w >= 0:
				if w != rd.txn && !rr.bad[k] {
					out.add(w, rd.txn, kWR)
				}
			case failed[v] >= 0:
				r.add(&Anomaly{
					Type: "G1a", Txns: []Txn{p.export(rd.txn), p.export(failed[v])}, Key: key,
					Mop: exportMop(p, p.mop(rd.mop)), Element: rr.verVal[v],
					Explanation: fmt.Sprintf("%s read key %v = %s, written by %s, which failed (aborted).",
						p.describe("T1", rd.txn), key, fmtVal(rr.verVal[v]), p.describe("T2", failed[v])),
				})
			case inter[v] >= 0 && inter[v] != rd.txn:
				r.add(&Anomaly{
					Type: "G1b", Txns: []Txn{p.export(rd.txn), p.export(inter[v])}, Key: key,
					Mop: exportMop(p, p.mop(rd.mop)), Element: rr.verVal[v],
					Explanation: fmt.Sprintf("%s read key %v = %s, an intermediate write of %s, which wrote that key again later.",
						p.describe("T1", rd.txn), key, fmtVal(rr.verVal[v]), p.describe("T2", inter[v])),
				})
			}
			if rd.rmw && (len(rmw) == 0 || rmw[len(rmw)-1] != rd.txn) {
				rmw = append(rmw, rd.txn)
			}
		}
		if len(rmw) > 1 && !rr.bad[k] {
			var txns []Txn
			var names []string
			for _, t := range rmw {
				txns = append(txns, p.export(t))
				names = append(names, p.describe(fmt.Sprintf("T%d", len(names)+1), t))
			}
			r.add(&Anomaly{
				Type: "lost-update", Key: key, Values: []any{rr.verVal[v]}, Txns: txns,
				Explanation: fmt.Sprintf("%s all read key %v = %s and then wrote it, so all but one of their writes were based on a state that no longer existed.",
					strings.Join(names, ", "), key, fmtVal(rr.verVal[v])),
			})
		}
		if rr.bad[k] {
			continue
		}
		for e := rr.vg.off[v]; e < rr.vg.off[v+1]; e++ {
			w := rr.writer[rr.vg.to[e]]
			if w < 0 {
				continue
			}
			if a := rr.writer[v]; a >= 0 {
				out.add(a, w, kWW)
			}
			for i := range rs {
				out.add(rs[i].txn, w, kRW)
			}
		}
	}
}

// finalWrite gives the index of a transaction's last write of key.
func (rr *rwRegister) finalWrite(t int32, key int32) (int, bool) {
	mops := rr.r.p.txnMops(t)
	for j := len(mops) - 1; j >= 0; j-- {
		if mops[j].key == key && mops[j].f == fWrite {
			return j, true
		}
	}
	return -1, false
}

// lookup finds an existing version without creating one.
func (rr *rwRegister) lookup(key int32, v any) int32 {
	if v == nil {
		if int(key) < len(rr.nilVer) {
			return rr.nilVer[key]
		}
		return -1
	}
	return rr.vix.get(key, v)
}

// versionEdge reports whether the version graph orders key's value a
// directly before value b.
func (rr *rwRegister) versionEdge(key int32, va, vb any) bool {
	a, b := rr.lookup(key, va), rr.lookup(key, vb)
	if a < 0 || b < 0 || int(a) >= rr.vg.n {
		return false
	}
	return rr.hasVersionEdge(a, b)
}

func (rr *rwRegister) hasVersionEdge(a, b int32) bool {
	for e := rr.vg.off[a]; e < rr.vg.off[a+1]; e++ {
		if rr.vg.to[e] == b {
			return true
		}
	}
	return false
}

func (rr *rwRegister) explain(k edgeKind, a, b int32, na, nb string) (Step, bool) {
	p := rr.r.p
	ma, mb := p.txnMops(a), p.txnMops(b)
	switch k {
	case kWW, kWR:
		// a's final write of some key, then b's final write of a later
		// version (ww) or b's read of that very version (wr).
		for ia := range ma {
			key := ma[ia].key
			if rr.bad[key] || ma[ia].f != fWrite {
				continue
			}
			if last, _ := rr.finalWrite(a, key); last != ia {
				continue
			}
			kv := p.keys.value(key)
			if k == kWW {
				ib, ok := rr.finalWrite(b, key)
				if !ok || !rr.versionEdge(key, ma[ia].val, mb[ib].val) {
					continue
				}
				return Step{Type: "ww", Key: kv, Value: ma[ia].val, NewValue: mb[ib].val, AMop: ia, BMop: ib,
					Explanation: fmt.Sprintf("%s wrote key %v = %s, a later version than %s's write of %s, so %s < %s (ww).",
						p.describe(nb, b), kv, fmtVal(mb[ib].val), na, fmtVal(ma[ia].val), na, nb)}, true
			}
			for ib := range mb {
				if mb[ib].f != fRead || mb[ib].key != key || !eqScalar(mb[ib].val, ma[ia].val) {
					continue
				}
				return Step{Type: "wr", Key: kv, Value: ma[ia].val, AMop: ia, BMop: ib,
					Explanation: fmt.Sprintf("%s read key %v = %s, written by %s, so %s < %s (wr).",
						p.describe(nb, b), kv, fmtVal(ma[ia].val), na, na, nb)}, true
			}
		}
	case kRW:
		// Any read of a, then b's final write of the next version.
		for ia := range ma {
			key := ma[ia].key
			if rr.bad[key] || ma[ia].f != fRead {
				continue
			}
			ib, ok := rr.finalWrite(b, key)
			if !ok || !rr.versionEdge(key, ma[ia].val, mb[ib].val) {
				continue
			}
			kv := p.keys.value(key)
			return Step{Type: "rw", Key: kv, Value: ma[ia].val, NewValue: mb[ib].val, AMop: ia, BMop: ib,
				Explanation: fmt.Sprintf("%s read key %v = %s, and %s wrote %s, a later version, so %s < %s (rw).",
					p.describe(na, a), kv, fmtVal(ma[ia].val), nb, fmtVal(mb[ib].val), na, nb)}, true
		}
	}
	return Step{}, false
}

func fmtVal(v any) string {
	if v == nil {
		return "nil (the initial state)"
	}
	return fmt.Sprint(v)
}

// cmpScalar orders nil < integers < strings.
func cmpScalar(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case int64:
			return 1
		}
		return 2
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	switch x := a.(type) {
	case int64:
		y := b.(int64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case string:
		return strings.Compare(x, b.(string))
	}
	return 0
}
