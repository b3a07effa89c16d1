package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// ShardedConfig configures a Sharded client.
type ShardedConfig struct {
	// Cluster is the cluster file: where every group's members listen.
	Cluster *config.Cluster
	// Controller is the shard controller's group.
	Controller replica.GroupID
	// ClientID is the session's id; zero picks a random one.
	ClientID uint64
	// AttemptTimeout bounds the wait for one node's answer before the
	// client tries the group's next member; after a round of every member
	// without an answer it re-reads the configuration. Default 1s.
	AttemptTimeout time.Duration
}

// Sharded is one session with a sharded cluster: a Router that keeps the
// latest shard configuration it has seen, sends each transaction to the
// group owning the transaction's lowest shard, and on a wrong-group answer
// asks the controller for the latest configuration and retries the same
// request. Every group sees the same (client id, seq), so a retry at a new
// owner is answered from the session table that moved with the shard.
// Its methods are safe for concurrent use but run one at a time.
type Sharded struct {
	cfg    ShardedConfig
	mu     sync.Mutex
	r      *Router
	p      pool
	aborts atomic.Uint64
}

// Aborts returns how many transaction attempts of this session the
// cluster aborted (and the client retried or gave up on).
func (s *Sharded) Aborts() uint64 { return s.aborts.Load() }

// NewSharded returns a sharded client; it connects lazily.
func NewSharded(cfg ShardedConfig) (*Sharded, error) {
	if cfg.Cluster == nil {
		return nil, errors.New("client: no cluster file")
	}
	for cfg.ClientID == 0 {
		cfg.ClientID = randomID()
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Second
	}
	if _, ok := cfg.Cluster.Group(cfg.Controller); !ok {
		return nil, fmt.Errorf("client: controller: group %d is not in the cluster file", cfg.Controller)
	}
	groups := map[replica.GroupID][]replica.NodeID{}
	for _, g := range cfg.Cluster.Groups {
		groups[g.ID] = g.Hosts()
	}
	addrs := map[replica.NodeID]string{}
	for i := range cfg.Cluster.Nodes {
		n := &cfg.Cluster.Nodes[i]
		addrs[n.ID] = n.ClientAddress()
	}
	r, err := NewRouter(RouterConfig{
		ClientID:       cfg.ClientID,
		Groups:         groups,
		Controller:     cfg.Controller,
		AttemptTimeout: cfg.AttemptTimeout,
		BackoffMax:     20 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	return &Sharded{cfg: cfg, r: r, p: newPool(addrs, 500*time.Millisecond)}, nil
}

// Close closes every connection.
func (s *Sharded) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p.close()
	return nil
}

// run runs op until the Router settles it or ctx ends.
func (s *Sharded) run(ctx context.Context, op Op) Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	op.Deadline, _ = ctx.Deadline()
	o := s.p.run(ctx, s.r, s.r.Start(time.Now(), op))
	s.aborts.Add(uint64(o.Aborts))
	return o
}

// Admin runs one shard controller operation (Join, Leave, Move, Query) and
// returns its reply; a refused operation comes back as an error.
func (s *Sharded) Admin(ctx context.Context, op shardctl.Op) (shardctl.Config, error) {
	o := s.run(ctx, Op{Group: s.cfg.Controller, Body: op.Encode()})
	if o.Result != OK {
		return shardctl.Config{}, o.Err("controller")
	}
	r, err := shardctl.DecodeReply(o.Value)
	if err != nil {
		return shardctl.Config{}, &UnknownError{Op: "controller", Cause: err}
	}
	if r.Err != "" {
		return shardctl.Config{}, &FailedError{Op: "controller", Cause: errors.New(r.Err)}
	}
	return r.Config, nil
}

// Txn runs a one-shot transaction over keys in any shards, with the
// contract of Client.Txn: nil error means committed; ErrUnknown means it
// may or may not have committed; ErrFailed means it certainly did not (a
// failed txn.Check wraps txn.ErrCheckFailed). An
// aborted attempt (a lock conflict, a participant cut off) is retried as a
// new request until ctx ends, and then reported as ErrFailed.
func (s *Sharded) Txn(ctx context.Context, ops []txn.MicroOp) ([]txn.MicroResult, error) {
	if err := txn.Validate(ops); err != nil {
		return nil, &FailedError{Op: "txn", Cause: err}
	}
	o := s.run(ctx, TxnOp(ops))
	if o.Result != OK {
		return nil, o.Err("txn")
	}
	if len(o.Txn.Results) != len(ops) {
		return nil, &UnknownError{Op: "txn", Cause: fmt.Errorf("%d results for %d micro-ops", len(o.Txn.Results), len(ops))}
	}
	return o.Txn.Results, nil
}

// TxnOp returns the Router op of a one-shot transaction over ops: sent to
// the group owning their lowest shard, and failed at once, unsent, while
// the session presumes the owner of any of their shards down.
func TxnOp(ops []txn.MicroOp) Op {
	op := Op{Sharded: true, Shard: LowestShard(ops), Body: txn.EncodeTxnRequest(ops)}
	for _, o := range ops {
		if s := shardctl.ShardOf(o.Key); !slices.Contains(op.Shards, s) {
			op.Shards = append(op.Shards, s)
		}
	}
	return op
}

// LowestShard returns the lowest shard of ops' keys: a sharded
// transaction is sent to the group that owns it, which coordinates.
func LowestShard(ops []txn.MicroOp) int {
	low := shardctl.NShards
	for _, o := range ops {
		low = min(low, shardctl.ShardOf(o.Key))
	}
	return low
}

// Config returns the latest shard configuration the client has seen.
func (s *Sharded) Config() shardctl.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Config()
}
