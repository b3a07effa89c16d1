package sim

import (
	"fmt"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// txnOracle checks two-phase commit across the groups of a sharded world,
// on every step, from what each replica's state machine reports it did
// (txn.Group's Steps and Audit):
//   - a transaction is decided once, ever: at one log index of one
//     coordinator group, across every replica and restart, so one outcome
//     (an abandon must not overturn a decision, and a retried request
//     must not be decided again, at the same group or another);
//   - a participant applies only the decision its coordinator's log
//     chose, and only from the coordinator that prepared it;
//   - a group writes a transaction's writes at one log index at most, and
//     only once the transaction is decided to commit;
//   - a prepared record holds its locks until its decision is applied,
//     nothing else holds locks, and prepared records are on shards the
//     group serves (txn.Group.Audit);
//   - a client hears that a transaction committed only after its
//     coordinator's log chose commit;
//   - a state machine restored from a snapshot owes the same deliveries
//     (2PC messages, hand-offs), waits for the same votes, holds the same
//     prepared records and serves the same shards as the replica that
//     took the snapshot, so a restart resumes every decision and lock.
type txnOracle struct {
	decided map[txn.TxnID]decision
	wrote   map[groupTxn]uint64 // the index at which the group wrote the transaction
}

type decision struct {
	group  replica.GroupID
	index  uint64
	commit bool
}

type groupTxn struct {
	group replica.GroupID
	txn   txn.TxnID
}

func newTxnOracle() *txnOracle {
	return &txnOracle{decided: map[txn.TxnID]decision{}, wrote: map[groupTxn]uint64{}}
}

// stepper is a state machine that reports its two-phase-commit steps.
type stepper interface {
	Steps() []txn.Step
	Audit() error
}

// owing is a state machine whose deliveries, pending votes, locks and
// shards a restart must resume.
type owing interface {
	Outbox() []txn.Outgoing
	Pending() []txn.TxnID
	Locked() int
	Serving() []int
	ConfigNum() uint64
}

func outcome(commit bool) string {
	if commit {
		return "commit"
	}
	return "abort"
}

// txnApplied checks the steps node i's state machine took in its last
// Apply.
func (o *oracle) txnApplied(i int, sm replica.StateMachine) {
	t := o.txn
	s, ok := sm.(stepper)
	if t == nil || !ok {
		return
	}
	g := o.c.cfg.Group
	for _, st := range s.Steps() {
		if msg := t.check(g, st); msg != "" {
			o.violate(i, "%s", msg)
			return
		}
	}
	if err := s.Audit(); err != nil {
		o.violate(i, "lock table: %v", err)
	}
}

// check returns what step st of group g breaks, or "".
func (t *txnOracle) check(g replica.GroupID, st txn.Step) string {
	d, ok := t.decided[st.Txn]
	switch st.Kind {
	case txn.StepDecided:
		if !ok {
			t.decided[st.Txn] = decision{g, st.Index, st.Commit}
			return ""
		}
		if d.group != g || d.index != st.Index {
			return fmt.Sprintf("txn %v decided twice: %s by group %d at index %d, then %s by group %d at index %d", st.Txn, outcome(d.commit), d.group, d.index, outcome(st.Commit), g, st.Index)
		}
		if d.commit != st.Commit {
			return fmt.Sprintf("txn %v at index %d of group %d decided %s, where another replica decided %s", st.Txn, st.Index, g, outcome(st.Commit), outcome(d.commit))
		}
	case txn.StepSettled:
		switch {
		case !ok:
			return fmt.Sprintf("group %d applied %s of txn %v from group %d at index %d, which no coordinator's log chose", g, outcome(st.Commit), st.Txn, st.From, st.Index)
		case d.commit != st.Commit:
			return fmt.Sprintf("group %d applied %s of txn %v at index %d, whose coordinator (group %d) chose %s", g, outcome(st.Commit), st.Txn, st.Index, d.group, outcome(d.commit))
		case st.From != d.group:
			return fmt.Sprintf("group %d applied a decision of txn %v from group %d at index %d, whose coordinator is group %d", g, st.Txn, st.From, st.Index, d.group)
		case st.Prepared && st.Coord != st.From:
			return fmt.Sprintf("group %d settled its prepared record of txn %v (coordinator %d) on a decision of group %d at index %d", g, st.Txn, st.Coord, st.From, st.Index)
		}
	case txn.StepWrote:
		k := groupTxn{g, st.Txn}
		if at, seen := t.wrote[k]; seen && at != st.Index {
			return fmt.Sprintf("group %d wrote txn %v's writes twice, at indexes %d and %d", g, st.Txn, at, st.Index)
		}
		if !ok || !d.commit {
			return fmt.Sprintf("group %d wrote txn %v's writes at index %d before its coordinator's log chose commit", g, st.Txn, st.Index)
		}
		t.wrote[k] = st.Index
	}
	return ""
}

// answered checks that a client told that txn id committed was told after
// the coordinator's log chose commit; it returns the violation, or "".
func (t *txnOracle) answered(id txn.TxnID) string {
	if d, ok := t.decided[id]; !ok || !d.commit {
		return fmt.Sprintf("a client was told txn %v committed, which no coordinator's log chose to commit", id)
	}
	return ""
}

// snapshotted checks that a state machine restored from data, node i's
// snapshot of sm, owes what sm owes.
func (o *oracle) snapshotted(i int, sm replica.StateMachine, data []byte) {
	live, ok := sm.(owing)
	if o.txn == nil || !ok {
		return
	}
	fresh := o.c.cfg.NewStateMachine()
	if err := fresh.Restore(data); err != nil {
		o.violate(i, "its snapshot does not restore: %v", err)
		return
	}
	back, ok := fresh.(owing)
	if !ok {
		return
	}
	if a, b := live.Locked(), back.Locked(); a != b {
		o.violate(i, "restored from its own snapshot it holds %d prepared records, not %d", b, a)
		return
	}
	if a, b := live.Serving(), back.Serving(); !slices.Equal(a, b) || live.ConfigNum() != back.ConfigNum() {
		o.violate(i, "restored from its own snapshot it serves shards %v at configuration %d, not %v at %d", b, back.ConfigNum(), a, live.ConfigNum())
		return
	}
	if a, b := live.Pending(), back.Pending(); !slices.Equal(a, b) {
		o.violate(i, "restored from its own snapshot it waits for votes of %v, not %v", b, a)
		return
	}
	a, b := live.Outbox(), back.Outbox()
	if !slices.EqualFunc(a, b, func(x, y txn.Outgoing) bool {
		return x.To == y.To && x.Txn == y.Txn && x.Prepare == y.Prepare && string(x.Op) == string(y.Op)
	}) {
		o.violate(i, "restored from its own snapshot it owes %d deliveries, not the %d it owed", len(b), len(a))
	}
}
