package sim

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// TestTxnOracleSteps feeds the two-phase-commit oracle the steps of the
// real protocol and of broken variants of it (what a coordinator or a
// participant with a planted bug would report) and checks that exactly the
// broken ones are refused, at the step that breaks the rule.
func TestTxnOracleSteps(t *testing.T) {
	x := txn.TxnID{Client: 7, Seq: 1}
	type gs struct {
		g  replica.GroupID
		st txn.Step
	}
	decided := func(g replica.GroupID, i uint64, commit bool) gs {
		return gs{g, txn.Step{Kind: txn.StepDecided, Txn: x, Index: i, Coord: g, Commit: commit}}
	}
	settled := func(g, from, coord replica.GroupID, i uint64, commit bool) gs {
		return gs{g, txn.Step{Kind: txn.StepSettled, Txn: x, Index: i, From: from, Coord: coord, Commit: commit, Prepared: coord != 0}}
	}
	wrote := func(g replica.GroupID, i uint64) gs { return gs{g, txn.Step{Kind: txn.StepWrote, Txn: x, Index: i}} }
	prepared := gs{2, txn.Step{Kind: txn.StepPrepared, Txn: x, Index: 3, Coord: 1}}
	for _, tc := range []struct {
		name  string
		steps []gs
		wants string // in the violation; "" for none
	}{
		{"real commit, replayed after a restart", []gs{prepared, decided(1, 5, true), settled(1, 1, 1, 5, true), wrote(1, 5), settled(2, 1, 1, 9, true), wrote(2, 9),
			decided(1, 5, true), settled(1, 1, 1, 5, true), wrote(1, 5), settled(2, 1, 0, 11, true)}, ""},
		{"real abort", []gs{prepared, decided(1, 5, false), settled(2, 1, 1, 9, false)}, ""},
		{"abandon overturns a decided commit", []gs{decided(1, 5, true), decided(1, 8, false)}, "decided twice"},
		{"a retry decided again elsewhere", []gs{decided(1, 5, true), decided(3, 2, true)}, "decided twice"},
		{"replicas decide differently", []gs{decided(1, 5, true), decided(1, 5, false)}, "another replica decided"},
		{"participant commits what nobody chose", []gs{prepared, settled(2, 1, 1, 9, true)}, "no coordinator's log chose"},
		{"participant applies the other outcome", []gs{prepared, decided(1, 5, false), settled(2, 1, 1, 9, true)}, "chose abort"},
		{"decision from a foreign coordinator", []gs{prepared, decided(1, 5, true), settled(2, 3, 1, 9, true)}, "whose coordinator is group 1"},
		{"writes applied twice", []gs{decided(1, 5, true), wrote(2, 9), wrote(2, 12)}, "twice"},
		{"writes before the decision", []gs{prepared, wrote(2, 4)}, "before its coordinator's log chose commit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newTxnOracle()
			got := ""
			for _, s := range tc.steps {
				if got = o.check(s.g, s.st); got != "" {
					break
				}
			}
			switch {
			case tc.wants == "" && got != "":
				t.Fatalf("the real protocol's steps refused: %s", got)
			case tc.wants != "" && !strings.Contains(got, tc.wants):
				t.Fatalf("violation %q, want one saying %q", got, tc.wants)
			}
		})
	}
	o := newTxnOracle()
	if got := o.answered(x); !strings.Contains(got, "told txn") {
		t.Fatalf("a client told of a commit nobody chose: %q", got)
	}
	o.check(1, decided(1, 5, true).st)
	if got := o.answered(x); got != "" {
		t.Fatalf("a client told of a chosen commit: %q", got)
	}
}

// TestTxnOracleSnapshots: a shard group restored from a faithful snapshot
// owes what the replica that took it owes; one restored from a snapshot
// that forgot a decided transaction (taken before its decision, standing
// in for a Snapshot that drops decided records) is refused.
func TestTxnOracleSnapshots(t *testing.T) {
	c, err := NewCluster(ClusterConfig{Seed: 1, Replicas: 3, Group: 1, NewStateMachine: func() replica.StateMachine { return txn.NewGroup(1) }})
	if err != nil {
		t.Fatal(err)
	}
	c.oracle.txn = newTxnOracle()
	g := txn.NewGroup(1)
	cfg := shardctl.Config{Num: 1, Groups: map[replica.GroupID][]replica.NodeID{1: {1}, 2: {2}}}
	for s := range cfg.Shards {
		cfg.Shards[s] = replica.GroupID(1 + s%2)
	}
	g.Apply(1, replica.Request{Op: txn.EncodeConfigRequest(&cfg)})
	// lo on shard 0 (group 1, the coordinator), hi on shard 1 (group 2).
	var lo, hi string
	for i := 0; lo == "" || hi == ""; i++ {
		k := "k" + strconv.Itoa(i)
		switch shardctl.ShardOf(k) {
		case 0:
			lo = k
		case 1:
			hi = k
		}
	}
	g.Apply(2, replica.Request{ClientID: 7, Seq: 1, Op: txn.EncodeTxnRequest([]txn.MicroOp{{F: txn.Write, Key: lo, Value: "x"}, {F: txn.Write, Key: hi, Value: "x"}})})
	faithful, err := g.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	c.oracle.snapshotted(0, g, faithful)
	if c.err != nil {
		t.Fatalf("a faithful snapshot refused: %v", c.err)
	}
	g.Apply(3, replica.Request{Op: txn.EncodeAbandon(txn.TxnID{Client: 7, Seq: 1})})
	if len(g.Outbox()) != 1 {
		t.Fatalf("outbox %+v, want the abort decision", g.Outbox())
	}
	c.oracle.snapshotted(0, g, faithful)
	if v := violation(c.err); v == nil || !strings.Contains(v.What, "restored from its own snapshot") {
		t.Fatalf("a snapshot that forgot a decision: %v, want a violation", c.err)
	}
}
