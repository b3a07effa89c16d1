package txn

import (
	"fmt"
	"maps"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
)

// StepKind names a two-phase-commit step a Group takes.
type StepKind uint8

// The kinds of Step.
const (
	// StepDecided: the group, as coordinator, chose the transaction's
	// outcome (Commit) in its log, and recorded its client's answer; a
	// transaction within one group is decided when it is applied.
	StepDecided StepKind = iota + 1
	// StepPrepared: the group took the locks of its part of the
	// transaction and logged its prepared record, for coordinator Coord.
	StepPrepared
	// StepSettled: the group applied the decision (Commit) of coordinator
	// From to its part; Prepared says it held a prepared record, which
	// was Coord's.
	StepSettled
	// StepWrote: the group wrote the transaction's writes to its data.
	StepWrote
)

func (k StepKind) String() string {
	switch k {
	case StepDecided:
		return "decided"
	case StepPrepared:
		return "prepared"
	case StepSettled:
		return "settled"
	case StepWrote:
		return "wrote"
	}
	return fmt.Sprintf("step(%d)", uint8(k))
}

// Step is one two-phase-commit step a Group took while applying a log
// entry: what an oracle outside the group needs to check that a
// transaction has one outcome everywhere and that no participant applies
// what its coordinator did not choose.
type Step struct {
	Kind     StepKind
	Txn      TxnID
	Index    uint64 // the log index of the entry that took it
	Coord    replica.GroupID
	From     replica.GroupID
	Commit   bool
	Prepared bool
}

func (g *Group) step(s Step) {
	s.Index = g.index
	g.steps = append(g.steps, s)
}

// Steps returns the two-phase-commit steps the last Apply took, in order.
// The slice is reused by the next Apply.
func (g *Group) Steps() []Step { return g.steps }

// Audit checks the invariants of the group's locks: every prepared
// record holds the locks of its part until its decision is applied here,
// no lock is held by anything but a prepared record, and every prepared
// record is on shards the group serves (locks never migrate). It returns
// the first broken one.
func (g *Group) Audit() error {
	if len(g.prepared) == 0 && len(g.locks) == 0 {
		return nil
	}
	want := map[string]*lock{}
	for _, id := range sortedIDs(g.prepared) {
		p := g.prepared[id]
		for _, o := range p.Part.Ops {
			if s := shardctl.ShardOf(o.Key); g.state[s] != serving {
				return fmt.Errorf("txn %v holds a prepared record on key %q of shard %d, which the group does not serve", id, o.Key, s)
			}
			l := want[o.Key]
			if l == nil {
				l = &lock{readers: map[TxnID]bool{}}
				want[o.Key] = l
			}
			if o.F == Read {
				l.readers[id] = true
			} else {
				w := id
				l.writer = &w
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		w, h := want[k], g.locks[k]
		if h == nil {
			return fmt.Errorf("key %q: its prepared transactions hold no lock on it", k)
		}
		if (w.writer == nil) != (h.writer == nil) || w.writer != nil && *w.writer != *h.writer {
			return fmt.Errorf("key %q: write lock held by %v, its prepared records say %v", k, h.writer, w.writer)
		}
		for id := range w.readers {
			if !h.readers[id] {
				return fmt.Errorf("key %q: prepared txn %v reads it without a read lock", k, id)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g.locks)) {
		h := g.locks[k]
		if h.writer != nil && g.prepared[*h.writer] == nil {
			return fmt.Errorf("key %q: write-locked by txn %v, which holds no prepared record", k, *h.writer)
		}
		for id := range h.readers {
			if g.prepared[id] == nil {
				return fmt.Errorf("key %q: read-locked by txn %v, which holds no prepared record", k, id)
			}
		}
	}
	return nil
}
