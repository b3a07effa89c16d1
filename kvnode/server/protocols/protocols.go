// Package protocols lists the replication protocols a kvnode server can run,
// by the name a cluster file uses.
package protocols

import (
	"fmt"
	"sort"
	"strings"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/paxos"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/vr"
)

var all = map[string]server.Protocol{
	"paxos": {
		Name: "paxos",
		New: func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
			return paxos.New(cfg, sm, d)
		},
		Codec: paxos.Codec{},
	},
	"vr": {
		Name: "vr",
		New: func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
			return vr.New(cfg, sm, d)
		},
		Codec: vr.Codec{},
	},
}

// Lookup returns the protocol called name.
func Lookup(name string) (server.Protocol, error) {
	p, ok := all[name]
	if !ok {
		return server.Protocol{}, fmt.Errorf("unknown replication protocol %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return p, nil
}

// Names lists the known protocols.
func Names() []string {
	var out []string
	for n := range all {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Reconfigurable reports whether the protocol called name can change a
// group's membership while it runs (its core is a replica.Reconfigurer),
// by asking a core of one replica: the core's own type is the one
// authority, so a protocol that gains membership changes is accepted here
// without a list to update.
func Reconfigurable(name string) (bool, error) {
	p, err := Lookup(name)
	if err != nil {
		return false, err
	}
	core, err := p.New(replica.Config{ID: 1, Peers: []replica.NodeID{1}, ElectionTicks: 10, HeartbeatTicks: 1, MaxBatch: 1, MaxInflight: 1},
		kv.NewStore(), &replica.Durable{})
	if err != nil {
		return false, fmt.Errorf("%s: start a core to ask it: %w", name, err)
	}
	_, ok := core.(replica.Reconfigurer)
	return ok, nil
}
