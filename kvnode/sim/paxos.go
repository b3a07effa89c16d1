package sim

import (
	"github.com/chaoskv/chaos/kvnode/paxos"
	"github.com/chaoskv/chaos/kvnode/replica"
)

func init() {
	Register("paxos", func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
		return paxos.New(cfg, sm, d)
	}, paxos.Codec{})
}
