// Package shardctl is the shard controller: a replicated state machine
// (run by its own replica group like any other) holding the numbered
// sequence of shard configurations. A configuration says which replica
// group serves each of the NShards shards and which nodes make up each
// group. Join and Leave change the set of groups and rebalance; Move pins
// one shard to a group; Query reads a configuration.
//
// Rebalancing is deterministic (groups are visited in ascending id order,
// never in map order), balanced (shard counts of any two groups differ by
// at most one) and moves as few shards as possible: a group keeps every
// shard it holds up to its target count, and the groups that already hold
// the most shards are the ones allowed the one extra.
package shardctl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/session"
)

// NShards is the fixed number of shards.
const NShards = 16

// ShardOf maps a key to its shard: FNV-1a of the key, mod NShards. It is
// fixed forever, since stored data is placed by it.
func ShardOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % NShards)
}

// Config is one numbered configuration. Config 0 has no groups and every
// shard assigned to group 0 (nobody).
type Config struct {
	Num    uint64
	Shards [NShards]replica.GroupID
	Groups map[replica.GroupID][]replica.NodeID
}

// GroupIDs returns the configuration's groups in ascending order.
func (c *Config) GroupIDs() []replica.GroupID {
	return slices.Sorted(maps.Keys(c.Groups))
}

// ShardsOf returns the shards group g serves, ascending.
func (c *Config) ShardsOf(g replica.GroupID) []int {
	var out []int
	for s, o := range c.Shards {
		if o == g {
			out = append(out, s)
		}
	}
	return out
}

// Clone returns a deep copy.
func (c *Config) Clone() Config {
	n := Config{Num: c.Num, Shards: c.Shards, Groups: make(map[replica.GroupID][]replica.NodeID, len(c.Groups))}
	for g, m := range c.Groups {
		n.Groups[g] = slices.Clone(m)
	}
	return n
}

// Kind is a controller operation's type; the values are wire format.
type Kind uint8

// The controller operations.
const (
	Join  Kind = 1 // add Groups (id -> members) and rebalance
	Leave Kind = 2 // remove GIDs and rebalance
	Move  Kind = 3 // assign Shard to GID, no rebalance
	Query Kind = 4 // read configuration Num (-1 or above the latest: the latest)
)

// Op is one controller operation.
type Op struct {
	Kind   Kind
	Groups map[replica.GroupID][]replica.NodeID // Join
	GIDs   []replica.GroupID                    // Leave
	Shard  int                                  // Move
	GID    replica.GroupID                      // Move
	Num    int64                                // Query
}

// Reply is a controller operation's outcome: the configuration it created
// (Join, Leave, Move) or read (Query), or Err when the op was refused and
// changed nothing.
type Reply struct {
	Err    string
	Config Config
}

// ErrMalformed is matched by every decoding error of this package.
var ErrMalformed = errors.New("shardctl: malformed encoding")

// Controller is the shard controller state machine.
type Controller struct {
	configs  []Config
	sessions *session.Table
}

var _ replica.StateMachine = (*Controller)(nil)

// New returns a controller holding only config 0.
func New() *Controller {
	return &Controller{configs: []Config{{Groups: map[replica.GroupID][]replica.NodeID{}}}, sessions: session.NewTable()}
}

// Latest returns the latest configuration (a copy).
func (c *Controller) Latest() Config { return c.configs[len(c.configs)-1].Clone() }

// Apply applies one encoded Op with exactly-once sessions and returns the
// encoded Reply.
func (c *Controller) Apply(index uint64, req replica.Request) []byte {
	return c.sessions.Apply(req.ClientID, req.Seq, func() []byte {
		var r Reply
		op, err := DecodeOp(req.Op)
		if err != nil {
			r.Err = err.Error()
		} else {
			r = c.apply(op)
		}
		return r.Encode()
	})
}

// ReadOnly reports whether encoded is a Query, which a runtime may serve
// by read index with Query instead of taking a log entry: every shard
// group's runtime asks for the next configuration many times a second,
// and each such entry would cost every replica a disk sync. An op that
// does not decode is not read-only: the log path answers it with its
// decoding error.
func (c *Controller) ReadOnly(encoded []byte) bool {
	op, err := DecodeOp(encoded)
	return err == nil && op.Kind == Query
}

// Query answers a Query op from the current state and returns the encoded
// Reply, as Apply would have, without the session table; any other op
// gets a Reply with Err set.
func (c *Controller) Query(encoded []byte) []byte {
	op, err := DecodeOp(encoded)
	switch {
	case err != nil:
		return Reply{Err: err.Error()}.Encode()
	case op.Kind != Query:
		return Reply{Err: fmt.Sprintf("query: op kind %d changes the configuration; it must go through the log", op.Kind)}.Encode()
	}
	return c.apply(op).Encode()
}

func (c *Controller) apply(op Op) Reply {
	latest := c.configs[len(c.configs)-1]
	next := latest.Clone()
	next.Num++
	switch op.Kind {
	case Query:
		if op.Num < 0 || op.Num >= int64(len(c.configs)) {
			return Reply{Config: latest.Clone()}
		}
		return Reply{Config: c.configs[op.Num].Clone()}
	case Join:
		if len(op.Groups) == 0 {
			return Reply{Err: "join: no groups"}
		}
		for _, g := range slices.Sorted(maps.Keys(op.Groups)) {
			if g == 0 {
				return Reply{Err: "join: group id 0 is reserved"}
			}
			if _, ok := latest.Groups[g]; ok {
				return Reply{Err: fmt.Sprintf("join: group %d is already a member", g)}
			}
			if len(op.Groups[g]) == 0 {
				return Reply{Err: fmt.Sprintf("join: group %d has no members", g)}
			}
			next.Groups[g] = slices.Clone(op.Groups[g])
		}
		rebalance(&next)
	case Leave:
		if len(op.GIDs) == 0 {
			return Reply{Err: "leave: no groups"}
		}
		for _, g := range op.GIDs {
			if _, ok := next.Groups[g]; !ok {
				return Reply{Err: fmt.Sprintf("leave: group %d is not a member", g)}
			}
			delete(next.Groups, g)
		}
		rebalance(&next)
	case Move:
		if op.Shard < 0 || op.Shard >= NShards {
			return Reply{Err: fmt.Sprintf("move: shard %d outside 0..%d", op.Shard, NShards-1)}
		}
		if _, ok := latest.Groups[op.GID]; !ok {
			return Reply{Err: fmt.Sprintf("move: group %d is not a member", op.GID)}
		}
		next.Shards[op.Shard] = op.GID
	default:
		return Reply{Err: fmt.Sprintf("unknown op kind %d", op.Kind)}
	}
	c.configs = append(c.configs, next)
	return Reply{Config: next.Clone()}
}

// rebalance reassigns shards so that every group in c.Groups holds
// NShards/n or NShards/n+1 of them, moving as few as possible.
func rebalance(c *Config) {
	gids := c.GroupIDs()
	if len(gids) == 0 {
		c.Shards = [NShards]replica.GroupID{}
		return
	}
	held := map[replica.GroupID][]int{}
	var pool []int
	for s, g := range c.Shards {
		if _, ok := c.Groups[g]; ok {
			held[g] = append(held[g], s)
		} else {
			pool = append(pool, s)
		}
	}
	// The extra shards go to the groups holding the most already (ties to
	// the lower id): they keep one more shard, so fewer move.
	order := slices.Clone(gids)
	slices.SortStableFunc(order, func(a, b replica.GroupID) int { return len(held[b]) - len(held[a]) })
	target := map[replica.GroupID]int{}
	base, extra := NShards/len(gids), NShards%len(gids)
	for i, g := range order {
		target[g] = base
		if i < extra {
			target[g]++
		}
	}
	for _, g := range gids {
		if h := held[g]; len(h) > target[g] {
			pool = append(pool, h[target[g]:]...)
			held[g] = h[:target[g]]
		}
	}
	slices.Sort(pool)
	for _, g := range gids {
		for len(held[g]) < target[g] {
			s := pool[0]
			pool = pool[1:]
			c.Shards[s] = g
			held[g] = append(held[g], s)
		}
	}
}

// Snapshot encodes every configuration and the session table.
func (c *Controller) Snapshot() ([]byte, error) {
	b := []byte{snapshotVersion}
	b = binary.AppendUvarint(b, uint64(len(c.configs)))
	for i := range c.configs {
		b = appendConfig(b, &c.configs[i])
	}
	b, err := c.sessions.AppendBinary(b)
	if err != nil {
		return nil, fmt.Errorf("shardctl snapshot: %w", err)
	}
	return b, nil
}

const snapshotVersion = 1

// Restore replaces the state with a snapshot's; on error nothing changes.
func (c *Controller) Restore(data []byte) error {
	d := newDecoder(data)
	if v := d.Byte("version"); d.Err() == nil && v != snapshotVersion {
		d.Fail(fmt.Sprintf("unknown snapshot version %d", v))
	}
	n := d.Count("config count", NShards+2)
	var cfgs []Config
	for i := 0; i < n && d.Err() == nil; i++ {
		cf := d.config()
		if d.Err() == nil && cf.Num != uint64(i) {
			d.Fail(fmt.Sprintf("config %d numbered %d", i, cf.Num))
		}
		cfgs = append(cfgs, cf)
	}
	if d.Err() == nil && len(cfgs) == 0 {
		d.Fail("no configurations")
	}
	if d.Err() != nil {
		return fmt.Errorf("shardctl restore: %w", d.Err())
	}
	tab := session.NewTable()
	if err := tab.UnmarshalBinary(d.Rest()); err != nil {
		return fmt.Errorf("shardctl restore: sessions: %w", err)
	}
	c.configs, c.sessions = cfgs, tab
	return nil
}
