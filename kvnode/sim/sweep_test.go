package sim

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/nemesis"
)

// sweepConfig is seed s of the random sweep: every fault kind, 1000 ops,
// 5 replicas (3 for every third seed), the register on one hot key for
// every fourth seed (where the old append workload ran: list-append, which
// replaces it, runs on a sharded cluster and has its own sweeps in
// sharded_test.go), a snapshot every 25 entries for odd seeds (which sends
// restarted and lagging replicas through snapshot catch-up).
func sweepConfig(proto string, s int64) Config {
	cfg := Config{Seed: s, Protocol: proto, Replicas: 5, Workload: "register", Keys: 5, Clients: 10, Ops: 1000, Nemesis: nemesis.Sim.All(), SnapshotEvery: 500}
	if s%2 == 1 {
		cfg.SnapshotEvery = 25
	}
	if s%3 == 0 {
		cfg.Replicas = 3
	}
	if s%4 == 0 {
		cfg.Keys = 1
	}
	return cfg
}

// replayCommand is the `chaos sim` command line that reruns cfg.
func replayCommand(cfg Config) string {
	reads := ""
	if cfg.Reads != 0 {
		reads = fmt.Sprintf(" --reads %d", cfg.Reads)
	}
	return fmt.Sprintf("chaos sim --workload %s%s --nemesis %s --replicas %d --replication %s --clients %d --keys %d --ops %d --snapshot-every %d --seed %d --history seed-%d.jsonl",
		cfg.Workload, reads, nemesis.FormatFor(cfg.Nemesis, nemesis.Sim), cfg.Replicas, cfg.Protocol, cfg.Clients, cfg.Keys, cfg.Ops, cfg.SnapshotEvery, cfg.Seed, cfg.Seed)
}

// sweep runs seeds 1..n of cfgFor on every processor. A seed that fails
// or is not valid fails t with its replay command; each valid result goes
// to valid, one at a time.
func sweep(t *testing.T, n int, cfgFor func(seed int64) Config, valid func(*Result)) {
	t.Helper()
	var mu sync.Mutex
	seeds := make(chan int64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for s := range seeds {
				cfg := cfgFor(s)
				res, err := Run(cfg)
				mu.Lock()
				switch {
				case err != nil:
					t.Errorf("seed %d: %v\n  replay: %s", s, err, replayCommand(cfg))
				case res.Valid != checker.Valid:
					t.Errorf("seed %d: %s: %s %v\n  replay: %s", s, res.Valid, res.Check.Summary, res.Problems, replayCommand(cfg))
				default:
					valid(res)
				}
				mu.Unlock()
			}
		})
	}
	for s := int64(1); s <= int64(n); s++ {
		seeds <- s
	}
	close(seeds)
	wg.Wait()
}

// TestRandomSweep runs many seeds mixing every fault. Seed count: -seeds,
// else $CHAOS_SIM_SEEDS, else 200 (20 with -short).
func TestRandomSweep(t *testing.T) {
	n := sweepSeeds(t)
	for _, proto := range protocols(t) {
		t.Run(proto, func(t *testing.T) {
			start := time.Now()
			var ops, ok, info int
			sweep(t, n, func(s int64) Config { return sweepConfig(proto, s) }, func(res *Result) {
				ops, ok, info = ops+res.Ops, ok+res.Ok, info+res.Info
			})
			el := time.Since(start)
			t.Logf("%d seeds, %d ops (%d ok, %d info) in %v: %.0f simulated ops/s", n, ops, ok, info, el.Round(time.Millisecond), float64(ops)/el.Seconds())
		})
	}
}

// BenchmarkSimFaults5 measures simulated client ops per wall-clock second:
// 5 replicas, every fault kind, 1000 ops per seed, history checked.
func BenchmarkSimFaults5(b *testing.B) {
	for _, proto := range Protocols() {
		b.Run(proto, func(b *testing.B) {
			ops := 0
			for i := 0; i < b.N; i++ {
				cfg := sweepConfig(proto, int64(i+1))
				cfg.Replicas, cfg.Workload, cfg.Keys = 5, "register", 5
				res, err := Run(cfg)
				if err != nil {
					b.Fatal(err)
				}
				ops += res.Ops
			}
			b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "simops/s")
		})
	}
}
