package txn

import (
	"slices"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
)

// crossTxn starts a transaction writing a key of each of groups 1 and 2 at
// its coordinator and delivers its prepare; it returns the world, the
// coordinator, the participant and the participant's vote.
func crossTxn(t *testing.T) (w *world, coord, part replica.GroupID, vote []byte) {
	t.Helper()
	w = newWorld(t, 1, 3)
	w.settleConfigs()
	cfg := w.ctl.Latest()
	k1, k2 := keysOn(t, cfg, 1, 2)
	coord = cfg.Shards[min(shardctl.ShardOf(k1), shardctl.ShardOf(k2))]
	part = 3 - coord
	if r := w.txnReply(coord, 7, 1, []MicroOp{{F: Write, Key: k1, Value: "x"}, {F: Write, Key: k2, Value: "x"}}); r.Status != StatusPending {
		t.Fatalf("cross-group txn: %+v, want it pending", r)
	}
	box := w.groups[coord].Outbox()
	if len(box) != 1 || !box[0].Prepare || box[0].To != part {
		t.Fatalf("outbox %+v, want one prepare to group %d", box, part)
	}
	vote = w.apply(part, 0, 0, box[0].Op)
	return w, coord, part, vote
}

func kinds(steps []Step) []StepKind {
	var out []StepKind
	for _, s := range steps {
		out = append(out, s.Kind)
	}
	return out
}

// TestStepsOfACrossGroupCommit: each group reports the 2PC steps its
// Apply took, with the log index that took them.
func TestStepsOfACrossGroupCommit(t *testing.T) {
	w, coord, part, vote := crossTxn(t)
	id := TxnID{7, 1}
	if got := w.groups[part].Steps(); len(got) != 1 || got[0] != (Step{Kind: StepPrepared, Txn: id, Index: w.index[part], Coord: coord}) {
		t.Fatalf("participant's prepare steps %+v", got)
	}
	w.apply(coord, 0, 0, vote)
	want := []StepKind{StepDecided, StepSettled, StepWrote}
	got := w.groups[coord].Steps()
	if !slices.Equal(kinds(got), want) || !got[0].Commit || got[0].Coord != coord || got[1].From != coord || !got[1].Prepared {
		t.Fatalf("coordinator's steps on the last vote %+v, want %v committing", got, want)
	}
	box := w.groups[coord].Outbox()
	if len(box) != 1 || box[0].Prepare {
		t.Fatalf("outbox %+v, want the decision", box)
	}
	w.apply(part, 0, 0, box[0].Op)
	got = w.groups[part].Steps()
	if !slices.Equal(kinds(got), []StepKind{StepSettled, StepWrote}) || got[0].From != coord || got[0].Coord != coord || !got[0].Commit {
		t.Fatalf("participant's steps on the decision %+v", got)
	}
	w.apply(part, 0, 0, box[0].Op)
	if got = w.groups[part].Steps(); !slices.Equal(kinds(got), []StepKind{StepSettled}) || got[0].Prepared {
		t.Fatalf("a repeated decision took steps %+v, want a settle without a prepared record and no writes", got)
	}
}

// TestDecisionFromAnotherGroupIsRefused: a participant settles its
// prepared record only on a decision of the coordinator that prepared it.
func TestDecisionFromAnotherGroupIsRefused(t *testing.T) {
	w, coord, part, _ := crossTxn(t)
	id := TxnID{7, 1}
	foreign := (&message{K: opDecide, ID: id, From: 3, Commit: true}).encode()
	if ans := w.apply(part, 0, 0, foreign); ans != nil {
		t.Fatalf("a foreign decision was acknowledged: %s", ans)
	}
	if w.groups[part].Locked() != 1 || len(w.groups[part].Steps()) != 0 {
		t.Fatalf("a foreign decision settled the prepared record (locked %d, steps %+v)", w.groups[part].Locked(), w.groups[part].Steps())
	}
	own := (&message{K: opDecide, ID: id, From: coord}).encode()
	if ans := w.apply(part, 0, 0, own); ans == nil || w.groups[part].Locked() != 0 {
		t.Fatalf("the coordinator's decision: answer %q, %d still locked", ans, w.groups[part].Locked())
	}
}

// TestAudit: the lock table's invariants hold on the real protocol and
// fail on broken variants of it.
func TestAudit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		brk   func(g *Group, id TxnID)
		wants string
	}{
		{"real", func(*Group, TxnID) {}, ""},
		{"locks released at prepare", func(g *Group, id TxnID) { g.releaseLocks(id, g.prepared[id].Part.Ops) }, "hold no lock"},
		{"lock kept after the record", func(g *Group, id TxnID) { delete(g.prepared, id) }, "holds no prepared record"},
		{"record on a shard not served", func(g *Group, id TxnID) {
			g.state[shardctl.ShardOf(g.prepared[id].Part.Ops[0].Key)] = notOwned
		}, "does not serve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _, part, _ := crossTxn(t)
			g := w.groups[part]
			tc.brk(g, TxnID{7, 1})
			err := g.Audit()
			switch {
			case tc.wants == "" && err != nil:
				t.Fatalf("the real group fails its audit: %v", err)
			case tc.wants != "" && (err == nil || !strings.Contains(err.Error(), tc.wants)):
				t.Fatalf("audit: %v, want an error saying %q", err, tc.wants)
			}
		})
	}
}
