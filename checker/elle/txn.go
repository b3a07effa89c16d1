package elle

import (
	"fmt"

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

// mop is one parsed micro-operation. val is an int64, a string, nil, or
// (for list-append reads) a []any of int64/string.
type mop struct {
	f   mopF
	key int32
	val any
}

// txn is one transaction: an invocation paired with its completion.
type txn struct {
	inv, cmp int64 // op indices; cmp is -1 when never completed
	invPos   int32 // position of the invocation in the ops slice
	cmpPos   int32 // position of the completion, or len(ops) if none
	proc     int64
	st       status
	mopLo    int32 // mops[mopLo:mopHi]
	mopHi    int32
	value    any // the value the completion (or invocation) carried
}

// history is the parsed form Check works on.
type parsed struct {
	txns []txn
	mops []mop
	// events lists invocations (t<<1) and completions (t<<1|1) in history
	// order; realtime inference replays it.
	events []int32
	keys   interner
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

// parse pairs invocations with completions and decodes micro-operations.
func parse(workload string, ops []history.Op) (*parsed, error) {
	p := &parsed{
		txns:   make([]txn, 0, len(ops)/2+1),
		mops:   make([]mop, 0, len(ops)*2),
		events: make([]int32, 0, len(ops)),
	}
	pending := map[history.Process]int32{}
	for i := range ops {
		op := &ops[i]
		if op.Process.IsNemesis() || (op.F != "" && op.F != "txn") {
			continue
		}
		switch op.Type {
		case history.Invoke:
			if t, ok := pending[op.Process]; ok {
				// A process that invokes again never completed its last
				// transaction: that one stays indeterminate.
				delete(pending, op.Process)
				_ = t
			}
			t := int32(len(p.txns))
			p.txns = append(p.txns, txn{
				inv: opIndex(op, i), cmp: -1, invPos: int32(i), proc: int64(op.Process),
				cmpPos: int32(len(ops)), st: stInfo, value: op.Value,
			})
			pending[op.Process] = t
			p.events = append(p.events, t<<1)
		case history.Ok, history.Fail, history.Info:
			t, ok := pending[op.Process]
			if ok {
				delete(pending, op.Process)
			} else {
				t = int32(len(p.txns))
				p.txns = append(p.txns, txn{inv: opIndex(op, i), invPos: int32(i), proc: int64(op.Process)})
				p.events = append(p.events, t<<1)
			}
			tx := &p.txns[t]
			tx.cmp = opIndex(op, i)
			tx.cmpPos = int32(i)
			switch op.Type {
			case history.Ok:
				tx.st = stOK
				tx.value = op.Value
			case history.Fail:
				tx.st = stFail
				if op.Value != nil {
					tx.value = op.Value
				}
			default:
				tx.st = stInfo
				if op.Value != nil {
					tx.value = op.Value
				}
			}
			if tx.st == stOK {
				p.events = append(p.events, t<<1|1)
			}
		default:
			return nil, fmt.Errorf("op %d: unknown type %v", opIndex(op, i), op.Type)
		}
	}
	for ti := range p.txns {
		if err := p.decode(workload, int32(ti)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// decode parses txn ti's micro-operations into p.mops.
func (p *parsed) decode(workload string, ti int32) error {
	tx := &p.txns[ti]
	tx.mopLo = int32(len(p.mops))
	defer func() { tx.mopHi = int32(len(p.mops)) }()
	if tx.value == nil {
		return nil
	}
	list, ok := tx.value.([]any)
	if !ok {
		return fmt.Errorf("op %d: value is %T, want a list of micro-operations", tx.ref(), tx.value)
	}
	for j, m := range list {
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
					for _, e := range l {
						if err := checkScalar(e, "list element"); err != nil {
							return fmt.Errorf("op %d: micro-op %d: %w", tx.ref(), j, err)
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
		p.mops = append(p.mops, mo)
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
	return p.mops[tx.mopLo:tx.mopHi]
}

// describe names a transaction for an explanation, e.g. "T2 (op 13, process 3)".
func (p *parsed) describe(name string, t int32) string {
	tx := &p.txns[t]
	return fmt.Sprintf("%s (op %d, process %d)", name, tx.ref(), tx.proc)
}

// export converts a transaction for a report.
func (p *parsed) export(t int32) Txn {
	tx := &p.txns[t]
	return Txn{Index: tx.ref(), InvokeIndex: tx.inv, Process: tx.proc, Type: tx.st.String(), Value: tx.value}
}
