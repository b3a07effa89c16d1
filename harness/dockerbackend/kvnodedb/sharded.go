package kvnodedb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness/dockerbackend"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
	"github.com/chaoskv/chaos/kvnode/wlops"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// AdminFunc runs one shard controller operation and returns the
// configuration it produced or read; a refusal is an error.
type AdminFunc func(ctx context.Context, op shardctl.Op) (shardctl.Config, error)

// Layout converts a controller configuration to the nemesis's view of it;
// all are the cluster's shard groups, joined or not.
func Layout(c shardctl.Config, all []replica.GroupID) nemesis.ShardLayout {
	l := nemesis.ShardLayout{Num: c.Num, Shards: make([]uint32, len(c.Shards))}
	for s, g := range c.Shards {
		l.Shards[s] = uint32(g)
	}
	for _, g := range c.GroupIDs() {
		l.Joined = append(l.Joined, uint32(g))
	}
	for _, g := range all {
		l.All = append(l.All, uint32(g))
	}
	slices.Sort(l.All)
	return l
}

// Reconfigurer performs the reconfig nemesis's Join, Leave and Move
// through the shard controller. Join names the group's members from the
// cluster file.
type Reconfigurer struct {
	admin   AdminFunc
	members map[replica.GroupID][]replica.NodeID
	all     []replica.GroupID
}

var _ nemesis.Reconfigurer = (*Reconfigurer)(nil)

// NewReconfigurer returns a Reconfigurer over the given shard groups
// (the controller's own group excluded).
func NewReconfigurer(admin AdminFunc, groups []config.Group) *Reconfigurer {
	r := &Reconfigurer{admin: admin, members: map[replica.GroupID][]replica.NodeID{}}
	for _, g := range groups {
		r.members[g.ID] = slices.Clone(g.Members)
		r.all = append(r.all, g.ID)
	}
	return r
}

func (r *Reconfigurer) do(ctx context.Context, what string, op shardctl.Op) (nemesis.ShardLayout, error) {
	c, err := r.admin(ctx, op)
	if err != nil {
		return nemesis.ShardLayout{}, fmt.Errorf("shard controller %s: %w", what, err)
	}
	return Layout(c, r.all), nil
}

// Query returns the latest configuration.
func (r *Reconfigurer) Query(ctx context.Context) (nemesis.ShardLayout, error) {
	return r.do(ctx, "query", shardctl.Op{Kind: shardctl.Query, Num: -1})
}

// Join adds shard group gid with its members from the cluster file.
func (r *Reconfigurer) Join(ctx context.Context, gid uint32) (nemesis.ShardLayout, error) {
	m, ok := r.members[replica.GroupID(gid)]
	if !ok {
		return nemesis.ShardLayout{}, fmt.Errorf("join: group %d is not a shard group of this cluster (have %v)", gid, r.all)
	}
	return r.do(ctx, fmt.Sprintf("join %d", gid), shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{replica.GroupID(gid): m}})
}

// Leave removes shard group gid.
func (r *Reconfigurer) Leave(ctx context.Context, gid uint32) (nemesis.ShardLayout, error) {
	return r.do(ctx, fmt.Sprintf("leave %d", gid), shardctl.Op{Kind: shardctl.Leave, GIDs: []replica.GroupID{replica.GroupID(gid)}})
}

// Move assigns shard to group gid.
func (r *Reconfigurer) Move(ctx context.Context, shard int, gid uint32) (nemesis.ShardLayout, error) {
	if shard < 0 || shard >= shardctl.NShards {
		return nemesis.ShardLayout{}, fmt.Errorf("move: shard %d is outside 0..%d", shard, shardctl.NShards-1)
	}
	return r.do(ctx, fmt.Sprintf("move %d to %d", shard, gid), shardctl.Op{Kind: shardctl.Move, Shard: shard, GID: replica.GroupID(gid)})
}

// JoinAll joins every shard group that the latest configuration lacks, in
// one operation, so a fresh cluster starts with all its groups serving.
func (r *Reconfigurer) JoinAll(ctx context.Context) error {
	c, err := r.admin(ctx, shardctl.Op{Kind: shardctl.Query, Num: -1})
	if err != nil {
		return fmt.Errorf("shard controller query: %w", err)
	}
	missing := map[replica.GroupID][]replica.NodeID{}
	for _, g := range r.all {
		if _, ok := c.Groups[g]; !ok {
			missing[g] = r.members[g]
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := r.admin(ctx, shardctl.Op{Kind: shardctl.Join, Groups: missing}); err != nil {
		return fmt.Errorf("shard controller join: %w", err)
	}
	return nil
}

// reconfigTarget is the backend's target plus the shard controller's
// reconfigurations.
type reconfigTarget struct {
	*dockerbackend.Target
	*Reconfigurer
}

// Supports accepts reconfig and forwards every other kind to the
// backend's target.
func (t reconfigTarget) Supports(ctx context.Context, k nemesis.Kind) error {
	if k == nemesis.Reconfig {
		return nil
	}
	return t.Target.Supports(ctx, k)
}

// shardedSUT opens sessions with a sharded cluster.
type shardedSUT struct {
	file       *config.Cluster
	controller replica.GroupID
	attempt    time.Duration
}

// OpenKV refuses: a sharded cluster serves transactions only.
func (s *shardedSUT) OpenKV(context.Context) (workloads.KV, error) {
	return nil, errors.New("a sharded cluster serves transactions only; single-key workloads need --groups 0")
}

// OpenTxn opens a sharded session that routes by the controller's
// configuration.
func (s *shardedSUT) OpenTxn(context.Context) (workloads.TxnKV, error) {
	c, err := client.NewSharded(client.ShardedConfig{Cluster: s.file, Controller: s.controller, AttemptTimeout: s.attempt})
	if err != nil {
		return nil, workloads.Definite(err)
	}
	return &shardedSession{c: c, low: -1}, nil
}

type shardedSession struct {
	c   *client.Sharded
	low int // the lowest shard of the last transaction, -1 before any
}

func (s *shardedSession) Txn(ctx context.Context, ops []workloads.MicroOp) ([]workloads.MicroResult, error) {
	mops, err := wlops.MicroOps(ops)
	if err != nil {
		return nil, workloads.Definite(err)
	}
	s.low = -1
	for _, o := range ops {
		if sh := shardctl.ShardOf(o.Key); s.low < 0 || sh < s.low {
			s.low = sh
		}
	}
	res, err := s.c.Txn(ctx, mops)
	if err != nil {
		return nil, classify(err)
	}
	return wlops.MicroResults(res), nil
}

func (s *shardedSession) Close() error { return s.c.Close() }

// Served names the group the last transaction was routed to: the owner of
// its lowest shard (the client sends a transaction to that shard's group,
// which coordinates it) in the latest configuration the client has seen.
func (s *shardedSession) Served() string {
	if s.low < 0 || s.low >= shardctl.NShards {
		return ""
	}
	if g := s.c.Config().Shards[s.low]; g != 0 {
		return fmt.Sprintf("group %d", g)
	}
	return ""
}

// ShardedClusterFile renders the cluster file of a sharded cluster: the
// shard groups and the controller group of ShardedGroups, the controller
// named as such.
func ShardedClusterFile(protocol string, nodes []docker.Node, replicas, groups int) (*config.Cluster, error) {
	gs, err := ShardedGroups(len(nodes), replicas, groups)
	if err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	c, err := ClusterFile(protocol, nodes, len(nodes), 0)
	if err != nil {
		return nil, err
	}
	c.Groups = gs
	c.ShardController = gs[len(gs)-1].ID
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	return c, nil
}

// shardGroups returns a sharded cluster file's shard groups: every group
// but the controller's.
func shardGroups(file *config.Cluster) []config.Group {
	var out []config.Group
	for _, g := range file.Groups {
		if g.ID != file.ShardController {
			out = append(out, g)
		}
	}
	return out
}

// shardsServe makes sure every shard group has joined the configuration
// and runs a read through the shard groups.
func shardsServe(ctx context.Context, admin *client.Sharded, r *Reconfigurer) error {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := r.JoinAll(pctx); err != nil {
		return err
	}
	ops := make([]txn.MicroOp, 0, shardctl.NShards)
	for s := range shardctl.NShards {
		// One key per shard, so every shard group must answer.
		ops = append(ops, txn.MicroOp{F: txn.Read, Key: shardProbeKey(s)})
	}
	if _, err := admin.Txn(pctx, ops); err != nil {
		return fmt.Errorf("the shard groups do not serve reads: %w", err)
	}
	return nil
}

// shardProbeKey returns a key in shard s, for health reads.
func shardProbeKey(s int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s-%d", healthKey, i)
		if shardctl.ShardOf(k) == s {
			return k
		}
	}
}
