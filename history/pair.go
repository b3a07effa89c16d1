package history

import (
	"fmt"
)

// NoPartner marks an op without a partner in Pairs: an invocation that never
// completed (its outcome is unknown, as if it had completed with info), or a
// nemesis op that stands alone.
const NoPartner = -1

// Pairs links every invocation of a history to its completion.
//
// Partner[i] is the position (in the slice given to Pair) of the op paired
// with the op at position i: for an invocation its completion, for a
// completion its invocation, or NoPartner.
type Pairs struct {
	Partner []int
}

// Completion returns the completion of the invocation at position i, and
// false when it never completed.
func (p Pairs) Completion(i int) (int, bool) {
	j := p.Partner[i]
	return j, j != NoPartner
}

// PairError is a malformed history found by Pair. Line is the 1-based line
// of the offending op in a one-op-per-line file (history.jsonl or a Jepsen
// history.edn), that is its position in the history plus one.
type PairError struct {
	Line  int
	Index int64
	Msg   string
}

// Error names the line, the op's index and what is wrong.
func (e *PairError) Error() string {
	return fmt.Sprintf("line %d (index %d): %s", e.Line, e.Index, e.Msg)
}

// Unwrap makes every PairError an ErrMalformed.
func (e *PairError) Unwrap() error { return ErrMalformed }

// Pair matches each client invocation with the next completion of the same
// process, as Jepsen histories are written: a process has at most one
// operation outstanding, and a completion repeats its invocation's f.
//
// It reports a *PairError for an unknown op type, a completion without an
// outstanding invocation, a process that invokes while its previous op is
// outstanding, and a completion whose f differs from its invocation's.
// Invocations still outstanding at the end have no partner, which callers
// treat as info. Nemesis ops are exempt from these rules: a nemesis
// invocation is paired with the next nemesis completion of the same f when
// there is one, and nemesis ops that do not pair (such as Jepsen's info/info
// fault records) stand alone.
func Pair(ops []Op) (Pairs, error) {
	partner := make([]int, len(ops))
	var p Pairer
	for i := range ops {
		partner[i] = NoPartner
		j, err := p.Add(&ops[i])
		if err != nil {
			return Pairs{}, err
		}
		if j != NoPartner {
			partner[i], partner[j] = j, i
		}
	}
	return Pairs{Partner: partner}, nil
}

// Pairer applies Pair's rules to a history one op at a time, so that a
// history can be checked while it streams by without being held. The zero
// value is ready to use.
type Pairer struct {
	n           int // ops added
	outstanding map[Process]pending
	nemesis     pending // the last nemesis invocation not yet paired; pos NoPartner for none
	nemesisSet  bool
}

// pending is an invocation waiting for its completion.
type pending struct {
	pos int
	f   string
}

// Add takes the next op of the history and returns the position of the op
// it completes (counting from 0 in the order ops were added), NoPartner
// when it completes none, or the *PairError Pair would report.
func (p *Pairer) Add(op *Op) (int, error) {
	i := p.n
	p.n++
	if p.outstanding == nil {
		p.outstanding = map[Process]pending{}
	}
	if op.Type < Invoke || op.Type > Info {
		return NoPartner, p.err(op, i, "unknown op type %s", op.Type)
	}
	if op.Process.IsNemesis() {
		switch {
		case op.Type == Invoke:
			p.nemesis, p.nemesisSet = pending{i, op.F}, true
		case p.nemesisSet && p.nemesis.f == op.F:
			p.nemesisSet = false
			return p.nemesis.pos, nil
		}
		return NoPartner, nil
	}
	if op.Process < 0 {
		return NoPartner, p.err(op, i, "negative process %d", int64(op.Process))
	}
	inv, busy := p.outstanding[op.Process]
	if op.Type == Invoke {
		if busy {
			return NoPartner, p.err(op, i, "process %s invokes %q while its %q invoked at line %d is still outstanding",
				op.Process, op.F, inv.f, inv.pos+1)
		}
		p.outstanding[op.Process] = pending{i, op.F}
		return NoPartner, nil
	}
	if !busy {
		return NoPartner, p.err(op, i, "%s completion of %q by process %s without an outstanding invocation",
			op.Type, op.F, op.Process)
	}
	if inv.f != op.F {
		return NoPartner, p.err(op, i, "completion f %q differs from f %q of its invocation at line %d",
			op.F, inv.f, inv.pos+1)
	}
	delete(p.outstanding, op.Process)
	return inv.pos, nil
}

func (p *Pairer) err(op *Op, i int, format string, a ...any) error {
	return &PairError{Line: i + 1, Index: op.Index, Msg: fmt.Sprintf(format, a...)}
}
