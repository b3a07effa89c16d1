package txn

import (
	"strconv"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
)

// keysOn returns two keys whose shards the configuration gives to a and b.
func keysOn(t *testing.T, cfg shardctl.Config, a, b replica.GroupID) (string, string) {
	t.Helper()
	var ka, kb string
	for i := 0; i < 1000 && (ka == "" || kb == ""); i++ {
		k := key(int64(i))
		switch cfg.Shards[shardctl.ShardOf(k)] {
		case a:
			if ka == "" {
				ka = k
			}
		case b:
			if kb == "" {
				kb = k
			}
		}
	}
	if ka == "" || kb == "" {
		t.Fatal("no keys found on both groups")
	}
	return ka, kb
}

// settleConfigs brings every group to the controller's latest config.
func (w *world) settleConfigs() {
	for round := 0; round < 100; round++ {
		for _, g := range w.gids {
			w.learnConfig(g)
			for _, m := range w.groups[g].Outbox() {
				if ans := w.apply(m.To, 0, 0, m.Op); len(ans) > 0 {
					w.apply(g, 0, 0, ans)
				}
			}
		}
	}
}

func (w *world) txnReply(g replica.GroupID, client, seq uint64, ops []MicroOp) Reply {
	w.t.Helper()
	r, err := DecodeReply(w.apply(g, client, seq, EncodeTxnRequest(ops)))
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// TestCutOffCrossGroupAbortsSingleGroupCommits: while the two groups
// cannot exchange messages, a transaction over both never commits (it is
// abandoned and aborts, and the participant never applied anything), while
// one over a single group commits at once.
func TestCutOffCrossGroupAbortsSingleGroupCommits(t *testing.T) {
	w := newWorld(t, 1, 2)
	w.settleConfigs()
	cfg := w.ctl.Latest()
	k1, k2 := keysOn(t, cfg, 1, 2)
	coord := cfg.Shards[min(shardctl.ShardOf(k1), shardctl.ShardOf(k2))]
	other := 3 - coord
	cross := []MicroOp{{F: Write, Key: k1, Value: "x"}, {F: Write, Key: k2, Value: "x"}}
	if r := w.txnReply(coord, 7, 1, cross); r.Status != StatusPending {
		t.Fatalf("cross-group txn: %+v, want it pending", r)
	}
	// The partition: the outbox is never delivered. The coordinator keeps
	// the decision open until the runtime abandons it.
	if r := w.txnReply(coord, 7, 1, cross); r.Status != StatusPending {
		t.Fatalf("retry while cut off: %+v", r)
	}
	if _, done := w.groups[coord].Answer(7, 1); done {
		t.Fatal("an undecided transaction has an answer")
	}
	single := []MicroOp{{F: Append, Key: k2, Value: "1"}, {F: Read, Key: k2}}
	if r := w.txnReply(other, 8, 1, single); r.Status != StatusOK {
		t.Fatalf("single-group txn on the other side: %+v", r)
	}
	pend := w.groups[coord].Pending()
	if len(pend) != 1 || pend[0] != (TxnID{7, 1}) {
		t.Fatalf("pending %v", pend)
	}
	w.apply(coord, 0, 0, EncodeAbandon(pend[0]))
	if v, done := w.groups[coord].Answer(7, 1); !done {
		t.Fatal("no answer for the held request after the abandon")
	} else if r, err := DecodeReply(v); err != nil || r.Status != StatusAborted {
		t.Fatalf("answer after abandon: %+v, %v; want aborted", r, err)
	}
	if r := w.txnReply(coord, 7, 1, cross); r.Status != StatusAborted {
		t.Fatalf("after abandon: %+v, want aborted", r)
	}
	// Healed: the abort reaches the participant, which never wrote.
	w.settleConfigs()
	if v, _ := w.groups[other].Get(k2); v == "x" {
		t.Fatal("aborted write applied at the participant")
	}
	if v, _ := w.groups[coord].Get(k1); v == "x" {
		t.Fatal("aborted write applied at the coordinator")
	}
	if w.groups[coord].Locked()+w.groups[other].Locked() != 0 || len(w.groups[coord].Outbox()) != 0 {
		t.Fatal("locks or messages left after the abort was delivered")
	}
}

// TestReconfigurationWaitsForLocks: a group holding a prepared
// transaction learns a new configuration but installs it only after the
// transaction's decision released the locks; meanwhile it starts nothing.
func TestReconfigurationWaitsForLocks(t *testing.T) {
	w := newWorld(t, 1, 3)
	w.settleConfigs()
	cfg := w.ctl.Latest()
	k1, k2 := keysOn(t, cfg, 1, 2)
	coord := cfg.Shards[min(shardctl.ShardOf(k1), shardctl.ShardOf(k2))]
	part := 3 - coord
	if r := w.txnReply(coord, 7, 1, []MicroOp{{F: Write, Key: k1, Value: "a"}, {F: Write, Key: k2, Value: "b"}}); r.Status != StatusPending {
		t.Fatalf("cross txn: %+v", r)
	}
	box := w.groups[coord].Outbox()
	if len(box) != 1 || !box[0].Prepare {
		t.Fatalf("outbox %+v", box)
	}
	vote := w.apply(part, 0, 0, box[0].Op) // the participant prepares and locks
	if w.groups[part].Locked() != 1 {
		t.Fatal("participant did not lock")
	}
	w.ctlOp(shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{3: {3}}})
	w.learnConfig(part)
	if w.groups[part].ConfigNum() != cfg.Num {
		t.Fatal("participant installed a configuration while holding locks")
	}
	if r := w.txnReply(part, 9, 1, []MicroOp{{F: Read, Key: k2}}); r.Status != StatusRetry {
		t.Fatalf("new txn during pending reconfiguration: %+v, want retry", r)
	}
	w.apply(coord, 0, 0, vote) // commit decided at the coordinator
	for _, m := range w.groups[coord].Outbox() {
		w.apply(coord, 0, 0, w.apply(m.To, 0, 0, m.Op))
	}
	if w.groups[part].Locked() != 0 || w.groups[part].ConfigNum() != cfg.Num+1 {
		t.Fatalf("after the decision: %d locked, config %d", w.groups[part].Locked(), w.groups[part].ConfigNum())
	}
	w.settleConfigs()
	latest := w.ctl.Latest()
	for _, kv := range [][2]string{{k1, "a"}, {k2, "b"}} {
		owner := latest.Shards[shardctl.ShardOf(kv[0])]
		if v, _ := w.groups[owner].Get(kv[0]); v != kv[1] {
			t.Fatalf("%s = %q at its owner %d, want %q", kv[0], v, owner, kv[1])
		}
	}
	// The session moved with the shards: the retried request is answered,
	// not re-run, wherever the client now finds its coordinator.
	newCoord := latest.Shards[min(shardctl.ShardOf(k1), shardctl.ShardOf(k2))]
	if r := w.txnReply(newCoord, 7, 1, []MicroOp{{F: Write, Key: k1, Value: "a"}, {F: Write, Key: k2, Value: "b"}}); r.Status != StatusOK || len(r.Results) != 2 {
		t.Fatalf("retry at group %d (was %d): %+v", newCoord, coord, r)
	}
}

func FuzzGroupApply(f *testing.F) {
	f.Add(EncodeTxnRequest([]MicroOp{{F: Read, Key: "a"}}))
	f.Add([]byte(`{"k":"prepare","id":{"c":1,"s":1},"from":2,"part":{"idx":[0],"ops":[{"F":"w","Key":"a","Value":"v"}]}}`))
	f.Add([]byte(`{"k":"install","shard":3,"num":1,"sess":"AQA="}`))
	f.Add([]byte(`{"k":"vote","id":{"c":1,"s":1},"from":2,"yes":true,"res":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g := NewGroup(1)
		g.Apply(1, replica.Request{ClientID: 1, Seq: 1, Op: b})
		g.Apply(2, replica.Request{Op: b})
		snap, err := g.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := NewGroup(1).Restore(snap); err != nil {
			t.Fatalf("restore own snapshot: %v", err)
		}
		_ = NewGroup(1).Restore(b)
		_, _ = DecodeReply(b)
	})
}

// TestMultiKeyWriteSeenWhole: writers set two keys in different shards
// (often different groups) to one value in one transaction, readers read
// both; under message loss, restarts and shard moves every committed read
// sees both writes or neither.
func TestMultiKeyWriteSeenWhole(t *testing.T) {
	n := seeds(t, 50)
	reads := 0
	for seed := int64(1); seed <= int64(n); seed++ {
		w := newWorld(t, seed, 3)
		w.gen = func(c *wclient) ([]MicroOp, []any) {
			if w.rng.Intn(2) == 0 {
				w.nextVal++
				v := strconv.FormatInt(w.nextVal, 10)
				return []MicroOp{{F: Write, Key: "a", Value: v}, {F: Write, Key: "b", Value: v}}, []any{[]any{"w", "a", v}}
			}
			return []MicroOp{{F: Read, Key: "a"}, {F: Read, Key: "b"}}, []any{[]any{"r", "a", nil}}
		}
		w.onOK = func(res []MicroResult) {
			if res[0].F != Read {
				return
			}
			reads++
			if res[0].Found != res[1].Found || res[0].Value != res[1].Value {
				t.Fatalf("seed %d: fractured read: a=%q (%v), b=%q (%v)\nreplay: go test ./kvnode/txn -run TestMultiKeyWriteSeenWhole", seed, res[0].Value, res[0].Found, res[1].Value, res[1].Found)
			}
		}
		w.runSteps(2000, 4)
	}
	if reads == 0 {
		t.Fatal("no read committed")
	}
	if shardctl.ShardOf("a") == shardctl.ShardOf("b") {
		t.Fatal("keys a and b share a shard: the test would not cross groups")
	}
}

// TestCheckAcrossGroups: a transaction whose Check fails at a participant
// applies nothing anywhere and answers check-failed; with matching checks
// it commits.
func TestCheckAcrossGroups(t *testing.T) {
	w := newWorld(t, 1, 2)
	w.settleConfigs()
	cfg := w.ctl.Latest()
	k1, k2 := keysOn(t, cfg, 1, 2)
	coord := cfg.Shards[min(shardctl.ShardOf(k1), shardctl.ShardOf(k2))]
	run := func(seq uint64, ops []MicroOp) Reply {
		w.txnReply(coord, 7, seq, ops)
		w.settleConfigs() // delivers prepares, votes and decisions
		return w.txnReply(coord, 7, seq, ops)
	}
	if r := run(1, []MicroOp{{F: Write, Key: k1, Value: "10"}, {F: Write, Key: k2, Value: "10"}}); r.Status != StatusOK {
		t.Fatalf("setup: %+v", r)
	}
	transfer := func(seq uint64, a, b string) Reply {
		return run(seq, []MicroOp{{F: Check, Key: k1, Value: a}, {F: Check, Key: k2, Value: b}, {F: Write, Key: k1, Value: "7"}, {F: Write, Key: k2, Value: "13"}})
	}
	for i, stale := range [][2]string{{"10", "9"}, {"9", "10"}} {
		if r := transfer(uint64(2+i), stale[0], stale[1]); r.Status != StatusCheckFailed {
			t.Fatalf("stale checks %v: %+v, want check-failed", stale, r)
		}
		owner1, owner2 := cfg.Shards[shardctl.ShardOf(k1)], cfg.Shards[shardctl.ShardOf(k2)]
		if v1, _ := w.groups[owner1].Get(k1); v1 != "10" {
			t.Fatalf("k1 = %q after a failed check", v1)
		}
		if v2, _ := w.groups[owner2].Get(k2); v2 != "10" {
			t.Fatalf("k2 = %q after a failed check", v2)
		}
	}
	if r := transfer(4, "10", "10"); r.Status != StatusOK {
		t.Fatalf("matching checks: %+v", r)
	}
}

// TestJoinLeavePreservesValuesAndOwnership writes 64 keys, then joins and
// leaves groups one change at a time; after each change settles, every
// value is at the key's owner, every group serves exactly the shards it
// owns, and a non-owner answers wrong-group.
func TestJoinLeavePreservesValuesAndOwnership(t *testing.T) {
	w := newWorld(t, 1, 3)
	w.settleConfigs()
	seq := uint64(0)
	do := func(g replica.GroupID, ops []MicroOp) Reply {
		seq++
		r := w.txnReply(g, 42, seq, ops)
		w.settleConfigs()
		if r.Status == StatusRetry {
			r = w.txnReply(g, 42, seq, ops)
		}
		return r
	}
	want := map[string]string{}
	for i := 0; i < 64; i++ {
		k := key(int64(i))
		want[k] = strconv.Itoa(i)
		owner := w.ctl.Latest().Shards[shardctl.ShardOf(k)]
		if r := do(owner, []MicroOp{{F: Write, Key: k, Value: want[k]}}); r.Status != StatusOK {
			t.Fatalf("write %s: %+v", k, r)
		}
	}
	changes := []shardctl.Op{
		{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{3: {3}}},
		{Kind: shardctl.Leave, GIDs: []replica.GroupID{1}},
		{Kind: shardctl.Move, Shard: 0, GID: 2},
		{Kind: shardctl.Leave, GIDs: []replica.GroupID{2}},
		{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{1: {1}, 2: {2}}},
	}
	probe := uint64(0)
	for i, op := range changes {
		if r := w.ctlOp(op); r.Err != "" {
			t.Fatalf("change %d: %s", i, r.Err)
		}
		w.settleConfigs()
		w.checkOwnership()
		latest := w.ctl.Latest()
		for k, v := range want {
			owner := latest.Shards[shardctl.ShardOf(k)]
			if got, _ := w.groups[owner].Get(k); got != v {
				t.Fatalf("after change %d: %s = %q at owner %d, want %q", i, k, got, owner, v)
			}
			other := replica.GroupID(1 + (int(owner))%3)
			probe++
			if r := w.txnReply(other, 43, probe, []MicroOp{{F: Read, Key: k}}); r.Status != StatusWrongGroup {
				t.Fatalf("after change %d: group %d (not the owner of %s) answered %+v", i, other, k, r)
			}
		}
	}
}
