package elle

import (
	"fmt"
	"slices"

	"github.com/chaoskv/chaos/history"
)

type status uint8

const (
	stOK status = iota
	stInfo
	stFail
)

func (s status) String() string {
	switch s {
	case stOK:
		return "ok"
	case stFail:
		return "fail"
	default:
		return "info"
	}
}

type mopF uint8

const (
	fRead mopF = iota
	fWrite
	fAppend
)

// mop is one parsed micro-operation. A list-append read of integers
// keeps its list unboxed in parsed.ints[lo:lo+n] (ints set); any other
// value is in val: an int64, a string, nil, or (for a read of a list
// holding strings) a []any of int64/string.
type mop struct {
	f     mopF
	ints  bool
	key   int32
	lo, n int32
	val   any
}

// txn is one transaction: an invocation paired with its completion.
type txn struct {
	inv, cmp int64 // op indices; cmp is -1 when never completed
	invPos   int32 // position of the invocation in the history
	cmpPos   int32 // position of the completion, or the history's length if none
	proc     int64
	st       status
	mopLo    int32 // mops[mopLo:mopHi]
	mopHi    int32
}

// history is the parsed form Check works on.
type parsed struct {
	txns  []txn
	mops  chunked[mop]
	nmops int
	ints  chunked[int64] // the elements of integer list reads
	// events lists invocations (t<<1) and completions (t<<1|1) in history
	// order; realtime inference replays it.
	events []int32
	keys   interner
}

// chunkBits sizes the chunks of a chunked array.
const chunkBits = 16

// chunked is an append-only array kept in chunks of 1<<chunkBits items, so
// that growing it never copies what it holds (a history of millions of
// transactions would otherwise briefly need its micro-operations twice).
// An id names an item: chunk<<chunkBits | offset. Items appended together
// share a chunk, so a block of them is one slice.
type chunked[T any] struct {
	chunks [][]T
}

// appendBlock appends items contiguously and returns the id of the first;
// ok is false when there are more than a chunk holds.
func (c *chunked[T]) appendBlock(items []T) (id int32, ok bool) {
	const size = 1 << chunkBits
	if len(items) > size {
		return 0, false
	}
	n := len(c.chunks)
	if n == 0 || len(c.chunks[n-1])+len(items) > size {
		c.chunks = append(c.chunks, make([]T, 0, size))
		n++
	}
	last := &c.chunks[n-1]
	id = int32((n-1)<<chunkBits | len(*last))
	*last = append(*last, items...)
	return id, true
}

func (c *chunked[T]) at(id int32) *T {
	return &c.chunks[id>>chunkBits][id&(1<<chunkBits-1)]
}

// slice returns the n items from id on, which must have been appended
// in one block.
func (c *chunked[T]) slice(id, n int32) []T {
	off := id & (1<<chunkBits - 1)
	return c.chunks[id>>chunkBits][off : off+n : off+n]
}

// mop returns the micro-operation with the given id.
func (p *parsed) mop(id int32) *mop { return p.mops.at(id) }

// list is a list-append read as the checker sees it: unboxed integers,
// or boxed values when some element is a string.
type list struct {
	ints []int64
	anys []any
}

func (p *parsed) list(m *mop) list {
	if m.ints {
		return list{ints: p.ints.slice(m.lo, m.n)}
	}
	l, _ := m.val.([]any)
	return list{anys: l}
}

func (l list) len() int {
	if l.anys != nil {
		return len(l.anys)
	}
	return len(l.ints)
}

// at returns element i, boxed (for reports).
func (l list) at(i int) any {
	if l.anys != nil {
		return l.anys[i]
	}
	return l.ints[i]
}

// eqAt reports whether l[i] equals m[j].
func (l list) eqAt(i int, m list, j int) bool {
	if l.anys == nil && m.anys == nil {
		return l.ints[i] == m.ints[j]
	}
	return eqScalar(l.at(i), m.at(j))
}

// eqVal reports whether l[i] equals the scalar v.
func (l list) eqVal(i int, v any) bool {
	if l.anys == nil {
		x, ok := v.(int64)
		return ok && l.ints[i] == x
	}
	return eqScalar(l.anys[i], v)
}

// values returns the elements as a fresh []any (for reports).
func (l list) values() []any {
	out := make([]any, l.len())
	for i := range out {
		out[i] = l.at(i)
	}
	return out
}

// interner maps keys (int64 or string) to dense ids and back.
type interner struct {
	ints map[int64]int32
	strs map[string]int32
	vals []any
}

func (in *interner) id(v any) (int32, error) {
	switch x := v.(type) {
	case int64:
		if id, ok := in.ints[x]; ok {
			return id, nil
		}
		if in.ints == nil {
			in.ints = map[int64]int32{}
		}
		id := int32(len(in.vals))
		in.ints[x] = id
		in.vals = append(in.vals, x)
		return id, nil
	case string:
		if id, ok := in.strs[x]; ok {
			return id, nil
		}
		if in.strs == nil {
			in.strs = map[string]int32{}
		}
		id := int32(len(in.vals))
		in.strs[x] = id
		in.vals = append(in.vals, x)
		return id, nil
	default:
		return 0, fmt.Errorf("key %v (%T) is neither an integer nor a string", v, v)
	}
}

func (in *interner) value(id int32) any { return in.vals[id] }

// checkScalar accepts the value types micro-ops may carry.
func checkScalar(v any, what string) error {
	switch v.(type) {
	case int64, string:
		return nil
	default:
		return fmt.Errorf("%s %v (%T) is neither an integer nor a string", what, v, v)
	}
}

// eqScalar compares two values that are int64, string or nil.
func eqScalar(a, b any) bool {
	switch x := a.(type) {
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

func opIndex(op *history.Op, pos int) int64 {
	if op.Index >= 0 {
		return op.Index
	}
	return int64(pos)
}

// Builder turns a history, op by op, into the compact form a check works
// on, so that a caller streaming a large history from disk never holds
// the decoded ops and the checker's form at once. Check is the same as
// adding every op to a Builder and calling its Check.
type Builder struct {
	workload string
	p        *parsed
	pending  map[history.Process]pendingTxn
	pos      int32 // ops seen
	err      error
	scratch  []mop   // one transaction's micro-operations while decoding
	elems    []int64 // one read's elements while decoding
}

// pendingTxn is an invoked transaction awaiting its completion.
type pendingTxn struct {
	t     int32
	value any // the invocation's micro-operations
}

// NewBuilder returns a Builder for a history of the given workload
// ("list-append" or "rw-register").
func NewBuilder(workload string) *Builder {
	return &Builder{workload: workload, p: &parsed{}, pending: map[history.Process]pendingTxn{}}
}

// Take adds one op. Client transactions ("txn" ops) are decoded into the
// Builder's own form and their Value is then cleared: the Builder has
// taken it. Other ops are left as they are. Take never stops a read: a
// malformed op is reported by Check, so that a caller can first report
// what it checks about the whole history (such as invocations without
// completions) in history order. Its signature fits history.ReadFileFunc.
func (b *Builder) Take(op *history.Op) error {
	pos := b.pos
	b.pos++
	if b.err != nil || op.Process.IsNemesis() || (op.F != "" && op.F != "txn") {
		return nil
	}
	p := b.p
	switch op.Type {
	case history.Invoke:
		if prev, ok := b.pending[op.Process]; ok {
			// A process that invokes again never completed its last
			// transaction: that one stays indeterminate.
			b.decode(prev.t, prev.value)
		}
		t := int32(len(p.txns))
		p.txns = append(p.txns, txn{inv: opIndex(op, int(pos)), cmp: -1, invPos: pos, proc: int64(op.Process), cmpPos: -1, st: stInfo})
		b.pending[op.Process] = pendingTxn{t: t, value: op.Value}
		p.events = append(p.events, t<<1)
	case history.Ok, history.Fail, history.Info:
		pd, ok := b.pending[op.Process]
		t := pd.t
		if ok {
			delete(b.pending, op.Process)
		} else {
			t = int32(len(p.txns))
			p.txns = append(p.txns, txn{inv: opIndex(op, int(pos)), invPos: pos, proc: int64(op.Process)})
			p.events = append(p.events, t<<1)
		}
		tx := &p.txns[t]
		tx.cmp = opIndex(op, int(pos))
		tx.cmpPos = pos
		value := op.Value
		switch op.Type {
		case history.Ok:
			tx.st = stOK
		case history.Fail:
			tx.st = stFail
		default:
			tx.st = stInfo
		}
		if value == nil && tx.st != stOK {
			value = pd.value
		}
		if tx.st == stOK {
			p.events = append(p.events, t<<1|1)
		}
		b.decode(t, value)
	default:
		b.err = fmt.Errorf("op %d: unknown type %v", opIndex(op, int(pos)), op.Type)
		return nil
	}
	op.Value = nil
	return nil
}

// finish decodes the transactions that never completed.
func (b *Builder) finish() (*parsed, error) {
	if b.workload != "list-append" && b.workload != "rw-register" {
		return nil, fmt.Errorf("unknown workload %q (want list-append or rw-register)", b.workload)
	}
	pend := make([]pendingTxn, 0, len(b.pending))
	for _, pd := range b.pending {
		pend = append(pend, pd)
	}
	slices.SortFunc(pend, func(x, y pendingTxn) int { return int(x.t - y.t) })
	for _, pd := range pend {
		b.decode(pd.t, pd.value)
	}
	clear(b.pending)
	for i := range b.p.txns {
		if b.p.txns[i].cmpPos < 0 {
			b.p.txns[i].cmpPos = b.pos
		}
	}
	return b.p, b.err
}

// decode parses txn t's micro-operations into p.mops.
func (b *Builder) decode(t int32, value any) {
	if b.err != nil {
		return
	}
	p := b.p
	tx := &p.txns[t]
	b.scratch = b.scratch[:0]
	if b.err = b.decodeMops(tx, value); b.err != nil {
		return
	}
	id, ok := p.mops.appendBlock(b.scratch)
	if !ok {
		b.err = fmt.Errorf("op %d: %d micro-operations, more than the %d a transaction may hold", tx.ref(), len(b.scratch), 1<<chunkBits)
		return
	}
	tx.mopLo, tx.mopHi = id, id+int32(len(b.scratch))
	p.nmops += len(b.scratch)
}

func (b *Builder) decodeMops(tx *txn, value any) error {
	p, workload := b.p, b.workload
	if value == nil {
		return nil
	}
	l, ok := value.([]any)
	if !ok {
		return fmt.Errorf("op %d: value is %T, want a list of micro-operations", tx.ref(), value)
	}
	for j, m := range l {
		parts, ok := m.([]any)
		if !ok || len(parts) != 3 {
			return fmt.Errorf("op %d: micro-op %d: want [f key value], got %v", tx.ref(), j, m)
		}
		f, ok := parts[0].(string)
		if !ok {
			return fmt.Errorf("op %d: micro-op %d: f %v is not a string", tx.ref(), j, parts[0])
		}
		if len(f) > 0 && f[0] == ':' {
			f = f[1:]
		}
		key, err := p.keys.id(parts[1])
		if err != nil {
			return fmt.Errorf("op %d: micro-op %d: %w", tx.ref(), j, err)
		}
		mo := mop{key: key}
		v := parts[2]
		switch {
		case f == "r":
			mo.f = fRead
			if tx.st != stOK {
				// The reads of unfinished or failed transactions are unknown.
				v = nil
			}
			if v != nil {
				if workload == "list-append" {
					l, ok := v.([]any)
					if !ok {
						return fmt.Errorf("op %d: micro-op %d: read value %v is not a list", tx.ref(), j, v)
					}
					allInts := true
					for _, e := range l {
						if err := checkScalar(e, "list element"); err != nil {
							return fmt.Errorf("op %d: micro-op %d: %w", tx.ref(), j, err)
						}
						_, isInt := e.(int64)
						allInts = allInts && isInt
					}
					if allInts {
						b.elems = b.elems[:0]
						for _, e := range l {
							b.elems = append(b.elems, e.(int64))
						}
						// A list longer than a chunk stays boxed.
						if id, ok := p.ints.appendBlock(b.elems); ok {
							mo.ints, mo.lo, mo.n = true, id, int32(len(l))
							v = nil
						}
					}
				} else if err := checkScalar(v, "read value"); err != nil {
					return fmt.Errorf("op %d: micro-op %d: %w", tx.ref(), j, err)
				}
			}
		case f == "append" && workload == "list-append":
			mo.f = fAppend
			if err := checkScalar(v, "appended value"); err != nil {
				return fmt.Errorf("op %d: micro-op %d: %w", tx.ref(), j, err)
			}
		case f == "w" && workload == "rw-register":
			mo.f = fWrite
			if err := checkScalar(v, "written value"); err != nil {
				return fmt.Errorf("op %d: micro-op %d: %w", tx.ref(), j, err)
			}
		default:
			return fmt.Errorf("op %d: micro-op %d: function %q is not valid in a %s history", tx.ref(), j, f, workload)
		}
		mo.val = v
		b.scratch = append(b.scratch, mo)
	}
	return nil
}

// ref is the op index that names the transaction.
func (tx *txn) ref() int64 {
	if tx.cmp >= 0 {
		return tx.cmp
	}
	return tx.inv
}

func (p *parsed) txnMops(t int32) []mop {
	tx := &p.txns[t]
	return p.mops.slice(tx.mopLo, tx.mopHi-tx.mopLo)
}

// describe names a transaction for an explanation, e.g. "T2 (op 13, process 3)".
func (p *parsed) describe(name string, t int32) string {
	tx := &p.txns[t]
	return fmt.Sprintf("%s (op %d, process %d)", name, tx.ref(), tx.proc)
}

// export converts a transaction for a report. Its value is rebuilt from
// the micro-operations as the checker read them (reads of transactions
// that did not commit are unknown, so nil).
func (p *parsed) export(t int32) Txn {
	tx := &p.txns[t]
	var value any
	if tx.mopHi > tx.mopLo {
		ms := make([]any, 0, tx.mopHi-tx.mopLo)
		for i := tx.mopLo; i < tx.mopHi; i++ {
			ms = append(ms, exportMop(p, p.mop(i)))
		}
		value = ms
	}
	return Txn{Index: tx.ref(), InvokeIndex: tx.inv, Process: tx.proc, Type: tx.st.String(), Value: value}
}
