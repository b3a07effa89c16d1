package nemesis

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
)

// errNoSafeChange means no membership change keeps a majority of both
// configurations healthy.
var errNoSafeChange = errors.New("nemesis: membership: no change keeps a majority of the old and the new configuration healthy")

// PlanMembership decides one membership change of a group from seed, as a
// pure function. members is the current configuration; nodes every node
// that could host the group (members and spares), in a stable order;
// healthy says which run unpaused. The next configuration is one member
// away (a healthy spare added, a member removed, down to minMembers) or
// two (a member replaced by a spare), chosen at random among those for
// which a majority of both the old and the new configuration is healthy,
// so that the change can commit and the new group can serve. It returns
// the next configuration in nodes' order and a description ("add n4",
// "remove n2", "replace n2 by n4").
func PlanMembership(seed uint64, members, nodes []string, healthy func(string) bool, minMembers int) ([]string, string, error) {
	rng := rand.New(rand.NewPCG(seed, 0x6d656d62657273))
	var in, out []string
	for _, n := range shuffled(nodes, rng) {
		if slices.Contains(members, n) {
			in = append(in, n)
		} else if healthy(n) {
			out = append(out, n)
		}
	}
	var tries [][]string
	if len(out) > 0 {
		tries = append(tries, append(slices.Clone(members), out[0]))
	}
	for _, gone := range in {
		rest := slices.DeleteFunc(slices.Clone(members), func(n string) bool { return n == gone })
		if len(out) > 0 {
			tries = append(tries, append(slices.Clone(rest), out[0]))
		}
		if len(rest) >= minMembers {
			tries = append(tries, rest)
		}
	}
	rng.Shuffle(len(tries), func(i, j int) { tries[i], tries[j] = tries[j], tries[i] })
	majority := func(ids []string) bool {
		k := 0
		for _, n := range ids {
			if healthy(n) {
				k++
			}
		}
		return 2*k > len(ids)
	}
	if !majority(members) {
		return nil, "", errNoSafeChange
	}
	for _, next := range tries {
		if majority(next) {
			next = inOrder(nodes, next)
			return next, describeChange(members, next), nil
		}
	}
	return nil, "", errNoSafeChange
}

// describeChange names a change: "add n4", "remove n2" or "replace n2 by
// n4".
func describeChange(from, to []string) string {
	var gone, added []string
	for _, n := range from {
		if !slices.Contains(to, n) {
			gone = append(gone, n)
		}
	}
	for _, n := range to {
		if !slices.Contains(from, n) {
			added = append(added, n)
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
