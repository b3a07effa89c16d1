// Package protocols lists the replication protocols a kvnode server can run,
// by the name a cluster file uses.
package protocols

import (
	"fmt"
	"sort"
	"strings"

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
