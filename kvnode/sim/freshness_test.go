package sim

import (
	"strings"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// unconfirmedReads is a deliberately broken core: a replica that believes
// it leads serves a read at once from what it applied, without the round
// that confirms no newer leader exists (a deposed leader's stale read).
type unconfirmedReads struct {
	replica.Replicator
	ready []replica.ReadState
}

func (u *unconfirmedReads) ReadIndex(id uint64) error {
	st := u.Status()
	if st.Leader != st.ID {
		return &replica.NotLeaderError{Leader: st.Leader}
	}
	u.ready = append(u.ready, replica.ReadState{ID: id, Index: st.Applied})
	return nil
}

func (u *unconfirmedReads) HasReady() bool { return len(u.ready) > 0 || u.Replicator.HasReady() }

func (u *unconfirmedReads) Ready() replica.Ready {
	rd := u.Replicator.Ready()
	rd.Reads = append(rd.Reads, u.ready...)
	u.ready = nil
	return rd
}

// TestFreshnessOracle: the freshness oracle names the first stale answer
// of a core whose leaders serve reads unconfirmed, within a few seeds of
// partition-leader, and stays silent on the real cores under the same
// schedules.
func TestFreshnessOracle(t *testing.T) {
	const budget = 12
	for _, proto := range protocols(t) {
		t.Run(proto, func(t *testing.T) {
			real, err := Lookup(proto)
			if err != nil {
				t.Fatal(err)
			}
			broken := func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
				r, err := real(cfg, sm, d)
				if err != nil {
					return nil, err
				}
				return &unconfirmedReads{Replicator: r}, nil
			}
			run := func(s int64, f Factory) (*Result, Config) {
				cfg := Config{Seed: s, Protocol: proto, Factory: f, Replicas: 5, Workload: "register", Keys: 5, Clients: 10,
					Nemesis: []nemesis.Kind{nemesis.PartitionLeader}, Ops: 400, SnapshotEvery: 500}
				res, err := Run(cfg)
				if err != nil {
					t.Fatalf("seed %d: %v\n  replay: %s", s, err, replayCommand(cfg))
				}
				return res, cfg
			}
			for s := int64(1); s <= budget; s++ {
				res, _ := run(s, broken)
				if res.Valid != checker.Invalid {
					continue
				}
				if !strings.Contains(strings.Join(res.Problems, "\n"), "below index") {
					t.Fatalf("seed %d: the broken core failed, but not on the freshness oracle: %s %v", s, res.Check.Summary, res.Problems)
				}
				t.Logf("seed %d: %v", s, res.Problems)
				if res, cfg := run(s, nil); res.Valid != checker.Valid {
					t.Fatalf("seed %d: the real core is %v: %s %v\n  replay: %s", s, res.Valid, res.Check.Summary, res.Problems, replayCommand(cfg))
				}
				return
			}
			t.Fatalf("the freshness oracle missed unconfirmed reads in %d seeds", budget)
		})
	}
}
