package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
)

// Grudge says, for each node, the nodes whose packets it drops. A node
// absent from the map drops nothing. Partitions are expressed as grudges so
// that shapes other than disjoint components (a ring of majorities, a
// bridge) need no special casing in the backend.
type Grudge map[string][]string

// Validate checks that every node named in g is one of nodes and that no
// node holds a grudge against itself.
func (g Grudge) Validate(nodes []string) error {
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n] = true
	}
	for n, drops := range g {
		if !known[n] {
			return fmt.Errorf("grudge names unknown node %q", n)
		}
		for _, d := range drops {
			if !known[d] {
				return fmt.Errorf("grudge of %q names unknown node %q", n, d)
			}
			if d == n {
				return fmt.Errorf("grudge of %q names the node itself", n)
			}
		}
	}
	return nil
}

// Drops reports whether node to drops packets from node from.
func (g Grudge) Drops(to, from string) bool { return slices.Contains(g[to], from) }

// Hears returns the nodes (itself included) whose packets node receives.
func (g Grudge) Hears(node string, nodes []string) []string {
	var out []string
	for _, n := range nodes {
		if !g.Drops(node, n) {
			out = append(out, n)
		}
	}
	return out
}

// Value renders g as a history value: node -> sorted list of dropped nodes,
// nodes with empty grudges left out.
func (g Grudge) Value() map[string]any {
	out := make(map[string]any, len(g))
	for n, drops := range g {
		if len(drops) == 0 {
			continue
		}
		s := slices.Clone(drops)
		sort.Strings(s)
		l := make([]any, len(s))
		for i, d := range s {
			l[i] = d
		}
		out[n] = l
	}
	return out
}

// Complete returns the grudge of a partition into disjoint components:
// every node drops every node outside its own component. Nodes in no
// component are cut off from everyone listed.
func Complete(components ...[]string) Grudge {
	comp := make(map[string]int)
	var all []string
	for i, c := range components {
		for _, n := range c {
			comp[n] = i
			all = append(all, n)
		}
	}
	g := make(Grudge, len(all))
	for _, n := range all {
		for _, m := range all {
			if comp[m] != comp[n] {
				g[n] = append(g[n], m)
			}
		}
	}
	return g
}

// shuffled returns a shuffled copy of nodes.
func shuffled(nodes []string, rng *rand.Rand) []string {
	s := slices.Clone(nodes)
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// majority is the size of the smallest majority of n nodes.
func majority(n int) int { return n/2 + 1 }

// Halves splits nodes at random into two halves, the first of n/2 nodes
// (the minority when n is odd) and the second of the rest.
func Halves(nodes []string, rng *rand.Rand) ([][]string, error) {
	if len(nodes) < 2 {
		return nil, fmt.Errorf("partition needs at least 2 nodes, have %d", len(nodes))
	}
	s := shuffled(nodes, rng)
	return [][]string{s[:len(s)/2], s[len(s)/2:]}, nil
}

// Isolate returns components in which each of the given nodes stands alone
// and all other nodes stay together.
func Isolate(nodes []string, isolated []string) ([][]string, error) {
	if len(isolated) == 0 {
		return nil, fmt.Errorf("isolate: no node to isolate")
	}
	alone := make(map[string]bool)
	var comps [][]string
	for _, n := range isolated {
		if !slices.Contains(nodes, n) {
			return nil, fmt.Errorf("isolate: unknown node %q (nodes: %v)", n, nodes)
		}
		if !alone[n] {
			alone[n] = true
			comps = append(comps, []string{n})
		}
	}
	var rest []string
	for _, n := range nodes {
		if !alone[n] {
			rest = append(rest, n)
		}
	}
	if len(rest) > 0 {
		comps = append(comps, rest)
	}
	if len(comps) < 2 {
		return nil, fmt.Errorf("isolate: isolating %v from %v cuts nothing", isolated, nodes)
	}
	return comps, nil
}

// One isolates a single random node.
func One(nodes []string, rng *rand.Rand) ([][]string, error) {
	if len(nodes) < 2 {
		return nil, fmt.Errorf("partition-one needs at least 2 nodes, have %d", len(nodes))
	}
	return Isolate(nodes, []string{nodes[rng.IntN(len(nodes))]})
}

// MajoritiesRing arranges nodes in a random ring and lets every node hear
// exactly the majority-sized window of the ring centred on itself. Every
// node thus hears a majority, and no two nodes hear the same majority, so
// each node may believe it leads a quorum. For an even majority size the
// grudge is not symmetric, as in Jepsen.
func MajoritiesRing(nodes []string, rng *rand.Rand) (Grudge, error) {
	n := len(nodes)
	if n < 3 {
		return nil, fmt.Errorf("partition-majorities-ring needs at least 3 nodes, have %d", n)
	}
	s := shuffled(nodes, rng)
	m := majority(n)
	g := make(Grudge, n)
	for i := range n {
		view := make(map[string]bool, m)
		for j := range m {
			view[s[(i+j)%n]] = true
		}
		center := s[(i+m/2)%n]
		for _, o := range s {
			if !view[o] {
				g[center] = append(g[center], o)
			}
		}
	}
	return g, nil
}

// Bridge splits nodes at random into two sides that cannot hear each other
// and one bridge node that hears, and is heard by, both sides. It returns
// the grudge and the bridge node.
func Bridge(nodes []string, rng *rand.Rand) (Grudge, string, error) {
	n := len(nodes)
	if n < 3 {
		return nil, "", fmt.Errorf("partition-bridge needs at least 3 nodes, have %d", n)
	}
	s := shuffled(nodes, rng)
	a, bridge, b := s[:n/2], s[n/2], s[n/2+1:]
	return Complete(a, b), bridge, nil
}
