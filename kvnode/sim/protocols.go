package sim

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Factory builds one incarnation of a replication core: at start, and again
// after every crash from what the node's disk holds.
type Factory func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error)

type protocol struct {
	factory Factory
	codec   replica.Codec
}

var (
	registryMu sync.RWMutex
	registry   = map[string]protocol{}
)

// Register makes a core and its wire codec available to the simulator
// under name (as used by `chaos sim --replication`). It panics if name is
// taken, as that is a programming error caught at init.
func Register(name string, f Factory, codec replica.Codec) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("sim: protocol " + name + " registered twice")
	}
	registry[name] = protocol{f, codec}
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, error) {
	p, err := lookup(name)
	return p.factory, err
}

// LookupCodec returns the wire codec registered under name.
func LookupCodec(name string) (replica.Codec, error) {
	p, err := lookup(name)
	return p.codec, err
}

func lookup(name string) (protocol, error) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	p, ok := registry[name]
	if !ok {
		return protocol{}, fmt.Errorf("unknown replication protocol %q (have: %s)", name, strings.Join(protocolsLocked(), ", "))
	}
	return p, nil
}

// Protocols returns the registered protocol names, sorted.
func Protocols() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return protocolsLocked()
}

func protocolsLocked() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
