package sim

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// placement is what the nemesis acts on: replica groups (Clusters) on one
// virtual clock, whose replicas live on world nodes n1..nN. A fault to a
// world node hits every replica it hosts. A single-group run is one
// cluster whose node i is world node i.
type placement struct {
	clusters []*Cluster
	members  [][]replica.NodeID // members[g][i]: the world node of cluster g's node i+1
	names    []string           // the world nodes' names, the nemesis's nodes
	grudge   nemesis.Grudge     // the partition in force; nil when healed
}

// sharded reports whether workload runs on the sharded world: the
// transactional workloads do, the register runs on one group.
func sharded(workload string) bool { return workloads.IsTransactional(workload) }

func nodeName(id replica.NodeID) string { return fmt.Sprintf("n%d", id) }

// nodeID parses a world node's name.
func nodeID(name string) replica.NodeID {
	n, err := strconv.Atoi(name[1:])
	if err != nil || name[0] != 'n' {
		panic(fmt.Sprintf("sim: bad node name %q", name)) // names are nodeName's
	}
	return replica.NodeID(n)
}

func newPlacement(clusters []*Cluster, members [][]replica.NodeID, nodes int) placement {
	p := placement{clusters: clusters, members: members}
	for n := 1; n <= nodes; n++ {
		p.names = append(p.names, nodeName(replica.NodeID(n)))
	}
	return p
}

// local returns cluster g's node id of world node n, or 0.
func (p *placement) local(g int, n replica.NodeID) replica.NodeID {
	if i := slices.Index(p.members[g], n); i >= 0 {
		return replica.NodeID(i + 1)
	}
	return 0
}

// each calls fn for every replica world node n hosts.
func (p *placement) each(n replica.NodeID, fn func(c *Cluster, id replica.NodeID)) {
	for g, c := range p.clusters {
		if l := p.local(g, n); l != 0 {
			fn(c, l)
		}
	}
}

// crash is a power loss of world node n: unsynced writes may be lost.
func (p *placement) crash(n replica.NodeID) { p.each(n, (*Cluster).Crash) }

func (p *placement) restart(n replica.NodeID) {
	p.each(n, func(c *Cluster, id replica.NodeID) {
		if err := c.Restart(id); err != nil {
			c.fail(err)
		}
	})
}

// setGrudge replaces the partition; nil heals it.
func (p *placement) setGrudge(g nemesis.Grudge) {
	p.grudge = g
	for gi, c := range p.clusters {
		cuts := map[replica.NodeID][]replica.NodeID{}
		for to, froms := range g {
			a := p.local(gi, nodeID(to))
			if a == 0 {
				continue
			}
			for _, from := range froms {
				if b := p.local(gi, nodeID(from)); b != 0 {
					cuts[a] = append(cuts[a], b)
				}
			}
		}
		c.SetGrudge(cuts)
	}
}

func (p *placement) heal() { p.setGrudge(nil) }

// hears reports whether world nodes a and b can talk, both ways, under the
// current partition.
func (p *placement) hears(a, b replica.NodeID) bool {
	return !p.grudge.Drops(nodeName(a), nodeName(b)) && !p.grudge.Drops(nodeName(b), nodeName(a))
}

// leaders returns the world nodes that lead a group, in node order.
func (p *placement) leaders() []string {
	var out []string
	for g, c := range p.clusters {
		if l := c.Leader(); l != 0 {
			if n := nodeName(p.members[g][l-1]); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return inNodeOrder(p.names, out)
}

func inNodeOrder(nodes, picked []string) []string {
	var out []string
	for _, n := range nodes {
		if slices.Contains(picked, n) {
			out = append(out, n)
		}
	}
	return out
}

// setNet changes every cluster's network.
func (p *placement) setNet(change func(*Network)) {
	for _, c := range p.clusters {
		n := c.Net()
		change(&n)
		if err := c.SetNet(n); err != nil {
			c.fail(err)
		}
	}
}
