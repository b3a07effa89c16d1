package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// shardedCluster: three nodes, each hosting a replica of the controller
// (group 1) and of shard groups 2 and 3.
func shardedCluster(t testing.TB) (*config.Cluster, *client.Sharded) {
	c, sc, _, _ := shardedClusterNodes(t)
	return c, sc
}

// shardedClusterNodes is shardedCluster that also returns the running
// nodes and their data directories.
func shardedClusterNodes(t testing.TB) (*config.Cluster, *client.Sharded, []*running, []string) {
	c := testCluster(t, 3, false)
	for g := replica.GroupID(2); g <= 3; g++ {
		c.Groups = append(c.Groups, config.Group{ID: g, Members: []replica.NodeID{1, 2, 3}})
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	dirs := dataDirs(t, 3)
	rs := startCluster(t, c, dirs, paxosProtocol(t), shardedOpts)
	sc, err := client.NewSharded(client.ShardedConfig{Cluster: c, Controller: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sc.Admin(ctx, shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{2: {1, 2, 3}, 3: {1, 2, 3}}}); err != nil {
		t.Fatalf("join: %v", err)
	}
	return c, sc, rs, dirs
}

func shardedOpts(o *server.Options) { o.ShardController = 1 }

// TestShardedTxnLoopback runs list-append transactions from several
// sessions against real nodes while shards move between the groups and
// one node is stopped and restarted, and checks the history with Elle
// (strict serializability).
func TestShardedTxnLoopback(t *testing.T) {
	c, admin, rs, dirs := shardedClusterNodes(t)
	var mu sync.Mutex
	var hist []history.Op
	start := time.Now()
	record := func(op history.Op) {
		mu.Lock()
		defer mu.Unlock()
		op.Index, op.Time = int64(len(hist)), int64(time.Since(start))
		hist = append(hist, op)
	}
	var next int64
	var nmu sync.Mutex
	val := func() int64 { nmu.Lock(); defer nmu.Unlock(); next++; return next }
	dur := 2 * time.Second
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	var wg sync.WaitGroup
	var committed, cross int64
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(w)))
			sc, err := client.NewSharded(client.ShardedConfig{Cluster: c, Controller: 1})
			if err != nil {
				t.Error(err)
				return
			}
			defer sc.Close()
			proc := history.Process(w)
			for time.Since(start) < dur {
				var ops []txn.MicroOp
				var inv []any
				for i := 0; i < 1+rng.Intn(3); i++ {
					k := int64(rng.Intn(10))
					if rng.Intn(2) == 0 {
						v := val()
						ops = append(ops, txn.MicroOp{F: txn.Append, Key: "k" + strconv.FormatInt(k, 10), Value: strconv.FormatInt(v, 10)})
						inv = append(inv, []any{"append", k, v})
					} else {
						ops = append(ops, txn.MicroOp{F: txn.Read, Key: "k" + strconv.FormatInt(k, 10)})
						inv = append(inv, []any{"r", k, nil})
					}
				}
				record(history.Op{Type: history.Invoke, Process: proc, F: "txn", Value: inv})
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				res, err := sc.Txn(ctx, ops)
				cancel()
				switch {
				case err == nil:
					out := make([]any, len(res))
					groups := map[replica.GroupID]bool{}
					cfg := sc.Config()
					for i, r := range res {
						k, _ := strconv.ParseInt(r.Key[1:], 10, 64)
						groups[cfg.Shards[shardctl.ShardOf(r.Key)]] = true
						if r.F == txn.Read {
							l := []any{}
							for _, e := range r.List {
								x, _ := strconv.ParseInt(e, 10, 64)
								l = append(l, x)
							}
							out[i] = []any{"r", k, l}
						} else {
							x, _ := strconv.ParseInt(r.Value, 10, 64)
							out[i] = []any{"append", k, x}
						}
					}
					mu.Lock()
					committed++
					if len(groups) > 1 {
						cross++
					}
					mu.Unlock()
					record(history.Op{Type: history.Ok, Process: proc, F: "txn", Value: out})
				case errors.Is(err, client.ErrFailed):
					record(history.Op{Type: history.Fail, Process: proc, F: "txn", Value: inv, Error: err.Error()})
				default:
					record(history.Op{Type: history.Info, Process: proc, F: "txn", Value: inv, Error: err.Error()})
					proc += 100
				}
			}
		})
	}
	// Move shards while the clients run; stop node 3 for the middle
	// third of the run (every group keeps a majority).
	stopped := false
	for i := 0; time.Since(start) < dur; i++ {
		switch el := time.Since(start); {
		case !stopped && el > dur/3 && el < 2*dur/3:
			rs[2].stop(t)
			rs[2].done <- nil // the cleanup waits on it too
			stopped = true
			t.Logf("node 3 stopped at %v", time.Since(start))
		case stopped && el >= 2*dur/3:
			r := startNode(t, c, 3, dirs[2], paxosProtocol(t), shardedOpts)
			t.Cleanup(func() { r.cancel(); <-r.done })
			stopped = false
			t.Logf("node 3 restarted at %v", time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := admin.Admin(ctx, shardctl.Op{Kind: shardctl.Move, Shard: i % shardctl.NShards, GID: replica.GroupID(2 + i%2)})
		cancel()
		if err != nil {
			t.Logf("move: %v", err)
		}
		time.Sleep(dur / 8)
	}
	wg.Wait()
	res, err := elle.Check("list-append", hist, elle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[history.Type]int{}
	for _, op := range hist {
		counts[op.Type]++
	}
	t.Logf("%d transactions committed (%d cross-group), %d failed, %d unknown in %v; elle: %s", committed, cross, counts[history.Fail], counts[history.Info], time.Since(start), res.Summary)
	if res.Valid != checker.Valid {
		t.Fatalf("history not strict-serializable: %+v", res)
	}
	if committed == 0 || cross == 0 {
		t.Fatal(fmt.Sprintf("nothing committed across groups (%d committed)", committed))
	}
}

// keyOn returns a key whose shard group g owns under cfg.
func keyOn(cfg shardctl.Config, g replica.GroupID, skip int) string {
	for i := 0; ; i++ {
		k := "b" + strconv.Itoa(i)
		if cfg.Shards[shardctl.ShardOf(k)] == g {
			if skip == 0 {
				return k
			}
			skip--
		}
	}
}

func benchShardedTxn(b *testing.B, cross bool, workers int) {
	benchShardedTxnKeys(b, cross, workers, false)
}

// benchShardedTxnKeys runs the benchmark; with contended, every session
// writes the same two keys.
func benchShardedTxnKeys(b *testing.B, cross bool, workers int, contended bool) {
	c, admin := shardedCluster(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	cfg, err := admin.Admin(ctx, shardctl.Op{Kind: shardctl.Query, Num: -1})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	aborted := 0
	var aborts uint64
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/workers + 1
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			sc, err := client.NewSharded(client.ShardedConfig{Cluster: c, Controller: 1})
			if err != nil {
				b.Error(err)
				return
			}
			defer func() {
				mu.Lock()
				aborts += sc.Aborts()
				mu.Unlock()
				sc.Close()
			}()
			me := w
			if contended {
				me = 0
			}
			k1, k2 := keyOn(cfg, 2, me), keyOn(cfg, 2, me+workers)
			if cross {
				k2 = keyOn(cfg, 3, me)
			}
			for i := 0; i < per; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := sc.Txn(ctx, []txn.MicroOp{{F: txn.Write, Key: k1, Value: "x"}, {F: txn.Read, Key: k2}, {F: txn.Write, Key: k2, Value: "y"}})
				cancel()
				if err != nil {
					mu.Lock()
					aborted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(per*workers)/b.Elapsed().Seconds(), "txn/s")
	b.ReportMetric(float64(aborts)/b.Elapsed().Seconds(), "aborts/s")
	if aborted > 0 {
		b.Logf("%d transactions failed", aborted)
	}
}

// BenchmarkShardedTxnSingleGroup: 8 sessions, each writing its own keys
// of one group, on a 3-node loopback cluster with durable storage.
func BenchmarkShardedTxnSingleGroup(b *testing.B) { benchShardedTxn(b, false, 8) }

// BenchmarkShardedTxnCrossGroup: the same over keys of two groups (two-
// phase commit through both groups' logs).
func BenchmarkShardedTxnCrossGroup(b *testing.B) { benchShardedTxn(b, true, 8) }

// BenchmarkShardedTxnContended: 8 sessions all writing the same two keys
// of two groups; conflicting prepares abort (no-wait) and are retried.
func BenchmarkShardedTxnContended(b *testing.B) { benchShardedTxnKeys(b, true, 8, true) }
