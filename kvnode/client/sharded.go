package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
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
	// AttemptTimeout bounds one request to one group before the client
	// re-reads the configuration and tries again; default 1s.
	AttemptTimeout time.Duration
}

// Sharded is one session with a sharded cluster: it keeps the latest
// shard configuration it has seen, sends each transaction to the group
// owning the transaction's lowest shard, and on a wrong-group answer asks
// the controller for the latest configuration and retries the same
// request. Every group sees the same (client id, seq), so a retry at a new
// owner is answered from the session table that moved with the shard.
// Its methods are safe for concurrent use but run one at a time.
type Sharded struct {
	cfg    ShardedConfig
	mu     sync.Mutex
	ctl    *Client
	groups map[replica.GroupID]*Client
	shards shardctl.Config
	seq    uint64
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
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("client: random id: %w", err)
		}
		cfg.ClientID = binary.LittleEndian.Uint64(b[:])
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Second
	}
	s := &Sharded{cfg: cfg, groups: map[replica.GroupID]*Client{}}
	ctl, err := s.groupClient(cfg.Controller)
	if err != nil {
		return nil, fmt.Errorf("client: controller: %w", err)
	}
	s.ctl = ctl
	return s, nil
}

func (s *Sharded) groupClient(g replica.GroupID) (*Client, error) {
	if c := s.groups[g]; c != nil {
		return c, nil
	}
	cc, err := FromCluster(s.cfg.Cluster, g)
	if err != nil {
		return nil, err
	}
	cc.ClientID, cc.AttemptTimeout = s.cfg.ClientID, s.cfg.AttemptTimeout
	c, err := New(cc)
	if err != nil {
		return nil, err
	}
	s.groups[g] = c
	return c, nil
}

// Close closes every connection.
func (s *Sharded) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.groups {
		c.Close()
	}
	return nil
}

// Admin runs one shard controller operation (Join, Leave, Move, Query) and
// returns its reply; a refused operation comes back as an error.
func (s *Sharded) Admin(ctx context.Context, op shardctl.Op) (shardctl.Config, error) {
	v, err := s.ctl.Raw(ctx, op.Encode())
	if err != nil {
		return shardctl.Config{}, err
	}
	r, err := shardctl.DecodeReply(v)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	low := shardctl.NShards
	for _, o := range ops {
		low = min(low, shardctl.ShardOf(o.Key))
	}
	req := txn.EncodeTxnRequest(ops)
	s.seq++
	maybe := false // the current seq may have been applied
	var last error
	for {
		if err := ctx.Err(); err != nil {
			if last != nil {
				err = fmt.Errorf("%w (last: %w)", err, last)
			}
			if maybe {
				return nil, &UnknownError{Op: "txn", Cause: err}
			}
			return nil, &FailedError{Op: "txn", Cause: err}
		}
		owner := s.shards.Shards[low]
		if owner == 0 {
			last = s.refresh(ctx)
			pause(ctx, 20*time.Millisecond)
			continue
		}
		gc, err := s.groupClient(owner)
		if err != nil {
			last = err
			s.refresh(ctx)
			pause(ctx, 20*time.Millisecond)
			continue
		}
		actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
		gc.mu.Lock()
		v, err := gc.send(actx, "txn", s.seq, req)
		gc.mu.Unlock()
		cancel()
		if err != nil {
			if errors.Is(err, ErrUnknown) {
				maybe = true
			}
			last = err
			s.refresh(ctx)
			continue
		}
		r, err := txn.DecodeReply(v)
		if err != nil {
			return nil, &UnknownError{Op: "txn", Cause: fmt.Errorf("group %d: %w", owner, err)}
		}
		switch r.Status {
		case txn.StatusOK:
			if len(r.Results) != len(ops) {
				return nil, &UnknownError{Op: "txn", Cause: fmt.Errorf("%d results for %d micro-ops", len(r.Results), len(ops))}
			}
			return r.Results, nil
		case txn.StatusAborted:
			// This request is settled as not applied; the next attempt
			// is a new one.
			s.aborts.Add(1)
			s.seq++
			maybe = false
			last = fmt.Errorf("group %d: aborted: %s", owner, r.Err)
			pause(ctx, time.Duration(1+mrand.IntN(20))*time.Millisecond)
		case txn.StatusCheckFailed:
			return nil, &FailedError{Op: "txn", Cause: fmt.Errorf("group %d: %w", owner, txn.ErrCheckFailed)}
		case txn.StatusWrongGroup:
			last = fmt.Errorf("group %d does not own shard %d", owner, low)
			if err := s.refresh(ctx); err != nil {
				last = err
				pause(ctx, 20*time.Millisecond)
			}
		case txn.StatusRetry:
			maybe = true
			last = fmt.Errorf("group %d: %s", owner, r.Err)
			pause(ctx, 5*time.Millisecond)
		default:
			return nil, &FailedError{Op: "txn", Cause: fmt.Errorf("group %d: %s", owner, r.Err)}
		}
	}
}

// Config returns the latest shard configuration the client has seen.
func (s *Sharded) Config() shardctl.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shards.Clone()
}

func (s *Sharded) refresh(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	c, err := s.Admin(actx, shardctl.Op{Kind: shardctl.Query, Num: -1})
	if err != nil {
		return fmt.Errorf("refresh configuration: %w", err)
	}
	if c.Num >= s.shards.Num {
		s.shards = c
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
