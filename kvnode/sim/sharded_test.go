package sim

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
	"github.com/chaoskv/chaos/kvnode/wlops"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// shardedSeeds is the sweep size: CHAOS_SIM_SEEDS, else 200 (40 in -short).
func shardedSeeds(t *testing.T) int {
	if s := os.Getenv("CHAOS_SIM_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_SIM_SEEDS=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 40
	}
	return 200
}

// shardedFaults is the sharded sweeps' fault mix: power-loss crashes,
// crashes at protocol moments (a promise, a pick, a decision), partitions
// of the nodes, and shard changes through the controller.
var shardedFaults = []nemesis.Kind{nemesis.LoseUnsynced, nemesis.CrashMoment, nemesis.Partition, nemesis.Reconfig}

// shardedRhythm spaces the sweeps' faults about as the sharded world's
// former fixed mix did (one fault or shard change every 300-800ms, one at
// a time, about as many shard changes per seed): the three classes
// overlap, so each runs at a slower pace, without flaps, which cost twice
// the time here (every short crash restarts every replica its node hosts).
var shardedRhythm = NemesisSchedule{Interval: 1500 * time.Millisecond}

// TestShardedSweep runs the sharded list-append test with crashes,
// partitions and shard moves on many seeds; every history must be
// strict-serializable (Elle), every final read must complete after
// healing, and replicas of every group must agree.
func TestShardedSweep(t *testing.T) {
	n := shardedSeeds(t)
	start := time.Now()
	var ok, aborted, info, moves, cross, attempts int
	for seed := int64(1); seed <= int64(n); seed++ {
		res, err := RunSharded(ShardedConfig{Seed: seed, Nemesis: shardedFaults, Schedule: shardedRhythm})
		if err != nil {
			t.Fatalf("seed %d: %v\nreplay: CHAOS_SHARDED_SEED=%d go test ./kvnode/sim -run TestShardedSeed -v", seed, err, seed)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("seed %d: %s: problems %v, check %+v\nreplay: CHAOS_SHARDED_SEED=%d go test ./kvnode/sim -run TestShardedSeed -v", seed, res.Valid, res.Problems, res.Check, seed)
		}
		ok, aborted, info, moves = ok+res.Ok, aborted+res.Fail, info+res.Info, moves+res.Moves
		cross += res.Cross
		attempts += res.Aborts
	}
	t.Logf("%d seeds in %v: %d committed (%d cross-group), %d failed, %d unknown, %d aborted attempts retried, %d shard changes", n, time.Since(start), ok, cross, aborted, info, attempts, moves)
	if ok == 0 || cross == 0 || moves == 0 {
		t.Fatalf("the sweep did not exercise cross-group commits and shard changes")
	}
}

// TestShardedSeed replays one seed of the sweep (CHAOS_SHARDED_SEED,
// default 1) and prints its history on failure.
func TestShardedSeed(t *testing.T) {
	seed := int64(1)
	if s := os.Getenv("CHAOS_SHARDED_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SHARDED_SEED=%q: %v", s, err)
		}
		seed = v
	}
	res, err := RunSharded(ShardedConfig{Seed: seed, Nemesis: shardedFaults, Schedule: shardedRhythm})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d: %d ok (%d cross-group), %d aborted, %d info, %d shard changes, %v virtual", seed, res.Ok, res.Cross, res.Fail, res.Info, res.Moves, res.Virtual)
	if res.Valid != checker.Valid {
		for _, op := range res.History {
			t.Log(op.Index, op.Type, op.Process, op.F, op.Value, op.Error)
		}
		t.Fatalf("seed %d invalid: %v %+v", seed, res.Problems, res.Check)
	}
}

// TestShardedConstantMovement changes the shard configuration every 150ms
// (Join, Leave or Move) with no other fault: every transaction must end
// within its 3s deadline with a definite outcome (no unknowns), which
// bounds how long reconfiguration can hold a shard; and the history must
// be strict-serializable.
func TestShardedConstantMovement(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 5
	}
	var worst time.Duration
	for seed := int64(1); seed <= int64(n); seed++ {
		res, err := RunSharded(ShardedConfig{Seed: seed, MoveEvery: 150 * time.Millisecond, TxnDeadline: 3 * time.Second})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("seed %d: %v %+v", seed, res.Problems, res.Check)
		}
		if res.Info > 0 || res.Moves < 10 || res.Ok == 0 {
			t.Fatalf("seed %d: %d ok, %d failed, %d unknown, %d shard changes: want no unknowns and at least 10 changes", seed, res.Ok, res.Fail, res.Info, res.Moves)
		}
		inv := map[int64]int64{}
		for _, op := range res.History {
			if op.Process < 0 {
				continue
			}
			if op.Type == history.Invoke {
				inv[int64(op.Process)] = op.Time
			} else if op.Type == history.Ok {
				worst = max(worst, time.Duration(op.Time-inv[int64(op.Process)]))
			}
		}
	}
	t.Logf("%d seeds: slowest committed transaction took %v of virtual time (bound 3s)", n, worst)
}

// TestShardedRWRegisterSweep: the rw-register workload under the same
// faults; Elle checks strict serializability of reads and writes.
func TestShardedRWRegisterSweep(t *testing.T) {
	n := shardedSeeds(t) / 4
	var ok, cross int
	for seed := int64(1); seed <= int64(n); seed++ {
		res, err := RunSharded(ShardedConfig{Seed: seed, Nemesis: shardedFaults, Schedule: shardedRhythm, Workload: "rw-register"})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("seed %d: %s: problems %v, check %+v", seed, res.Valid, res.Problems, res.Check)
		}
		ok, cross = ok+res.Ok, cross+res.Cross
	}
	t.Logf("%d seeds: %d committed (%d cross-group)", n, ok, cross)
	if cross == 0 {
		t.Fatal("no cross-group transaction committed")
	}
}

// TestShardedBankSweep: transfers between accounts in different shards,
// guarded by checks, under the same faults; every read must see the whole
// bank with the right total and no negative balance.
func TestShardedBankSweep(t *testing.T) {
	n := shardedSeeds(t) / 4
	var transfers, reads int
	for seed := int64(1); seed <= int64(n); seed++ {
		res, err := RunSharded(ShardedConfig{Seed: seed, Nemesis: shardedFaults, Schedule: shardedRhythm, Workload: "bank"})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("seed %d: %s: problems %v, check %+v", seed, res.Valid, res.Problems, res.Check)
		}
		for _, op := range res.History {
			if op.Type == history.Ok {
				switch op.F {
				case "transfer":
					transfers++
				case "read":
					reads++
				}
			}
		}
	}
	// The history was judged by the workload's checker, which knows the
	// accounts and the total they must always hold.
	res, err := RunSharded(ShardedConfig{Seed: 1, Ops: 20, Workload: "bank", Keys: 4})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := res.Checker.(*bank.Checker); !ok || c.Total == nil || *c.Total != 40 || len(c.Accounts) != 4 {
		t.Fatalf("a bank of 4 accounts was checked by %#v", res.Checker)
	}
	t.Logf("%d seeds: %d transfers and %d reads committed", n, transfers, reads)
	if transfers == 0 || reads == 0 {
		t.Fatal("no transfer or no read committed")
	}
}

// TestShardedCutOffGroups cuts shard groups 1 and 2 off from each other
// (each keeps its majority and its clients): a transaction over both never
// commits while the cut lasts, one over group 1 alone does; once healed,
// the cross-group transaction commits.
func TestShardedCutOffGroups(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		cfg := ShardedConfig{Seed: seed, Groups: 2, TxnDeadline: 2 * time.Second, AbandonAfter: defaultAbandonAfter}
		cfg.defaults()
		w, _, err := newShardWorld(cfg)
		if err != nil {
			t.Fatal(err)
		}
		w.res = &ShardedResult{}
		w.runUntil(func() bool { return false }, 2*time.Second) // groups learn the first configuration
		ctl := w.clusters[0]
		latest := ctl.nodes[ctl.Leader()-1].sm.(*shardctl.Controller).Latest()
		var ka, kb string
		for i := 0; ka == "" || kb == ""; i++ {
			k := "k" + strconv.Itoa(i)
			switch latest.Shards[shardctl.ShardOf(k)] {
			case 1:
				ka = cmpOr(ka, k)
			case 2:
				kb = cmpOr(kb, k)
			}
		}
		w.groupCut = map[[2]replica.GroupID]bool{{1, 2}: true, {2, 1}: true}
		outcome := func(ops []txn.MicroOp) history.Type {
			tw := w.newWorker()
			var typ history.Type
			tw.txn(ops, func(_ []txn.MicroResult, err error) { typ = outcomeType(err) })
			w.runUntil(func() bool { return typ != 0 }, 10*time.Second)
			return typ
		}
		cross := []txn.MicroOp{{F: txn.Write, Key: ka, Value: "x"}, {F: txn.Write, Key: kb, Value: "x"}}
		if typ := outcome(cross); typ == history.Ok {
			t.Fatalf("seed %d: a cross-group transaction committed while the groups were cut off", seed)
		}
		if typ := outcome([]txn.MicroOp{{F: txn.Append, Key: ka, Value: "1"}, {F: txn.Read, Key: ka}}); typ != history.Ok {
			t.Fatalf("seed %d: a single-group transaction did not commit during the cut: %v", seed, typ)
		}
		w.groupCut = nil
		if typ := outcome(cross); typ != history.Ok {
			t.Fatalf("seed %d: the cross-group transaction did not commit after healing: %v", seed, typ)
		}
	}
}

// nextTxn is the workload's next transaction, for tests that run
// transactions themselves.
func nextTxn(t *testing.T, w *world) []txn.MicroOp {
	t.Helper()
	inv, ok := w.workers.Next()
	if !ok {
		t.Fatal("the workload's op budget is spent")
	}
	s := w.codec.Start(inv)
	ops, err := wlops.MicroOps(s.Ops)
	if s.Done() || err != nil {
		t.Fatalf("the %s codec gave no transaction: %v %+v", w.cfg.Workload, err, s.Completion)
	}
	return ops
}

// outcomeType is the history type of tw.txn's answer.
func outcomeType(err error) history.Type {
	switch {
	case err == nil:
		return history.Ok
	case workloads.IsDefinite(err):
		return history.Fail
	}
	return history.Info
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestShardedProgressWithMajorities: with one node down, then with one
// node isolated by a partition (every group keeps a majority either way),
// every transaction, single- or cross-group, commits within its deadline.
func TestShardedProgressWithMajorities(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		cfg := ShardedConfig{Seed: seed, TxnDeadline: 5 * time.Second, AbandonAfter: defaultAbandonAfter}
		cfg.defaults()
		w, _, err := newShardWorld(cfg)
		if err != nil {
			t.Fatal(err)
		}
		w.res = &ShardedResult{}
		w.runUntil(func() bool { return false }, 2*time.Second)
		tw := w.newWorker()
		for phase, fault := range []func(){
			func() { w.crash(3) },
			func() {
				w.restart(3)
				w.setGrudge(nemesis.Complete([]string{"n1", "n2", "n3", "n4"}, []string{"n5"}))
			},
		} {
			fault()
			for i := 0; i < 20; i++ {
				ops := nextTxn(t, w)
				var typ history.Type
				var why string
				tw.txn(ops, func(_ []txn.MicroResult, err error) {
					typ = outcomeType(err)
					if err != nil {
						why = err.Error()
					}
				})
				w.runUntil(func() bool { return typ != 0 }, time.Minute)
				if typ != history.Ok {
					t.Fatalf("seed %d phase %d txn %d %v: %v (%s) although every group has a majority", seed, phase, i, ops, typ, why)
				}
			}
		}
		if w.res.Cross == 0 {
			t.Fatalf("seed %d: no cross-group transaction ran", seed)
		}
	}
}
