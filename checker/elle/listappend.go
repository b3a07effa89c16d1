package elle

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// elemIndex maps (key, element) to an append record.
type elemIndex struct {
	ints map[[2]int64]int32
	strs map[strElem]int32
}

type strElem struct {
	key int32
	s   string
}

func newElemIndex(n int) elemIndex {
	return elemIndex{ints: make(map[[2]int64]int32, n), strs: map[strElem]int32{}}
}

// put records the first appender of an element and reports whether the
// element had been appended before.
func (ix *elemIndex) put(key int32, v any, rec int32) bool {
	switch x := v.(type) {
	case int64:
		k := [2]int64{int64(key), x}
		if _, dup := ix.ints[k]; dup {
			return true
		}
		ix.ints[k] = rec
	case string:
		k := strElem{key, x}
		if _, dup := ix.strs[k]; dup {
			return true
		}
		ix.strs[k] = rec
	}
	return false
}

func (ix *elemIndex) get(key int32, v any) int32 {
	switch x := v.(type) {
	case int64:
		if r, ok := ix.ints[[2]int64{int64(key), x}]; ok {
			return r
		}
	case string:
		if r, ok := ix.strs[strElem{key, x}]; ok {
			return r
		}
	}
	return -1
}

// elemLookup finds the append record of an element of one key by binary
// search over that key's appends sorted by value: per-key slices are small
// and cache-friendly, where a global hash map costs a miss per element.
type elemLookup struct {
	ints []intRec
	strs []strRec
}

type intRec struct {
	v   int64
	rec int32
}

type strRec struct {
	v   string
	rec int32
}

// build indexes the given append records and reports whether some element
// was appended more than once.
func (l *elemLookup) build(la *listAppend, recs []int32) (dup bool) {
	l.ints, l.strs = l.ints[:0], l.strs[:0]
	p := la.r.p
	for _, r := range recs {
		switch x := p.mop(la.apps[r].mop).val.(type) {
		case int64:
			l.ints = append(l.ints, intRec{x, r})
		case string:
			l.strs = append(l.strs, strRec{x, r})
		}
	}
	slices.SortFunc(l.ints, func(a, b intRec) int { return cmp.Compare(a.v, b.v) })
	slices.SortFunc(l.strs, func(a, b strRec) int { return strings.Compare(a.v, b.v) })
	for i := 1; i < len(l.ints); i++ {
		if l.ints[i].v == l.ints[i-1].v {
			dup = true
		}
	}
	for i := 1; i < len(l.strs); i++ {
		if l.strs[i].v == l.strs[i-1].v {
			dup = true
		}
	}
	return dup
}

// at finds the append record of element i of a read list.
func (l *elemLookup) at(ls list, i int) int32 {
	if ls.anys != nil {
		return l.get(ls.anys[i])
	}
	if j, ok := slices.BinarySearchFunc(l.ints, ls.ints[i], func(r intRec, t int64) int { return cmp.Compare(r.v, t) }); ok {
		return l.ints[j].rec
	}
	return -1
}

func (l *elemLookup) get(v any) int32 {
	switch x := v.(type) {
	case int64:
		if i, ok := slices.BinarySearchFunc(l.ints, x, func(r intRec, t int64) int { return cmp.Compare(r.v, t) }); ok {
			return l.ints[i].rec
		}
	case string:
		if i, ok := slices.BinarySearchFunc(l.strs, x, func(r strRec, t string) int { return strings.Compare(r.v, t) }); ok {
			return l.strs[i].rec
		}
	}
	return -1
}

// find returns the append record of element v of key k (linear: it serves
// explanations only).
func (la *listAppend) find(k int32, v any) int32 {
	p := la.r.p
	for _, r := range la.appIdx[la.appOff[k]:la.appOff[k+1]] {
		if eqScalar(p.mop(la.apps[r].mop).val, v) {
			return r
		}
	}
	return -1
}

type laAppend struct {
	txn   int32
	key   int32
	mop   int32 // id of the micro-operation in parsed.mops
	pos   int32 // position in the key's version order, -1 if unobserved
	final bool  // the transaction's last append to this key
}

type laRead struct {
	txn int32
	key int32
	mop int32
	n   int32 // length of the list read
	// rmw: the transaction's first access to the key, which it appends
	// to later.
	rmw bool
}

// listAppend infers dependencies for list-append histories.
type listAppend struct {
	r     *run
	apps  []laAppend
	reads []laRead
	// appIdx lists append records grouped by key: appIdx[appOff[k]:appOff[k+1]].
	appOff, appIdx []int32
	// Per key: the longest read (the inferred version order), the append
	// record of each of its elements (-1 if nobody appended it), and
	// whether the key's reads disagree (then nothing is inferred from it).
	order   []list
	writers [][]int32
	bad     []bool
}

// scan walks every transaction once: it records appends and reads and
// checks each committed transaction against itself (internal, future-read).
func (la *listAppend) scan() {
	p := la.r.p
	type kstate struct {
		key  int32
		read bool
		base list
		apps []int32 // mop indices of appends since the last read
	}
	var ks []kstate
	state := func(k int32) *kstate {
		for i := range ks {
			if ks[i].key == k {
				return &ks[i]
			}
		}
		if len(ks) < cap(ks) {
			ks = ks[:len(ks)+1]
			s := &ks[len(ks)-1]
			*s = kstate{key: k, apps: s.apps[:0]}
			return s
		}
		ks = append(ks, kstate{key: k})
		return &ks[len(ks)-1]
	}
	var seen []int32
	la.apps = make([]laAppend, 0, p.nmops/2+1)
	la.reads = make([]laRead, 0, p.nmops/2+1)
	for ti := range p.txns {
		t := int32(ti)
		tx := &p.txns[t]
		mops := p.txnMops(t)
		// Appends, marking each transaction's final append per key.
		seen = seen[:0]
		first := len(la.apps)
		for j := len(mops) - 1; j >= 0; j-- {
			m := &mops[j]
			if m.f != fAppend {
				continue
			}
			final := !slices.Contains(seen, m.key)
			if final {
				seen = append(seen, m.key)
			}
			la.apps = append(la.apps, laAppend{txn: t, key: m.key, mop: tx.mopLo + int32(j), pos: -1, final: final})
		}
		slices.Reverse(la.apps[first:])
		if tx.st != stOK {
			continue
		}
		ks = ks[:0]
		for j := range mops {
			m := &mops[j]
			s := state(m.key)
			if m.f == fAppend {
				s.apps = append(s.apps, int32(j))
				continue
			}
			list := p.list(m)
			ext := !s.read && len(s.apps) == 0
			later := false
			for k := j + 1; k < len(mops); k++ {
				if mops[k].f == fAppend && mops[k].key == m.key {
					later = true
					la.checkFutureRead(t, j, list)
					break
				}
			}
			rmw := ext && later
			la.reads = append(la.reads, laRead{txn: t, key: m.key, mop: tx.mopLo + int32(j), n: int32(list.len()), rmw: rmw})
			la.checkInternal(t, j, s.read, s.base, s.apps, list)
			s.read = true
			s.base = list
			s.apps = s.apps[:0]
		}
	}
}

// checkInternal compares a read with what the transaction's own earlier
// reads and appends imply.
func (la *listAppend) checkInternal(t int32, j int, hadRead bool, base list, apps []int32, got list) {
	p := la.r.p
	mops := p.txnMops(t)
	if !hadRead && len(apps) == 0 {
		return
	}
	ok := true
	n := got.len()
	if hadRead {
		if n != base.len()+len(apps) {
			ok = false
		} else {
			for i := range base.len() {
				if !base.eqAt(i, got, i) {
					ok = false
					break
				}
			}
		}
	} else if n < len(apps) {
		ok = false
	}
	if ok {
		tail := n - len(apps)
		for i, a := range apps {
			if !got.eqVal(tail+i, mops[a].val) {
				ok = false
				break
			}
		}
	}
	if ok {
		return
	}
	var expected []any
	if hadRead {
		expected = append(expected, base.values()...)
	} else {
		expected = append(expected, "...")
	}
	for _, a := range apps {
		expected = append(expected, mops[a].val)
	}
	key := p.keys.value(mops[j].key)
	la.r.add(&Anomaly{
		Type: "internal", Txns: []Txn{p.export(t)}, Key: key,
		Mop: exportMop(p, &mops[j]), Expected: expected,
		Explanation: fmt.Sprintf("%s read key %v as %s, but its own earlier operations on that key imply %s.",
			p.describe("T1", t), key, fmtList(got.values()), fmtList(expected)),
	})
}

// checkFutureRead flags a read that already contains an element the
// transaction only appends later.
func (la *listAppend) checkFutureRead(t int32, j int, got list) {
	p := la.r.p
	mops := p.txnMops(t)
	for k := j + 1; k < len(mops); k++ {
		m := &mops[k]
		if m.f != fAppend || m.key != mops[j].key {
			continue
		}
		for i := range got.len() {
			if got.eqVal(i, m.val) {
				e := got.at(i)
				key := p.keys.value(m.key)
				la.r.add(&Anomaly{
					Type: "future-read", Txns: []Txn{p.export(t)}, Key: key,
					Mop: exportMop(p, &mops[j]), Element: e,
					Explanation: fmt.Sprintf("%s read key %v as %s, which already contains %v, an element it appends only later in the same transaction.",
						p.describe("T1", t), key, fmtList(got.values()), e),
				})
				return
			}
		}
	}
}

// infer builds the version order of every key and the ww, wr and rw edges
// it implies, reporting the per-key anomalies on the way.
func (la *listAppend) infer(out *edges) {
	r := la.r
	p := r.p
	nk := len(p.keys.vals)
	la.order = make([]list, nk)
	la.writers = make([][]int32, nk)
	la.bad = make([]bool, nk)
	readOff := bucket(nk, len(la.reads), func(i int) int32 { return la.reads[i].key })
	reads := permute(la.reads, readOff, func(x laRead) int32 { return x.key })
	la.reads = reads
	appOff := bucket(nk, len(la.apps), func(i int) int32 { return la.apps[i].key })
	appIdx := make([]int32, len(la.apps))
	{
		fill := slices.Clone(appOff[:nk])
		for i := range la.apps {
			k := la.apps[i].key
			appIdx[fill[k]] = int32(i)
			fill[k]++
		}
	}
	la.appOff, la.appIdx = appOff, appIdx
	var lookup elemLookup
	var unobserved []int32
	var failedPos []int32
	type rmw struct {
		n   int
		txn int32
		mop int32
	}
	var rmws []rmw
	for k := int32(0); int(k) < nk; k++ {
		rs := reads[readOff[k]:readOff[k+1]]
		if lookup.build(la, appIdx[appOff[k]:appOff[k+1]]) {
			// The same element appended twice makes the order ambiguous.
			la.bad[k] = true
		}
		// The longest read is the version order; every other read must
		// be a prefix of it.
		var longest list
		li := -1
		for i := range rs {
			if li < 0 || rs[i].n > rs[li].n {
				li = i
			}
		}
		if li >= 0 {
			longest = p.list(p.mop(rs[li].mop))
		}
		if la.bad[k] {
			la.badKey(k, "duplicate-elements", longest, list{})
			continue
		}
		for i := range rs {
			if i == li {
				continue
			}
			l := p.list(p.mop(rs[i].mop))
			for j := range l.len() {
				if !l.eqAt(j, longest, j) {
					la.badKey(k, "incompatible-order", longest, l)
					break
				}
			}
			if la.bad[k] {
				break
			}
		}
		if la.bad[k] {
			continue
		}
		ws := make([]int32, longest.len())
		for i := range ws {
			a := lookup.at(longest, i)
			ws[i] = a
			if a < 0 {
				continue
			}
			if la.apps[a].pos >= 0 {
				la.bad[k] = true
				break
			}
			la.apps[a].pos = int32(i)
		}
		if la.bad[k] {
			la.badKey(k, "duplicate-elements", longest, list{})
			continue
		}
		la.order[k] = longest
		la.writers[k] = ws
	}
	// An indeterminate transaction whose append someone read did commit,
	// and so did all its other appends.
	committed := make([]bool, len(p.txns))
	for i := range p.txns {
		committed[i] = p.txns[i].st == stOK
	}
	for i := range la.apps {
		if a := &la.apps[i]; a.pos >= 0 && p.txns[a.txn].st == stInfo {
			committed[a.txn] = true
		}
	}
	for k := int32(0); int(k) < nk; k++ {
		if la.bad[k] {
			continue
		}
		rs := reads[readOff[k]:readOff[k+1]]
		longest, ws := la.order[k], la.writers[k]
		failedPos = failedPos[:0]
		for i, a := range ws {
			if a >= 0 && p.txns[la.apps[a].txn].st == stFail {
				failedPos = append(failedPos, int32(i))
			}
		}
		if len(failedPos) > 0 {
			la.dirty(k, ws, rs, failedPos)
		}
		// ww: consecutive committed (or indeterminate) writers.
		prev := int32(-1)
		for _, a := range ws {
			if a < 0 {
				continue
			}
			t := la.apps[a].txn
			if p.txns[t].st == stFail {
				continue
			}
			if prev >= 0 && prev != t {
				out.add(prev, t, kWW)
			}
			prev = t
		}
		// Committed appends nobody read come after every observed element.
		unobserved = unobserved[:0]
		for _, ai := range appIdx[appOff[k]:appOff[k+1]] {
			a := &la.apps[ai]
			if a.pos < 0 && committed[a.txn] {
				if len(unobserved) == 0 || unobserved[len(unobserved)-1] != a.txn {
					unobserved = append(unobserved, a.txn)
				}
			}
		}
		if prev >= 0 {
			for _, u := range unobserved {
				out.add(prev, u, kWW)
			}
		}
		rmws = rmws[:0]
		for i := range rs {
			rd := &rs[i]
			n := int(rd.n)
			// Every read, not only a transaction's first of the key, says
			// whose append it saw last and whose it missed: a second read
			// that sees more than the first is a non-repeatable read, and
			// only its own edges close that cycle.
			if n > 0 {
				if a := ws[n-1]; a >= 0 {
					w := la.apps[a].txn
					if w != rd.txn && p.txns[w].st != stFail {
						out.add(w, rd.txn, kWR)
						if !la.apps[a].final {
							la.g1b(rd, a)
						}
					}
				}
			}
			if n < len(ws) {
				if a := ws[n]; a >= 0 && p.txns[la.apps[a].txn].st != stFail {
					out.add(rd.txn, la.apps[a].txn, kRW)
				}
			} else {
				for _, u := range unobserved {
					out.add(rd.txn, u, kRW)
				}
			}
			if rd.rmw {
				rmws = append(rmws, rmw{n, rd.txn, rd.mop})
			}
		}
		if len(rmws) > 1 {
			slices.SortFunc(rmws, func(a, b rmw) int { return a.n - b.n })
			for i := 0; i < len(rmws); {
				j := i + 1
				for j < len(rmws) && rmws[j].n == rmws[i].n {
					j++
				}
				if j-i > 1 {
					var txns []Txn
					var names []string
					for _, x := range rmws[i:j] {
						txns = append(txns, p.export(x.txn))
						names = append(names, p.describe(fmt.Sprintf("T%d", len(names)+1), x.txn))
					}
					key := p.keys.value(k)
					v := longest.values()[:rmws[i].n]
					r.add(&Anomaly{
						Type: "lost-update", Key: key, Values: []any{slices.Clone(v)}, Txns: txns,
						Explanation: fmt.Sprintf("%s all read key %v as %s and then appended to it, so all but one of their updates were applied to a state that no longer existed.",
							strings.Join(names, ", "), key, fmtList(v)),
					})
				}
				i = j
			}
		}
	}
}

func (la *listAppend) badKey(k int32, typ string, longestList, otherList list) {
	longest, other := longestList.values(), otherList.values()
	p := la.r.p
	la.bad[k] = true
	key := p.keys.value(k)
	a := &Anomaly{Type: typ, Key: key}
	if typ == "incompatible-order" {
		a.Values = []any{longest, other}
		a.Explanation = fmt.Sprintf("Reads of key %v saw %s and %s; neither is a prefix of the other, so no single order of appends explains both.",
			key, fmtList(longest), fmtList(other))
	} else {
		a.Values = []any{longest}
		a.Explanation = fmt.Sprintf("Key %v holds an element twice (read as %s), or one element was appended twice, so its order of appends is ambiguous.",
			key, fmtList(longest))
	}
	la.r.add(a)
}

// dirty reports reads of aborted appends (G1a) and committed appends that
// build on aborted ones (dirty-update).
func (la *listAppend) dirty(k int32, ws []int32, rs []laRead, failedPos []int32) {
	r := la.r
	p := r.p
	key := p.keys.value(k)
	for i := range rs {
		rd := &rs[i]
		if len(failedPos) == 0 || p.list(p.mop(rd.mop)).len() <= int(failedPos[0]) {
			continue
		}
		list := p.list(p.mop(rd.mop)).values()
		for _, fp := range failedPos {
			if int(fp) >= len(list) {
				break
			}
			a := &la.apps[ws[fp]]
			r.add(&Anomaly{
				Type: "G1a", Txns: []Txn{p.export(rd.txn), p.export(a.txn)}, Key: key,
				Mop: exportMop(p, p.mop(rd.mop)), Element: list[fp],
				Explanation: fmt.Sprintf("%s read key %v as %s, which contains %v, appended by %s, which failed (aborted).",
					p.describe("T1", rd.txn), key, fmtList(list), list[fp], p.describe("T2", a.txn)),
			})
		}
	}
	start := -1
	for i, a := range ws {
		if a < 0 {
			continue
		}
		switch p.txns[la.apps[a].txn].st {
		case stFail:
			if start < 0 {
				start = i
			}
		case stOK:
			if start >= 0 {
				f, o := la.apps[ws[start]].txn, la.apps[a].txn
				vals := la.order[k].values()[start : i+1]
				r.add(&Anomaly{
					Type: "dirty-update", Key: key, Values: vals,
					Txns: []Txn{p.export(f), p.export(o)},
					Explanation: fmt.Sprintf("%s committed its append of %v to key %v on top of %v, appended by %s, which failed (aborted).",
						p.describe("T2", o), p.mop(la.apps[a].mop).val, key, p.mop(la.apps[ws[start]].mop).val, p.describe("T1", f)),
				})
				start = -1
			}
		}
	}
}

func (la *listAppend) g1b(rd *laRead, a int32) {
	p := la.r.p
	w := la.apps[a].txn
	m := p.mop(rd.mop)
	list := p.list(m).values()
	key := p.keys.value(rd.key)
	la.r.add(&Anomaly{
		Type: "G1b", Txns: []Txn{p.export(rd.txn), p.export(w)}, Key: key,
		Mop: exportMop(p, m), Element: list[len(list)-1],
		Explanation: fmt.Sprintf("%s read key %v as %s, ending in %v, an intermediate append of %s, which appended to that key again later.",
			p.describe("T1", rd.txn), key, fmtList(list), list[len(list)-1], p.describe("T2", w)),
	})
}

// explain finds the evidence for a data edge a -> b of kind k.
func (la *listAppend) explain(k edgeKind, a, b int32, na, nb string) (Step, bool) {
	p := la.r.p
	ma, mb := p.txnMops(a), p.txnMops(b)
	switch k {
	case kWW:
		for i := range ma {
			if ma[i].f != fAppend || la.bad[ma[i].key] {
				continue
			}
			ra := la.find(ma[i].key, ma[i].val)
			if ra < 0 || la.apps[ra].txn != a || la.apps[ra].pos < 0 {
				continue
			}
			for j := range mb {
				if mb[j].f != fAppend || mb[j].key != ma[i].key {
					continue
				}
				rb := la.find(mb[j].key, mb[j].val)
				if rb < 0 || la.apps[rb].txn != b {
					continue
				}
				key := p.keys.value(ma[i].key)
				st := Step{Type: "ww", Key: key, Value: ma[i].val, NewValue: mb[j].val, AMop: i, BMop: j}
				switch {
				case la.apps[rb].pos > la.apps[ra].pos:
					st.Explanation = fmt.Sprintf("%s appended %v to key %v after %s appended %v, so %s < %s (ww).",
						p.describe(nb, b), mb[j].val, key, na, ma[i].val, na, nb)
				case la.apps[rb].pos < 0:
					st.Explanation = fmt.Sprintf("%s appended %v to key %v and no read saw it, so it follows every observed element, including %s's append of %v; so %s < %s (ww).",
						p.describe(nb, b), mb[j].val, key, na, ma[i].val, na, nb)
				default:
					continue
				}
				return st, true
			}
		}
	case kWR:
		for j := range mb {
			m := &mb[j]
			if m.f != fRead || la.bad[m.key] {
				continue
			}
			list := p.list(m).values()
			if len(list) == 0 {
				continue
			}
			ra := la.find(m.key, list[len(list)-1])
			if ra < 0 || la.apps[ra].txn != a {
				continue
			}
			key := p.keys.value(m.key)
			return Step{Type: "wr", Key: key, Value: list[len(list)-1], AMop: int(la.apps[ra].mop - p.txns[a].mopLo), BMop: j,
				Explanation: fmt.Sprintf("%s read %s's append of %v to key %v, so %s < %s (wr).",
					p.describe(nb, b), na, list[len(list)-1], key, na, nb)}, true
		}
	case kRW:
		for i := range ma {
			m := &ma[i]
			if m.f != fRead || la.bad[m.key] {
				continue
			}
			list := p.list(m).values()
			order, ws := la.order[m.key], la.writers[m.key]
			key := p.keys.value(m.key)
			if len(list) < len(ws) {
				ra := ws[len(list)]
				if ra >= 0 && la.apps[ra].txn == b {
					return Step{Type: "rw", Key: key, Value: lastOr(list), NewValue: order.at(len(list)), AMop: i, BMop: int(la.apps[ra].mop - p.txns[b].mopLo),
						Explanation: fmt.Sprintf("%s read key %v as %s, and %s appended %v, the next element, so %s < %s (rw).",
							p.describe(na, a), key, fmtList(list), nb, order.at(len(list)), na, nb)}, true
				}
				continue
			}
			for j := range mb {
				if mb[j].f != fAppend || mb[j].key != m.key {
					continue
				}
				rb := la.find(m.key, mb[j].val)
				if rb >= 0 && la.apps[rb].txn == b && la.apps[rb].pos < 0 {
					return Step{Type: "rw", Key: key, Value: lastOr(list), NewValue: mb[j].val, AMop: i, BMop: j,
						Explanation: fmt.Sprintf("%s read key %v as %s, without %s's committed append of %v, which no read saw and so follows every observed element; so %s < %s (rw).",
							p.describe(na, a), key, fmtList(list), nb, mb[j].val, na, nb)}, true
				}
			}
		}
	}
	return Step{}, false
}

func lastOr(l []any) any {
	if len(l) == 0 {
		return "init"
	}
	return l[len(l)-1]
}

// bucket returns CSR offsets (length nk+1) for n items grouped by key.
func bucket(nk, n int, key func(int) int32) []int32 {
	off := make([]int32, nk+1)
	for i := 0; i < n; i++ {
		off[key(i)+1]++
	}
	for i := 1; i <= nk; i++ {
		off[i] += off[i-1]
	}
	return off
}

// permute returns xs grouped by key (stable) using the offsets bucket made.
func permute[T any](xs []T, off []int32, key func(T) int32) []T {
	out := make([]T, len(xs))
	fill := slices.Clone(off[:len(off)-1])
	for _, x := range xs {
		k := key(x)
		out[fill[k]] = x
		fill[k]++
	}
	return out
}

func exportMop(p *parsed, m *mop) []any {
	f := "r"
	switch m.f {
	case fWrite:
		f = "w"
	case fAppend:
		f = "append"
	}
	v := m.val
	if m.ints {
		v = p.list(m).values()
	}
	return []any{f, p.keys.value(m.key), v}
}

func fmtList(l []any) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range l {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, e)
	}
	b.WriteByte(']')
	return b.String()
}
