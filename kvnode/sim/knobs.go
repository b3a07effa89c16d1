package sim

import (
	"cmp"
	"math/rand/v2"
	"time"

	knode "github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// defaultAbandonAfter is the coordinator's wait for votes in the seeds
// whose knobs keep their defaults.
const defaultAbandonAfter = 500 * time.Millisecond

// shardPump returns the shard pump of a group of cfg's world. Its timers
// are knobs drawn from the seed, as FoundationDB's BUGGIFY draws them:
// half the seeds run the defaults, the other half a short abandon timer
// (80-300ms, about the time a prepare round takes, so abandons race with
// the last votes and land in the log just after a decision) and an
// acknowledgement delay from 1ms up to just below the retry interval (so
// decisions are delivered again while their acknowledgements wait). Every
// one is a timing the real runtime may meet under load; a fixed timer
// would leave those interleavings to luck. An AbandonAfter set in cfg is
// kept: tests of availability set it, since a coordinator that abandons
// before a participant's failover is over aborts what a patient one
// commits.
func shardPump(cfg ShardedConfig, ctl replica.GroupID) knode.ShardPump {
	p := knode.ShardPump{Controller: ctl, AbandonAfter: cfg.AbandonAfter}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6b6e6f6273))
	if rng.IntN(2) == 0 {
		if p.AbandonAfter == 0 {
			p.AbandonAfter = defaultAbandonAfter
		}
		return p
	}
	if p.AbandonAfter == 0 {
		p.AbandonAfter = 80*time.Millisecond + time.Duration(rng.Int64N(int64(220*time.Millisecond)))
	}
	p.RetryAfter = 50 * time.Millisecond
	p.AckDelay = time.Millisecond + time.Duration(rng.Int64N(int64(45*time.Millisecond)))
	return p
}

// calm returns every group's runtime to the default abandon timer, or to
// cfg's AbandonAfter, once the faults are over, and keeps it there for
// runtimes started later: what follows (the final reads) checks that the
// healed cluster serves every key, which a coordinator abandoning before a
// restarted group has elected its leader would deny for a reason that is
// the knob's, not the system's.
func (w *world) calm() {
	w.calmed = true
	for g := 1; g <= w.cfg.Groups; g++ {
		for _, r := range w.clusters[g].runtime.(*shardRuntimes).reps {
			r.sg.Runtime.Pump.AbandonAfter = w.calmAbandon()
		}
	}
}

// calmAbandon is the abandon timer once the faults are over.
func (w *world) calmAbandon() time.Duration {
	return cmp.Or(w.cfg.AbandonAfter, defaultAbandonAfter)
}

// pump is the shard pump for a replica's runtime as it starts: the
// seed's knobs, calmed once the faults are over.
func (w *world) pump() knode.ShardPump {
	p := shardPump(w.cfg, w.ctl)
	if w.calmed {
		p.AbandonAfter = w.calmAbandon()
	}
	return p
}

// snapshotEvery is how many entries a shard group's replicas apply between
// snapshots, a knob drawn from the seed: half the seeds 200, the other
// half 30-100, so that more restarts and lagging replicas resume from a
// snapshot (and more snapshots are checked for what they must keep)
// rather than from the log.
func snapshotEvery(seed int64) uint64 {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x736e6170))
	if rng.IntN(2) == 0 {
		return 200
	}
	return 30 + rng.Uint64N(71)
}
