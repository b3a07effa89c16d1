package sim

import (
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/vr"
)

func init() {
	Register("vr", func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
		return vr.New(cfg, sm, d)
	}, vr.Codec{})
}
