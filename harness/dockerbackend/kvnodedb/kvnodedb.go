// Package kvnodedb is the Docker backend's adapter for kvnode: it turns a
// cluster shape (nodes, replicas, protocol, shard groups) into kvnode's
// cluster file and command line, judges health through the nodes' admin
// endpoints and real reads, gives workloads kvnode sessions, names group
// leaders, shifts node clocks through POST /clock-offset, saves each
// node's final /status, and adds the faults only kvnode can inject to the
// backend's target (dockerbackend.Decorator): the shard controller's
// reconfig, and membership changes of replica groups that have spare
// nodes (through client.Admin and each node's POST /membership). Containers,
// network and every other fault belong to package dockerbackend, which
// runs another store with another adapter.
package kvnodedb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness/dockerbackend"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// Ports every node listens on, at its pinned address.
const (
	PeerPort  = 7000
	AdminPort = 7080
)

// Options is the shape of a kvnode cluster in Docker.
type Options struct {
	// Binary is the static kvnode executable to run in the containers.
	Binary string
	// Nodes is the number of nodes (n1..nN) the replica groups are laid
	// over.
	Nodes int
	// Spares is the number of extra nodes, numbered after Nodes, that
	// host every replica group outside its initial configuration: the
	// membership fault adds them (their containers run from the start).
	// They need a protocol with membership changes and no sharding.
	Spares int
	// Replicas is the number of nodes in each replica group.
	Replicas int
	// Protocol is the replication protocol: "paxos" or "vr".
	Protocol string
	// Groups, when positive, asks for a sharded cluster of that many
	// shard groups of Replicas nodes each plus a shard controller group
	// (see ShardedGroups); zero keeps the hash-placed layout of Groups.
	Groups int
	// Shards is the shard count of a sharded cluster; zero or
	// shardctl.NShards, the count kvnode is built with.
	Shards int
	// AttemptTimeout bounds a client's wait for one node before it tries
	// another (default 1s).
	AttemptTimeout time.Duration
	// LazyFS puts every node's data directory on a lazyfs, which the
	// lose-unsynced fault needs (see docker.Options.LazyFS).
	LazyFS bool
	// NodeArgs are extra kvnode flags for every node, after the ones the
	// adapter passes (for example --fsync unsafe-none-test-only).
	NodeArgs []string
}

// Protocols lists the replication protocols a cluster file may name.
var Protocols = []string{"paxos", "vr"}

// Validate reports the first bad option, naming it as the chaos flag does.
func (o Options) Validate() error {
	switch {
	case o.Nodes < 1 || o.Nodes > 200:
		return fmt.Errorf("--nodes: %d is outside 1..200", o.Nodes)
	case o.Replicas < 1 || o.Replicas > o.Nodes:
		return fmt.Errorf("--replicas: %d is outside 1..%d (the node count)", o.Replicas, o.Nodes)
	case o.Groups < 0 || o.Groups > shardctl.NShards:
		return fmt.Errorf("--groups: %d is outside 0..%d (0: no shard controller)", o.Groups, shardctl.NShards)
	case o.Shards != 0 && o.Shards != shardctl.NShards:
		return fmt.Errorf("--shards: kvnode has a fixed %d shards, got %d", shardctl.NShards, o.Shards)
	case o.Shards != 0 && o.Groups == 0:
		return fmt.Errorf("--shards: needs --groups (a sharded cluster)")
	case o.Spares < 0 || o.Nodes+o.Spares > 200:
		return fmt.Errorf("--spares: %d is outside 0..%d (200 nodes in all)", o.Spares, 200-o.Nodes)
	case o.Groups > 0:
		if _, err := ShardedGroups(o.Nodes, o.Replicas, o.Groups); err != nil {
			return err
		}
	}
	if !slices.Contains(Protocols, o.Protocol) {
		return fmt.Errorf("--replication: unknown protocol %q (want %s)", o.Protocol, strings.Join(Protocols, " or "))
	}
	if o.Spares > 0 {
		if err := MembershipPossible(o.Protocol, o.Groups); err != nil {
			return fmt.Errorf("--spares: %w", err)
		}
	}
	return nil
}

// MembershipPossible says why a cluster of the protocol with that many
// shard groups cannot change its replica groups' membership, or returns
// nil. The protocol's core is the authority (protocols.Reconfigurable).
func MembershipPossible(protocol string, groups int) error {
	if groups > 0 {
		// The shard controller keeps each shard group's members for shard
		// hand-off; it does not follow membership changes yet.
		return errors.New("membership changes need --groups 0: the shard controller does not follow a shard group's membership yet")
	}
	ok, err := protocols.Reconfigurable(protocol)
	if err != nil {
		return fmt.Errorf("--replication: %w", err)
	}
	if !ok {
		return fmt.Errorf("the %s protocol cannot change a group's membership yet; use --replication paxos", protocol)
	}
	return nil
}

// New returns a Docker backend that runs kvnode clusters of the given
// shape on d.
func New(d *docker.Docker, opts Options) (*dockerbackend.Backend, error) {
	db, err := NewDB(opts)
	if err != nil {
		return nil, err
	}
	return dockerbackend.New(d, db, dockerbackend.Options{Nodes: opts.Nodes + opts.Spares, LazyFS: opts.LazyFS})
}

// DB is kvnode as a dockerbackend.DB.
type DB struct {
	opts Options
	http *http.Client
}

var _ dockerbackend.DB = (*DB)(nil)

// NewDB returns the adapter for clusters of the given shape.
func NewDB(opts Options) (*DB, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = time.Second
	}
	return &DB{opts: opts, http: &http.Client{Timeout: 2 * time.Second}}, nil
}

// Image is the kvnode binary, run as /kvnode.
func (db *DB) Image() dockerbackend.Image {
	return dockerbackend.Image{Name: "kvnode", Binary: db.opts.Binary}
}

// Node runs kvnode on the cluster file with node n's id, then NodeArgs.
func (db *DB) Node(n docker.Node) dockerbackend.NodeSpec {
	args := []string{"--cluster", docker.ConfigPath, "--id", strconv.Itoa(n.ID), "--data", docker.DataDir}
	return dockerbackend.NodeSpec{Args: append(args, db.opts.NodeArgs...)}
}

// ConfigFile renders the cluster file.
func (db *DB) ConfigFile(nodes []docker.Node) ([]byte, error) {
	f, err := db.clusterFile(nodes)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(f, "", "  ")
}

func (db *DB) clusterFile(nodes []docker.Node) (*config.Cluster, error) {
	if db.opts.Groups > 0 {
		return ShardedClusterFile(db.opts.Protocol, nodes, db.opts.Replicas, db.opts.Groups)
	}
	return ClusterFile(db.opts.Protocol, nodes, db.opts.Replicas, db.opts.Spares)
}

// Open connects to the nodes through the cluster file ConfigFile gave
// them: a probe session per replica group, or for a sharded cluster a
// shard controller session.
func (db *DB) Open(_ context.Context, nodes []docker.Node) (dockerbackend.Conn, error) {
	file, err := db.clusterFile(nodes)
	if err != nil {
		return nil, err
	}
	c := &conn{file: file, http: db.http, attempt: db.opts.AttemptTimeout}
	if file.ShardController != 0 {
		c.admin, err = client.NewSharded(client.ShardedConfig{Cluster: file, Controller: file.ShardController, AttemptTimeout: c.attempt})
		if err != nil {
			return nil, fmt.Errorf("shard controller session: %w", err)
		}
		return &shardedConn{conn: c, reconfig: NewReconfigurer(c.admin.Admin, shardGroups(file))}, nil
	}
	if db.opts.Spares > 0 {
		c.members = true
	}
	s := &sut{file: file, attempt: c.attempt}
	for _, g := range file.Groups {
		p, err := s.groupClient(g.ID)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.probes = append(c.probes, p)
	}
	return c, nil
}

// Groups lays replica groups over nodes 1..n: a single group when every
// node is a replica, otherwise n groups, group g holding nodes g, g+1, ...,
// g+replicas-1 (wrapping around), so every node carries the same load and
// every node is hurt when a partition cuts it off.
func Groups(nodes, replicas int) []config.Group {
	if replicas >= nodes {
		g := config.Group{ID: 1}
		for i := 1; i <= nodes; i++ {
			g.Members = append(g.Members, replica.NodeID(i))
		}
		return []config.Group{g}
	}
	out := make([]config.Group, nodes)
	for g := range nodes {
		out[g].ID = replica.GroupID(g + 1)
		for j := range replicas {
			out[g].Members = append(out[g].Members, replica.NodeID((g+j)%nodes+1))
		}
	}
	return out
}

// ClusterFile renders the cluster file for nodes placed at the given
// addresses: the groups of Groups over all but the last spares nodes,
// and those spares as spares of every group.
func ClusterFile(protocol string, nodes []docker.Node, replicas, spares int) (*config.Cluster, error) {
	if spares < 0 || spares >= len(nodes) {
		return nil, fmt.Errorf("cluster file: %d spares of %d nodes", spares, len(nodes))
	}
	c := &config.Cluster{Protocol: protocol, Groups: Groups(len(nodes)-spares, replicas)}
	for i := range c.Groups {
		for _, n := range nodes[len(nodes)-spares:] {
			c.Groups[i].Spares = append(c.Groups[i].Spares, replica.NodeID(n.ID))
		}
	}
	for _, n := range nodes {
		c.Nodes = append(c.Nodes, config.Node{
			ID:        replica.NodeID(n.ID),
			Name:      n.Name,
			Addr:      netip.AddrPortFrom(n.IP, PeerPort).String(),
			AdminAddr: netip.AddrPortFrom(n.IP, AdminPort).String(),
		})
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	return c, nil
}

// conn is a launched kvnode cluster of hash-placed replica groups.
type conn struct {
	file    *config.Cluster
	http    *http.Client
	attempt time.Duration
	probes  []*client.Client // one per group, for health checks
	admin   *client.Sharded  // a sharded cluster's controller session
	members bool             // the groups have spares: membership changes
}

var (
	_ dockerbackend.Leaderer    = (*conn)(nil)
	_ dockerbackend.ClockSetter = (*conn)(nil)
	_ dockerbackend.Collector   = (*conn)(nil)
	_ dockerbackend.Decorator   = (*conn)(nil)
)

// healthKey is the key health probes read; workloads never write it.
const healthKey = "chaos-health"

// SUT opens kvnode sessions; keys are spread over the groups by hash.
func (c *conn) SUT() workloads.SUT { return &sut{file: c.file, attempt: c.attempt} }

// Healthy checks that every node answers /healthz and every group serves
// a read; with spares, also that no group is amid a membership change, so
// that a run ends in a configuration that is in force.
func (c *conn) Healthy(ctx context.Context) error {
	if err := c.nodesUp(ctx); err != nil {
		return err
	}
	if c.members {
		if err := c.settled(ctx); err != nil {
			return err
		}
	}
	for i, p := range c.probes {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := p.Get(pctx, healthKey)
		cancel()
		if err != nil {
			return fmt.Errorf("group %d does not serve reads: %w", c.file.Groups[i].ID, err)
		}
	}
	return nil
}

func (c *conn) nodesUp(ctx context.Context) error {
	for _, n := range c.file.Nodes {
		if err := c.adminAPI().Healthy(ctx, n.AdminAddr); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

// Close closes the probe and controller sessions.
func (c *conn) Close() error {
	for _, p := range c.probes {
		p.Close()
	}
	if c.admin != nil {
		return c.admin.Close()
	}
	return nil
}

// StatusFile is the name of the node's final /status in its store
// directory.
const StatusFile = "status.json"

// Collect saves each node's /status (its groups with their leader, view
// or ballot and log positions, and its clock offset) as StatusFile beside
// its log: the state the run left each node in.
func (c *conn) Collect(ctx context.Context, _ []docker.Node, dir string) error {
	var errs []error
	for _, n := range c.file.Nodes {
		body, err := c.adminAPI().Status(ctx, n.AdminAddr)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, n.Name, StatusFile), body, 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("final status of %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// nodeStatus is the part of a node's /status the adapter reads.
type nodeStatus struct {
	ID     replica.NodeID `json:"id"`
	Groups []struct {
		Group  replica.GroupID `json:"group"`
		Leader replica.NodeID  `json:"leader"`
	} `json:"groups"`
}

// Leaders asks every reachable node whom it follows and returns, per
// group, the leader most nodes name.
func (c *conn) Leaders(ctx context.Context) ([]string, error) {
	votes := map[replica.GroupID]map[replica.NodeID]int{}
	for _, n := range c.file.Nodes {
		var st nodeStatus
		body, err := c.adminAPI().Status(ctx, n.AdminAddr)
		if err != nil || json.Unmarshal(body, &st) != nil {
			continue
		}
		for _, g := range st.Groups {
			if g.Leader == 0 {
				continue
			}
			if votes[g.Group] == nil {
				votes[g.Group] = map[replica.NodeID]int{}
			}
			votes[g.Group][g.Leader]++
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, g := range c.file.Groups {
		best, bestN := replica.NodeID(0), 0
		for id, n := range votes[g.ID] {
			if n > bestN || n == bestN && id < best {
				best, bestN = id, n
			}
		}
		if best == 0 {
			continue
		}
		if n, ok := c.file.Node(best); ok && !seen[n.Name] {
			seen[n.Name] = true
			out = append(out, n.Name)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no node reports a leader")
	}
	return out, nil
}

// SetNodeClock sets the offset node n adds to its wall-clock reads,
// through POST /clock-offset on its admin port.
func (c *conn) SetNodeClock(ctx context.Context, n docker.Node, offset time.Duration) error {
	return c.adminAPI().SetClockOffset(ctx, netip.AddrPortFrom(n.IP, AdminPort).String(), offset)
}

// shardedConn is a launched sharded kvnode cluster: its controller
// session checks health and drives the reconfig fault.
type shardedConn struct {
	*conn
	reconfig *Reconfigurer
}

var _ dockerbackend.Decorator = (*shardedConn)(nil)

// SUT opens sharded sessions that route by the controller's
// configuration.
func (c *shardedConn) SUT() workloads.SUT {
	return &shardedSUT{file: c.file, controller: c.file.ShardController, attempt: c.attempt}
}

// Healthy checks every node's /healthz, makes sure every shard group has
// joined the configuration, and runs a read through the shard groups.
func (c *shardedConn) Healthy(ctx context.Context) error {
	if err := c.nodesUp(ctx); err != nil {
		return err
	}
	return shardsServe(ctx, c.admin, c.reconfig)
}

// Decorate adds the reconfig fault to the backend's target.
func (c *shardedConn) Decorate(t *dockerbackend.Target) nemesis.Target {
	return reconfigTarget{Target: t, Reconfigurer: c.reconfig}
}
