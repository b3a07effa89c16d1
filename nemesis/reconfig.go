package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chaoskv/chaos/history"
)

// Reconfig changes which replica groups serve which shards while the test
// runs: a shard group joins, leaves, or one shard moves. It is an event,
// not a held fault: nothing is undone afterwards, since every
// configuration is one the system must serve correctly.
const Reconfig Kind = "reconfig"

// ShardLayout is a shard configuration as the nemesis sees it.
type ShardLayout struct {
	// Num is the configuration's number.
	Num uint64
	// Shards[s] is the group serving shard s; 0 means no group.
	Shards []uint32
	// Joined are the groups in the configuration, ascending.
	Joined []uint32
	// All are every shard group the cluster has, joined or not, ascending.
	All []uint32
}

// Reconfigurer is implemented by targets whose cluster has a shard
// controller. Each call returns the configuration it produced (or, for
// Query, the latest one).
type Reconfigurer interface {
	// Query returns the latest configuration.
	Query(ctx context.Context) (ShardLayout, error)
	// Join adds shard group gid to the configuration and rebalances.
	Join(ctx context.Context, gid uint32) (ShardLayout, error)
	// Leave removes shard group gid and rebalances.
	Leave(ctx context.Context, gid uint32) (ShardLayout, error)
	// Move assigns shard to group gid without rebalancing.
	Move(ctx context.Context, shard int, gid uint32) (ShardLayout, error)
}

// ReconfigAction is one decided reconfiguration.
type ReconfigAction struct {
	Op    string // "join", "leave" or "move"
	Group uint32
	Shard int // move only
}

// Value is the action as the history records it.
func (a ReconfigAction) Value() map[string]any {
	v := map[string]any{"op": a.Op, "group": int64(a.Group)}
	if a.Op == "move" {
		v["shard"] = int64(a.Shard)
	}
	return v
}

// PlanReconfig decides one reconfiguration of layout from seed, as a pure
// function: a join of a group that is out, a leave of a joined group
// (never the last), or a move of a random shard to another joined group,
// choosing uniformly among the kinds that are possible.
func PlanReconfig(seed uint64, l ShardLayout) (ReconfigAction, error) {
	if len(l.All) == 0 {
		return ReconfigAction{}, errors.New("nemesis: reconfig: the cluster has no shard groups")
	}
	rng := rand.New(rand.NewPCG(seed, 0x7265636f6e666967))
	var out []uint32
	for _, g := range l.All {
		if !slices.Contains(l.Joined, g) {
			out = append(out, g)
		}
	}
	var kinds []string
	if len(out) > 0 {
		kinds = append(kinds, "join")
	}
	if len(l.Joined) > 1 {
		kinds = append(kinds, "leave", "move")
	}
	if len(l.Joined) == 1 && len(l.Shards) > 0 && slices.ContainsFunc(l.Shards, func(g uint32) bool { return g != l.Joined[0] }) {
		kinds = append(kinds, "move")
	}
	if len(kinds) == 0 {
		return ReconfigAction{}, fmt.Errorf("nemesis: reconfig: nothing to change with groups %v of %v joined", l.Joined, l.All)
	}
	switch op := kinds[rng.IntN(len(kinds))]; op {
	case "join":
		return ReconfigAction{Op: op, Group: out[rng.IntN(len(out))]}, nil
	case "leave":
		return ReconfigAction{Op: op, Group: l.Joined[rng.IntN(len(l.Joined))]}, nil
	default:
		if len(l.Shards) == 0 {
			return ReconfigAction{}, errors.New("nemesis: reconfig: the configuration has no shards")
		}
		s := rng.IntN(len(l.Shards))
		var others []uint32
		for _, g := range l.Joined {
			if g != l.Shards[s] {
				others = append(others, g)
			}
		}
		if len(others) == 0 {
			// Only one group is joined and it holds this shard; pick a
			// shard it does not hold.
			for i, g := range l.Shards {
				if g != l.Joined[0] {
					s = i
					break
				}
			}
			others = l.Joined
		}
		return ReconfigAction{Op: op, Shard: s, Group: others[rng.IntN(len(others))]}, nil
	}
}

// reconfigure queries the layout, decides one action from seed, performs
// it and records it as a "reconfig" invoke and info pair; the info's
// value adds the configuration number that resulted. Callers hold n.mu.
func (n *Nemesis) reconfigure(ctx context.Context, seed uint64) error {
	r, ok := n.t.(Reconfigurer)
	if !ok {
		return errNoReconfigurer
	}
	// The other schedules wait for n.mu: a controller cut off by a
	// partition must not hold them up for longer than this.
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReconfigTimeout)
	defer cancel()
	l, err := r.Query(ctx)
	if err != nil {
		n.rec(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: "reconfig", Value: map[string]any{"op": "query"}})
		n.rec(history.Op{Type: history.Info, Process: history.NemesisProcess, F: "reconfig", Value: map[string]any{"op": "query"}, Error: err.Error()})
		n.log.Warn("nemesis reconfig: query failed", "err", err)
		// The controller may be cut off by another fault; try again at
		// the next step rather than ending the test.
		return nil
	}
	a, err := PlanReconfig(seed, l)
	if err != nil {
		return err
	}
	n.rec(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: "reconfig", Value: a.Value()})
	var after ShardLayout
	switch a.Op {
	case "join":
		after, err = r.Join(ctx, a.Group)
	case "leave":
		after, err = r.Leave(ctx, a.Group)
	default:
		after, err = r.Move(ctx, a.Shard, a.Group)
	}
	done := history.Op{Type: history.Info, Process: history.NemesisProcess, F: "reconfig", Value: a.Value()}
	if err != nil {
		done.Error = err.Error()
		n.log.Warn("nemesis reconfig failed", "action", a.Value(), "err", err)
	} else {
		done.Value.(map[string]any)["config"] = int64(after.Num)
		n.log.Info("nemesis", "f", "reconfig", "value", done.Value)
	}
	n.rec(done)
	// A refused or unanswered reconfiguration is recorded, not fatal:
	// the controller decides, and the history says what was asked.
	return nil
}

// DefaultReconfigTimeout bounds one reconfiguration, its query included,
// when Config.ReconfigTimeout is zero.
const DefaultReconfigTimeout = 5 * time.Second

// errNoReconfigurer is returned when reconfig is asked of a cluster
// without a shard controller.
var errNoReconfigurer = errors.New("nemesis: reconfig needs a cluster with a shard controller (more than one shard group)")
