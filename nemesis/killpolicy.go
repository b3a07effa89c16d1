package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// KillPolicy bounds how many nodes the kill fault may have down at once.
// A protocol that keeps no durable state (VR as published) survives only
// runs in which a majority stays up; one that persists survives any.
type KillPolicy string

// Kill policies.
const (
	// KillMinority kills a random minority (one node in groups under
	// three), so a majority is always up. It is the default.
	KillMinority KillPolicy = "minority"
	// KillAny kills between one node and all of them.
	KillAny KillPolicy = "any"
	// KillMinorityOrAll kills a random minority, or one time in five
	// every node: the whole-cluster crash (a power cut of the rack) comes
	// up often enough to test recovery from disks alone. The simulator
	// uses it.
	KillMinorityOrAll KillPolicy = "minority-or-all"
)

// ParseKillPolicy parses a --kill-policy value; "" means KillMinority.
func ParseKillPolicy(s string) (KillPolicy, error) {
	switch KillPolicy(s) {
	case "", KillMinority:
		return KillMinority, nil
	case KillAny, KillMinorityOrAll:
		return KillPolicy(s), nil
	}
	return "", fmt.Errorf("nemesis: unknown kill policy %q (valid: minority, any, minority-or-all)", s)
}

// KillReport says how many nodes were down at once during a run, and
// whether that was more than a minority of them, the most a protocol
// without durable state tolerates without losing acknowledged writes.
type KillReport struct {
	Policy KillPolicy `json:"policy"`
	Nodes  int        `json:"nodes"`
	// PeakDown is the most nodes killed and not yet restarted at once.
	PeakDown int `json:"peak_down"`
	// BeyondMinority is PeakDown > (Nodes-1)/2.
	BeyondMinority bool `json:"beyond_minority"`
}

// Kills reports the kills so far.
func (n *Nemesis) Kills() KillReport {
	n.mu.Lock()
	defer n.mu.Unlock()
	nodes := len(n.t.Nodes())
	policy := n.cfg.KillPolicy
	if policy == "" {
		policy = KillMinority
	}
	return KillReport{Policy: policy, Nodes: nodes, PeakDown: n.peakDown, BeyondMinority: n.peakDown > (nodes-1)/2}
}

// anyVictims picks between one node and all of them, in the nodes' order.
func anyVictims(nodes []string, rng *rand.Rand) []string {
	picked := shuffled(nodes, rng)[:1+rng.IntN(len(nodes))]
	var out []string
	for _, node := range nodes {
		if slices.Contains(picked, node) {
			out = append(out, node)
		}
	}
	return out
}
