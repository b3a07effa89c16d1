package sim

import (
	"errors"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// FuzzSim explores seeds and shapes of runs: group size, fault mix,
// snapshot interval and workload come from the fuzzer. Every run must
// complete and be linearizable. Run it with
// go test ./kvnode/sim -run '^$' -fuzz FuzzSim.
func FuzzSim(f *testing.F) {
	f.Add(int64(1), uint8(5), uint16(0xffff), uint8(25), false)
	f.Add(int64(2), uint8(3), uint16(1<<5), uint8(3), true)
	f.Add(int64(3), uint8(1), uint16(1<<1|1<<5), uint8(0), false)
	f.Fuzz(func(t *testing.T, seed int64, replicas uint8, mask uint16, snap uint8, oneKey bool) {
		var kinds []nemesis.Kind
		for i, k := range nemesis.Sim.All() {
			if mask&(1<<i) != 0 {
				kinds = append(kinds, k)
			}
		}
		cfg := Config{Seed: seed, Protocol: "paxos", Replicas: 1 + int(replicas%7), Workload: "register", Keys: 5, Clients: 10, Ops: 300, Nemesis: kinds, SnapshotEvery: 500}
		if snap > 0 {
			cfg.SnapshotEvery = uint64(snap)
		}
		if oneKey {
			cfg.Keys = 1
		}
		for _, p := range Protocols() {
			cfg.Protocol = p
			res, err := Run(cfg)
			if err != nil {
				t.Fatalf("%v\n  replay: %s", err, replayCommand(cfg))
			}
			if res.Valid == checker.Invalid {
				t.Fatalf("%s %v\n  replay: %s", res.Check.Summary, res.Problems, replayCommand(cfg))
			}
		}
	})
}

func TestCoreThatCannotRestartIsASimulationError(t *testing.T) {
	starts := 0
	failing := func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
		starts++
		if d.State != nil || len(d.Entries) > 0 || d.Snapshot != nil {
			return nil, errors.New("corrupt disk")
		}
		return fakeFactory(false)(cfg, sm, d)
	}
	_, err := Run(Config{Seed: 1, Factory: failing, Replicas: 3, Nemesis: []nemesis.Kind{nemesis.Kill}, Ops: 300})
	if err == nil || !strings.Contains(err.Error(), "corrupt disk") {
		t.Fatalf("Run error %v, want the restart failure", err)
	}
	if starts <= 3 {
		t.Fatalf("no restart was attempted (%d starts)", starts)
	}
}
