package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// GroupMembers is one replica group's membership as the nemesis sees it.
type GroupMembers struct {
	// Group is the replica group's id.
	Group uint32
	// Members is the configuration the group's leader reports, ascending.
	Members []string
	// Hosts are every node that runs a replica of the group, members or
	// spares waiting to be added, ascending.
	Hosts []string
	// InForce is false while a change is in progress or no leader is
	// known: then nothing may be proposed.
	InForce bool
}

// Memberer is implemented by targets whose replica groups can change
// membership.
type Memberer interface {
	// Memberships returns every replica group's membership.
	Memberships(ctx context.Context) ([]GroupMembers, error)
	// ChangeMembers proposes members as group's next configuration and
	// returns once it is in force.
	ChangeMembers(ctx context.Context, group uint32, members []string) error
}

// MemberChange is one decided membership change.
type MemberChange struct {
	Group    uint32
	From, To []string
}

// Op names the change: "add n4", "remove n2" or "replace n2 by n4".
func (c MemberChange) Op() string {
	var gone, added []string
	for _, m := range c.From {
		if !slices.Contains(c.To, m) {
			gone = append(gone, m)
		}
	}
	for _, m := range c.To {
		if !slices.Contains(c.From, m) {
			added = append(added, m)
		}
	}
	switch {
	case len(gone) == 0:
		return "add " + strings.Join(added, " ")
	case len(added) == 0:
		return "remove " + strings.Join(gone, " ")
	}
	return "replace " + strings.Join(gone, " ") + " by " + strings.Join(added, " ")
}

// Value is the change as the history records it: the configuration
// before and after, which the report draws on its timeline.
func (c MemberChange) Value() map[string]any {
	return map[string]any{"op": c.Op(), "group": int64(c.Group), "from": anyList(c.From), "to": anyList(c.To)}
}

// MinMembers is the smallest configuration a removal may leave: three
// replicas (one may fail), or every host when a group has fewer.
func MinMembers(hosts int) int { return min(3, hosts) }

// ErrNoMemberChange says that no group has a change the policy allows
// right now (a change in progress, no leader, or too few healthy nodes);
// the nemesis records it and tries again at its next step.
var ErrNoMemberChange = errors.New("no membership change is possible now")

// PlanMembership decides one membership change from seed, as a pure
// function: among the groups whose configuration is in force, the change
// of one member (an add of a host outside the configuration, a remove
// that leaves at least MinMembers, or a replace of one by the other),
// chosen uniformly among the changes the policy allows. Unless killAny,
// a change must keep a majority of both the old and the new
// configuration healthy, and only healthy nodes are added, so that the
// group can commit the change and serve after it; with killAny any change
// goes, as a kill may take any number of nodes down.
func PlanMembership(seed uint64, groups []GroupMembers, healthy func(node string) bool, killAny bool) (MemberChange, error) {
	rng := rand.New(rand.NewPCG(seed, 0x6d656d62657273))
	majority := func(ms []string) bool {
		k := 0
		for _, m := range ms {
			if healthy(m) {
				k++
			}
		}
		return 2*k > len(ms)
	}
	var tries []MemberChange
	var why []string
	for _, g := range groups {
		if !g.InForce || len(g.Members) == 0 {
			why = append(why, fmt.Sprintf("group %d: a change in progress or no leader", g.Group))
			continue
		}
		cur := slices.Sorted(slices.Values(g.Members))
		var out []string
		for _, h := range g.Hosts {
			if !slices.Contains(cur, h) && (killAny || healthy(h)) {
				out = append(out, h)
			}
		}
		var next [][]string
		for _, o := range out {
			next = append(next, append(slices.Clone(cur), o))
		}
		for _, gone := range cur {
			rest := slices.DeleteFunc(slices.Clone(cur), func(m string) bool { return m == gone })
			for _, o := range out {
				next = append(next, append(slices.Clone(rest), o))
			}
			if len(rest) >= MinMembers(len(g.Hosts)) {
				next = append(next, rest)
			}
		}
		n := len(tries)
		for _, to := range next {
			if killAny || majority(cur) && majority(to) {
				slices.Sort(to)
				tries = append(tries, MemberChange{Group: g.Group, From: cur, To: to})
			}
		}
		if len(tries) == n {
			why = append(why, fmt.Sprintf("group %d %v: no change keeps a majority healthy", g.Group, cur))
		}
	}
	if len(tries) == 0 {
		return MemberChange{}, fmt.Errorf("nemesis: membership: %w (%s)", ErrNoMemberChange, strings.Join(why, "; "))
	}
	return tries[rng.IntN(len(tries))], nil
}

// changeMembers reads the groups' memberships, decides one change from
// seed and the nodes this nemesis has down, performs it and records it as
// a "membership" invoke and info pair. A change that cannot be planned or
// that the cluster refuses is recorded, not fatal: the group decides, and
// the history says what was asked. Callers hold n.mu.
func (n *Nemesis) changeMembers(run context.Context, seed uint64) error {
	m, ok := n.t.(Memberer)
	if !ok {
		return errNoMemberer
	}
	ctx, cancel := context.WithTimeout(run, n.cfg.ReconfigTimeout)
	defer cancel()
	record := func(v map[string]any, err error) {
		n.rec(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: string(Membership), Value: v})
		n.rec(history.Op{Type: history.Info, Process: history.NemesisProcess, F: string(Membership), Value: v, Error: err.Error()})
		n.log.Warn("nemesis membership: no change", "err", err)
	}
	groups, err := m.Memberships(ctx)
	if err != nil {
		if run.Err() == nil {
			record(map[string]any{"op": "query"}, err)
		}
		// Else the run is ending: nothing was asked, nothing to record.
		return nil
	}
	healthy := func(node string) bool { return !n.killed[node] && !n.paused[node] }
	c, err := PlanMembership(seed, groups, healthy, n.cfg.KillPolicy == KillAny)
	if err != nil {
		record(map[string]any{"op": "none"}, err)
		return nil
	}
	// n.do records and logs a refusal; the run carries on either way.
	_ = n.do(string(Membership), c.Value(), func() error { return m.ChangeMembers(ctx, c.Group, c.To) })
	return nil
}

// errNoMemberer is returned when membership is asked of a target whose
// groups cannot change membership.
var errNoMemberer = errors.New("nemesis: membership needs a cluster whose replica groups can change membership (spare nodes and a protocol with configuration changes)")
