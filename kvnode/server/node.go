// Package server is kvnode's real runtime: it hosts replicas of any number
// of replica groups in one process, drives each replica's core from its own
// event loop goroutine, moves messages over TCP, keeps the cores' state in
// durable storage, and serves clients and an admin HTTP port.
//
// One listener (the node's addr, and optionally a second one at
// client_addr) accepts both peer connections and client connections; each
// frame's kind tells peer messages from client requests (see package wire).
// Outbound peer traffic goes over one persistent connection per peer,
// redialled with exponential backoff.
//
// The server is a shell around package node: each local replica is a
// node.Replica owned by its own event loop goroutine (so groups use every
// core), fed what arrives (peer messages, client requests, ticks, finished
// writes). What a replica does with those (batching, persisting each Ready
// before releasing its messages and answers, answering clients, shard
// runtime rules) is decided there, as it is in the simulator. A shard
// group's loop also runs the group's node.ShardGroup (shards.go), whose
// deliveries run on goroutines of their own and end as loop events. The loop's
// writer goroutine writes and fsyncs each storage write while the loop
// keeps stepping the core, which pipelines the next batch behind the
// current fsync. A replica's data lives in <data>/group-<id>/ (see package
// storage); a restarted node rebuilds every core from there alone.
//
// The node never reads the wall clock for protocol decisions: ticks come
// from a monotonic ticker. Its few wall-clock readings go through Now, which
// applies a settable offset for clock-skew faults.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/storage"
)

// Factory builds a replication core from its configuration, its state
// machine and what it persisted before.
type Factory func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error)

// Protocol is a replication protocol the server can run: a core factory and
// the codec of its messages.
type Protocol struct {
	Name  string
	New   Factory
	Codec replica.Codec
}

// Options configure a Node.
type Options struct {
	Cluster  *config.Cluster
	ID       replica.NodeID
	DataDir  string
	Protocol Protocol
	// Listen, ClientListen and AdminListen override the addresses the
	// node listens on (for example 0.0.0.0:7000 inside a container); by
	// default it listens on its cluster file addresses.
	Listen, ClientListen, AdminListen string
	// NewStateMachine builds each group's state machine; the default is a
	// fresh kv.Store, or with ShardController set, the shard controller
	// for that group and a sharded transactional group for every other.
	NewStateMachine func(replica.GroupID) replica.StateMachine
	// ShardController, when not zero, runs the cluster sharded: that group
	// is the shard controller, and the node runs the runtime of its shard
	// groups (delivering their transaction and hand-off requests to other
	// groups and their configurations from the controller).
	ShardController replica.GroupID
	// MaxBatch, MaxInflight and SnapshotEvery are passed to the cores;
	// zero picks 512, 64 and 10000.
	MaxBatch, MaxInflight int
	SnapshotEvery         uint64
	// SyncOnce makes every storage write end with one fsync instead of
	// bbolt's two per transaction: as safe against process crashes, not
	// against power loss (see package storage).
	SyncOnce bool
	// UnsafeNoSync never fsyncs (storage.Options.UnsafeNoSync): for tests
	// that must show lost acknowledged writes, never for real use.
	UnsafeNoSync bool
	Logger       *slog.Logger
}

// Node is one kvnode process.
type Node struct {
	opts    Options
	log     *slog.Logger
	self    *config.Node
	groups  map[replica.GroupID]*group
	peers   map[replica.NodeID]*peer
	metrics *metrics

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	admin     *http.Server
	ready     chan struct{}
}

// New checks opts and opens every local replica's storage, recovering it
// from the data directory.
func New(opts Options) (*Node, error) {
	if opts.Cluster == nil {
		return nil, errors.New("server: no cluster configuration")
	}
	self, ok := opts.Cluster.Node(opts.ID)
	if !ok {
		return nil, fmt.Errorf("server: node id %d is not in the cluster file", opts.ID)
	}
	if opts.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if opts.Protocol.New == nil || opts.Protocol.Codec == nil {
		return nil, errors.New("server: no replication protocol")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NewStateMachine == nil && opts.ShardController != 0 {
		opts.NewStateMachine = shardedStateMachines(opts.ShardController)
	}
	if opts.NewStateMachine == nil {
		opts.NewStateMachine = func(replica.GroupID) replica.StateMachine { return kv.NewStore() }
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 512
	}
	if opts.MaxInflight == 0 {
		opts.MaxInflight = 64
	}
	if opts.SnapshotEvery == 0 {
		opts.SnapshotEvery = 10000
	}
	n := &Node{
		opts:    opts,
		log:     opts.Logger.With("node", opts.ID),
		self:    self,
		groups:  map[replica.GroupID]*group{},
		peers:   map[replica.NodeID]*peer{},
		metrics: newMetrics(),
		conns:   map[net.Conn]struct{}{},
		ready:   make(chan struct{}),
	}
	for _, nd := range opts.Cluster.Nodes {
		if nd.ID != opts.ID {
			n.peers[nd.ID] = newPeer(nd.ID, nd.Addr, n)
		}
	}
	mine := opts.Cluster.GroupsOf(opts.ID)
	if len(mine) == 0 {
		return nil, fmt.Errorf("server: node %d is a member of no group", opts.ID)
	}
	for _, gc := range mine {
		g, err := n.openGroup(gc)
		if err != nil {
			n.closeGroups()
			return nil, err
		}
		n.groups[gc.ID] = g
	}
	return n, nil
}

func (n *Node) openGroup(gc config.Group) (*group, error) {
	dir := filepath.Join(n.opts.DataDir, "group-"+strconv.FormatUint(uint64(gc.ID), 10))
	st, d, err := storage.OpenWith(dir, storage.Options{SyncOnce: n.opts.SyncOnce, UnsafeNoSync: n.opts.UnsafeNoSync})
	if err != nil {
		return nil, fmt.Errorf("server: group %d: %w", gc.ID, err)
	}
	gm := n.metrics.group(uint32(gc.ID))
	st.OnSync = n.metrics.fsync.observe
	c := n.opts.Cluster
	cfg := replica.Config{
		ID:             n.opts.ID,
		Peers:          append([]replica.NodeID(nil), gc.Members...),
		Joining:        !slices.Contains(gc.Members, n.opts.ID),
		ElectionTicks:  c.ElectionTicks,
		HeartbeatTicks: c.HeartbeatTicks,
		Seed:           int64(n.opts.ID)<<32 ^ int64(gc.ID) ^ time.Now().UnixNano(),
		SnapshotEvery:  n.opts.SnapshotEvery,
		MaxBatch:       n.opts.MaxBatch,
		MaxInflight:    n.opts.MaxInflight,
	}
	sm := n.opts.NewStateMachine(gc.ID)
	core, err := n.opts.Protocol.New(cfg, sm, d)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server: group %d: start %s core: %w", gc.ID, n.opts.Protocol.Name, err)
	}
	g := newGroup(n, gc.ID, core, sm, st, gm)
	g.initShard()
	return g, nil
}

func (n *Node) closeGroups() {
	for _, g := range n.groups {
		if err := g.store.Close(); err != nil {
			n.log.Warn("close storage", "group", g.id, "err", err)
		}
	}
}

// Ready is closed once the node listens on every address.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Run serves until ctx is cancelled, then stops gracefully: it closes the
// listeners and connections, stops every replica loop after its current
// batch (so whatever was acknowledged is already durable) and closes
// storage. It returns an error if it could not start or a replica failed.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addrs := []string{n.self.Addr}
	if n.opts.Listen != "" {
		addrs[0] = n.opts.Listen
	}
	if a := n.self.ClientAddr; a != "" || n.opts.ClientListen != "" {
		if n.opts.ClientListen != "" {
			a = n.opts.ClientListen
		}
		addrs = append(addrs, a)
	}
	var lc net.ListenConfig
	for _, a := range addrs {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			n.closeListeners()
			n.closeGroups()
			return fmt.Errorf("server: listen on %s: %w", a, err)
		}
		n.listeners = append(n.listeners, l)
	}
	adminAddr := n.self.AdminAddr
	if n.opts.AdminListen != "" {
		adminAddr = n.opts.AdminListen
	}
	if adminAddr != "" {
		l, err := lc.Listen(ctx, "tcp", adminAddr)
		if err != nil {
			n.closeListeners()
			n.closeGroups()
			return fmt.Errorf("server: admin listen on %s: %w", adminAddr, err)
		}
		n.admin = &http.Server{Handler: n.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := n.admin.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("admin server", "err", err)
			}
		}()
	}
	n.log.Info("kvnode started", "listen", addrs, "admin", adminAddr, "protocol", n.opts.Protocol.Name, "groups", len(n.groups), "data", n.opts.DataDir)

	var wg sync.WaitGroup
	for _, p := range n.peers {
		wg.Go(func() { p.run(ctx) })
	}
	errc := make(chan error, len(n.groups))
	var gwg sync.WaitGroup
	for _, g := range n.groups {
		gwg.Go(func() {
			if err := g.run(ctx); err != nil {
				errc <- fmt.Errorf("group %d: %w", g.id, err)
				cancel()
			}
		})
	}
	for _, l := range n.listeners {
		wg.Go(func() { n.accept(ctx, l) })
	}
	close(n.ready)
	<-ctx.Done()
	n.closeListeners()
	if n.admin != nil {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		n.admin.Shutdown(sctx)
		scancel()
	}
	gwg.Wait()
	n.closeConns()
	wg.Wait()
	n.closeGroups()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	n.log.Info("kvnode stopped")
	return errors.Join(errs...)
}

func (n *Node) closeListeners() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.listeners {
		l.Close()
	}
}

func (n *Node) closeConns() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		c.Close()
	}
}

func (n *Node) track(c net.Conn, add bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if add {
		n.conns[c] = struct{}{}
	} else {
		delete(n.conns, c)
	}
}

// Addrs returns the addresses the node listens on (peer first); valid after
// Ready is closed.
func (n *Node) Addrs() []net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []net.Addr
	for _, l := range n.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Status returns every local replica's status.
func (n *Node) Status() map[replica.GroupID]replica.Status {
	out := map[replica.GroupID]replica.Status{}
	for id, g := range n.groups {
		if s := g.status.Load(); s != nil {
			out[id] = *s
		}
	}
	return out
}

// ChangeMembers proposes members as group gid's next configuration at
// this node's replica, which must lead (see replica.Reconfigurer).
func (n *Node) ChangeMembers(ctx context.Context, gid replica.GroupID, members []replica.NodeID) error {
	g, ok := n.groups[gid]
	if !ok {
		return fmt.Errorf("group %d: not hosted on node %d", gid, n.opts.ID)
	}
	ch := make(chan error, 1)
	select {
	case g.calls <- func() { ch <- g.rep.ChangeMembers(members) }:
	case <-ctx.Done():
		return fmt.Errorf("group %d: change members: %w", gid, ctx.Err())
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("group %d: change members: %w", gid, ctx.Err())
	}
}
