package sim

import (
	"fmt"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// readHeavy is a register run where eight ops in ten are reads, which
// leaders serve by read index, under the nemeses kinds.
func readHeavy(proto string, seed int64, kinds ...nemesis.Kind) Config {
	return Config{Seed: seed, Protocol: proto, Replicas: 5, Reads: 8, Nemesis: kinds, Ops: 600, Clients: 10, Keys: 3, SnapshotEvery: 50}
}

// TestReadIndexLinearizable: reads served by read index, without a log
// entry, stay linearizable while partitions, pauses, crashes (leader
// changes) and clock faults hit the group, with both cores; and they are
// really served that way.
func TestReadIndexLinearizable(t *testing.T) {
	seeds := int64(4)
	if testing.Short() {
		seeds = 1
	}
	for _, kinds := range [][]nemesis.Kind{
		{nemesis.Partition},
		{nemesis.PartitionLeader},
		{nemesis.PartitionMajoritiesRing},
		{nemesis.Pause},
		{nemesis.Kill},
		{nemesis.Clock},
		{nemesis.ClockBump, nemesis.ClockStrobe},
		{nemesis.PartitionLeader, nemesis.Pause, nemesis.Clock, nemesis.Delay},
	} {
		t.Run(fmt.Sprint(kinds), func(t *testing.T) {
			forEachProtocol(t, 1, func(t *testing.T, proto string, seed int64) {
				var ok, info, reads int64
				for s := seed; s < seed+seeds; s++ {
					cfg := readHeavy(proto, s, kinds...)
					res, err := Run(cfg)
					replay := replayCommand(cfg)
					switch {
					case err != nil:
						t.Fatalf("seed %d: %v\n  replay: %s", s, err, replay)
					case res.Valid != checker.Valid:
						t.Fatalf("seed %d: %s: %s %v\n  replay: %s", s, res.Valid, res.Check.Summary, res.Problems, replay)
					case res.ReadIndexReads < int64(res.Ok)/4:
						t.Fatalf("seed %d: only %d of %d ok ops were reads confirmed by read index\n  replay: %s", s, res.ReadIndexReads, res.Ok, replay)
					}
					ok, info, reads = ok+int64(res.Ok), info+int64(res.Info), reads+res.ReadIndexReads
				}
				t.Logf("%d seeds: %d ok (%d reads by read index), %d info", seeds, ok, reads, info)
			})
		})
	}
}

// noRound is a core that confirms a read at its commit index as soon as
// it believes it leads, skipping the heartbeat round that proves no newer
// leader exists: a deposed leader that has not heard of its successor
// serves stale reads.
type noRound struct {
	inspected
	pending []replica.ReadState
}

func (c *noRound) ReadIndex(id uint64) error {
	st := c.Status()
	if st.Leader != st.ID {
		return &replica.NotLeaderError{Leader: st.Leader}
	}
	c.pending = append(c.pending, replica.ReadState{ID: id, Index: st.Commit})
	return nil
}

func (c *noRound) HasReady() bool {
	return c.Replicator.HasReady() || (len(c.pending) > 0 && c.pending[0].Index <= c.Status().Applied)
}

func (c *noRound) Ready() replica.Ready {
	var rd replica.Ready
	if c.Replicator.HasReady() {
		rd = c.Replicator.Ready()
	}
	applied := c.Status().Applied
	k := 0
	for k < len(c.pending) && c.pending[k].Index <= applied {
		k++
	}
	rd.Reads = append(rd.Reads, c.pending[:k]...)
	c.pending = c.pending[k:]
	return rd
}

// TestReadsWithoutHeartbeatRoundAreCaught: the simulator finds the stale
// reads of a core that skips the read round, within a few seeds of
// partitions and pauses.
func TestReadsWithoutHeartbeatRoundAreCaught(t *testing.T) {
	for _, proto := range protocols(t) {
		t.Run(proto, func(t *testing.T) {
			base, err := Lookup(proto)
			if err != nil {
				t.Fatal(err)
			}
			broken := func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
				r, err := base(cfg, sm, d)
				if err != nil {
					return nil, err
				}
				return &noRound{inspected: inspected{r, r.(replica.Inspector)}}, nil
			}
			const budget = 20
			for s := int64(1); s <= budget; s++ {
				cfg := readHeavy(proto, s, nemesis.PartitionLeader, nemesis.Pause)
				cfg.Factory = broken
				res, err := Run(cfg)
				if err != nil {
					t.Fatalf("seed %d: %v", s, err)
				}
				if res.Valid == checker.Invalid {
					t.Logf("seed %d: %s %v", s, res.Check.Summary, res.Problems)
					return
				}
			}
			t.Fatalf("%d seeds of a core that confirms reads without a heartbeat round all looked linearizable", budget)
		})
	}
}
