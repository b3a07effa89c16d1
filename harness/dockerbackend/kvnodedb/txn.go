package kvnodedb

import (
	"context"
	"fmt"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/wlops"
	"github.com/chaoskv/chaos/workloads"
)

// ShardedGroups lays out a sharded cluster over nodes 1..nodes: shard
// groups 1..groups of replicas nodes each, placed round the ring so every
// node hosts replicas of several groups when groups*replicas > nodes, and
// the shard controller's own group (id groups+1) on the first replicas
// nodes. The controller group comes last.
func ShardedGroups(nodes, replicas, groups int) ([]config.Group, error) {
	switch {
	case nodes < 1:
		return nil, fmt.Errorf("--nodes: %d, need at least 1", nodes)
	case replicas < 1 || replicas > nodes:
		return nil, fmt.Errorf("--replicas: %d is outside 1..%d (the node count)", replicas, nodes)
	case groups < 1 || groups > shardctl.NShards:
		return nil, fmt.Errorf("--groups: %d is outside 1..%d (the shard count)", groups, shardctl.NShards)
	}
	out := make([]config.Group, 0, groups+1)
	for g := range groups {
		grp := config.Group{ID: replica.GroupID(g + 1)}
		for j := range replicas {
			grp.Members = append(grp.Members, replica.NodeID((g*replicas+j)%nodes+1))
		}
		out = append(out, grp)
	}
	ctl := config.Group{ID: replica.GroupID(groups + 1)}
	for j := range replicas {
		ctl.Members = append(ctl.Members, replica.NodeID(j+1))
	}
	return append(out, ctl), nil
}

// OpenTxn opens a transactional session. A cluster of one replica group
// runs each transaction in that group, where kvnode applies it as one log
// entry; transactions over several hash-placed groups are refused: they need
// a sharded cluster (Options.Groups), with its shard controller and
// two-phase commit.
func (s *sut) OpenTxn(context.Context) (workloads.TxnKV, error) {
	if n := len(s.file.Groups); n != 1 {
		return nil, fmt.Errorf("%w: the cluster has %d replica groups placed by key hash and no shard controller, "+
			"so a transaction could span groups (run with --replicas equal to --nodes for a single group, or with --groups)", workloads.ErrNoTxn, n)
	}
	c, err := s.groupClient(s.file.Groups[0].ID)
	if err != nil {
		return nil, err
	}
	return &txnSession{c: c}, nil
}

// txnSession adapts a kvnode client's one-shot transactions to the
// workloads' transactional session.
type txnSession struct {
	c *client.Client
}

func (s *txnSession) Txn(ctx context.Context, ops []workloads.MicroOp) ([]workloads.MicroResult, error) {
	mops, err := wlops.MicroOps(ops)
	if err != nil {
		return nil, workloads.Definite(err)
	}
	res, err := s.c.Txn(ctx, mops)
	if err != nil {
		return nil, classify(err)
	}
	return wlops.MicroResults(res), nil
}

func (s *txnSession) Close() error { return s.c.Close() }
