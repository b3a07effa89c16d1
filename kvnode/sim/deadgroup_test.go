package sim

import (
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// deadGroupWindow is what the workers of TestShardedDeadGroup did in one
// window of virtual time.
type deadGroupWindow struct {
	live    int // commits of transactions over live groups only
	touched int // transactions that needed the dead group, by outcome below
	failed  int
	unknown int
	held    time.Duration // the workers' time spent in transactions that needed the dead group
}

// TestShardedDeadGroup is a dead group beside live ones: three shard
// groups serve, then group 2 loses two of its three replicas for good.
// Clients keep drawing transactions over every key, so most of them need
// group 2; those cannot commit, and must not hold every client: the
// transactions over groups 1 and 3 alone go on committing at a rate near
// the healthy one. What the clients learn of a silent group they learn in
// client.Router, which the real client shares.
func TestShardedDeadGroup(t *testing.T) {
	const window = 8 * time.Second
	for seed := int64(1); seed <= 2; seed++ {
		// The test draws its transactions itself, as many as its windows take.
		cfg := ShardedConfig{Seed: seed, Groups: 3, Clients: 6, Keys: 30, Ops: 1 << 20, Think: 20 * time.Millisecond, TxnDeadline: 3 * time.Second, AbandonAfter: defaultAbandonAfter}
		cfg.defaults()
		w, admin, err := newShardWorld(cfg)
		if err != nil {
			t.Fatal(err)
		}
		joined := false
		admin.Invoke(shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{3: w.members[3]}}.Encode(), func(o client.Outcome) { joined = o.Result == client.OK })
		ctl := w.clusters[0]
		settled := func() bool {
			if !joined || ctl.Leader() == 0 {
				return false
			}
			latest := ctl.nodes[ctl.Leader()-1].sm.(*shardctl.Controller).Latest()
			for g := 1; g <= 3; g++ {
				c := w.clusters[g]
				if l := c.Leader(); l == 0 || c.nodes[l-1].sm.(*txn.Group).ConfigNum() != latest.Num {
					return false
				}
			}
			return true
		}
		if !w.runUntil(settled, 20*time.Second) {
			t.Fatalf("seed %d: group 3 did not join", seed)
		}
		latest := ctl.nodes[ctl.Leader()-1].sm.(*shardctl.Controller).Latest()
		needsDead := func(ops []txn.MicroOp) bool {
			for _, o := range ops {
				if latest.Shards[shardctl.ShardOf(o.Key)] == 2 {
					return true
				}
			}
			return false
		}
		var workers []*txnWorker
		for i := 0; i < cfg.Clients; i++ {
			workers = append(workers, w.newWorker())
		}
		run := func() deadGroupWindow {
			var got deadGroupWindow
			end, busy := w.now()+int64(window), 0
			var next func(tw *txnWorker)
			next = func(tw *txnWorker) {
				if w.now() >= end {
					busy--
					return
				}
				ops := nextTxn(t, w)
				dead := needsDead(ops)
				t0 := w.now()
				tw.txn(ops, func(_ []txn.MicroResult, err error) {
					typ := outcomeType(err)
					switch {
					case !dead && typ == history.Ok:
						got.live++
					case dead:
						got.touched++
						got.held += time.Duration(w.now() - t0)
						if typ == history.Fail {
							got.failed++
						} else if typ == history.Info {
							got.unknown++
						}
					}
					w.at(time.Duration(w.rng.Int63n(int64(cfg.Think)+1)), func() { next(tw) })
				})
			}
			for _, tw := range workers {
				busy++
				next(tw)
			}
			w.runUntil(func() bool { return busy == 0 }, window+2*cfg.TxnDeadline)
			if w.err != nil {
				t.Fatalf("seed %d: %v", seed, w.err)
			}
			return got
		}
		healthy := run()
		// Crash in a quiet moment: a participant that voted yes for a
		// coordinator that then died keeps its locks until the
		// coordinator is back (two-phase commit blocks there, and no
		// client can help it), which is not what this scenario measures.
		w.runUntil(func() bool { return false }, time.Second)
		c2 := w.clusters[2]
		c2.Crash(1)
		c2.Crash(2)
		dead := run()
		total := time.Duration(cfg.Clients) * window
		t.Logf("seed %d: in %v, %d commits over live groups healthy, %d with group 2 dead; %d transactions needed it (%d failed, %d unknown) and held the %d clients %.0f%% of their time", seed, window, healthy.live, dead.live, dead.touched, dead.failed, dead.unknown, cfg.Clients, 100*dead.held.Seconds()/total.Seconds())
		replay := "replay: go test ./kvnode/sim -run TestShardedDeadGroup -v"
		if 3*dead.held > total {
			t.Fatalf("seed %d: transactions that needed the dead group held the clients %v of %v: they end up blocked on it\n%s", seed, dead.held, total, replay)
		}
		// Live keys stay locked by transactions over the dead group until
		// their coordinator abandons them and its decision reaches the
		// live participants (which a delivery to the dead group must not
		// hold up), so the live groups need not keep their whole healthy
		// rate; they must keep half of it.
		if dead.live*2 < healthy.live {
			t.Fatalf("seed %d: with group 2 dead, %d commits over groups 1 and 3 against %d healthy\n%s", seed, dead.live, healthy.live, replay)
		}
		if dead.touched == 0 {
			t.Fatalf("seed %d: no transaction needed the dead group; the scenario tests nothing", seed)
		}
	}
}
