// Package dockerbackend runs a test's cluster as Docker containers, for any
// database: it owns what every store shares (the node image, the run's
// network with pinned addresses, container lifecycle, the faults the
// nemesis injects from the host, log collection, teardown) and asks a DB,
// the store's adapter, for what only the store knows. This is Jepsen's
// split between the test's OS/net layer and its db: the adapter says how a
// node is started, when the cluster is healthy and how clients reach it;
// it never touches a container.
//
// A DB supplies:
//   - the image: a static binary, which becomes the image's entrypoint;
//   - per node, its command line and environment, given the node's name,
//     id and pinned address (its data directory is docker.DataDir, a bind
//     mount of the run directory's nodes/<node>/data, on lazyfs when asked);
//   - one file every node reads at docker.ConfigPath, rendered from the
//     placed nodes (kvnode's cluster file);
//   - Open: the connection to the launched cluster, which gives the
//     harness its workload sessions and a health check, and may offer
//     more through optional interfaces: Leaderer (for partition-leader),
//     ClockSetter (the clock faults, through the store's admin interface,
//     since containers share the host's clock), Decorator (faults only the
//     store can inject, such as kvnode's shard reconfiguration) and
//     Collector (final node state saved next to the logs).
//
// The nemesis's container faults (partitions and loss through nftables in
// each node's network namespace, latency through netem, pause, kill,
// lose-unsynced through lazyfs) need nothing from the adapter. Package
// kvnodedb is the adapter for kvnode.
package dockerbackend

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// DB is a database the backend can run: what a node runs and how to
// connect to the running cluster. Every Setup calls ConfigFile and Node
// while it launches the containers and Open once they run, each with the
// placed nodes, so an adapter needs no state of its own between them.
type DB interface {
	// Image names the node image and the static (CGO_ENABLED=0) binary
	// that is its entrypoint.
	Image() Image
	// ConfigFile renders the file every node reads at docker.ConfigPath
	// from the placed nodes; nil mounts none.
	ConfigFile(nodes []docker.Node) ([]byte, error)
	// Node returns how node n runs.
	Node(n docker.Node) NodeSpec
	// Open connects to the launched nodes. It must not wait for them to
	// serve: the backend checks that through Conn.Healthy.
	Open(ctx context.Context, nodes []docker.Node) (Conn, error)
}

// Image is a node image: the binary at Binary on the host, run as /Name.
type Image struct {
	Name   string // lower-case letters, digits, '_', '.', '-'
	Binary string
}

// NodeSpec is how one node runs: the entrypoint's arguments and the
// process's environment (KEY=value).
type NodeSpec struct {
	Args []string
	Env  []string
}

// Conn is a launched cluster as its adapter connects to it.
type Conn interface {
	// SUT opens the workload's sessions.
	SUT() workloads.SUT
	// Healthy returns nil when every node serves requests, else what is
	// wrong; the backend polls it.
	Healthy(ctx context.Context) error
	// Close releases the connection's sessions.
	Close() error
}

// Leaderer is a Conn that can name each replica group's leader, which
// partition-leader needs.
type Leaderer interface {
	Leaders(ctx context.Context) ([]string, error)
}

// ClockSetter is a Conn whose nodes apply a clock offset to their own
// wall-clock reads, set through their admin interface; the clock faults
// need it. The backend's Target decides when to call it (a paused or
// downed node gets its offset when it comes back), so SetNodeClock only
// talks to a running node.
type ClockSetter interface {
	SetNodeClock(ctx context.Context, node docker.Node, offset time.Duration) error
}

// Decorator is a Conn that injects faults of its own besides the
// backend's: it returns the nemesis target to use, which wraps t (keeping
// its methods by embedding it) and adds, say, nemesis.Reconfigurer. Its
// Supports answers for its own kinds and forwards the rest to t.
type Decorator interface {
	Decorate(t *Target) nemesis.Target
}

// Collector is a Conn that saves the nodes' final state next to their
// logs: node n's files belong in dir/<n.Name>/.
type Collector interface {
	Collect(ctx context.Context, nodes []docker.Node, dir string) error
}

// Options configures the backend.
type Options struct {
	// Nodes is the number of nodes (n1..nN).
	Nodes int
	// LazyFS puts every node's data directory on a lazyfs, which the
	// lose-unsynced fault needs (see docker.Options.LazyFS).
	LazyFS bool
	// HealthPoll is the pause between health checks (default 250ms).
	HealthPoll time.Duration
}

// Backend implements harness.Backend on Docker for the database db.
type Backend struct {
	d    *docker.Docker
	db   DB
	opts Options

	mu      sync.Mutex
	cluster *docker.Cluster
	conn    Conn
	image   string
}

var _ harness.Backend = (*Backend)(nil)

// New returns a backend that runs db's clusters on d.
func New(d *docker.Docker, db DB, opts Options) (*Backend, error) {
	if opts.Nodes < 1 || opts.Nodes > 200 {
		return nil, fmt.Errorf("--nodes: %d is outside 1..200", opts.Nodes)
	}
	if opts.HealthPoll <= 0 {
		opts.HealthPoll = 250 * time.Millisecond
	}
	return &Backend{d: d, db: db, opts: opts}, nil
}

// Image returns the node image of the last Setup.
func (b *Backend) Image() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.image
}

// RunID derives the Docker run id from the run directory: its timestamp
// name plus a hash of its full path, which tells apart two tests started in
// the same millisecond while staying within Docker's 64-character limit.
func RunID(dir string) string {
	base := filepath.Base(dir)
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, base)
	if id == "" {
		id = "run"
	}
	h := fnv.New32a()
	h.Write([]byte(dir))
	return fmt.Sprintf("%s-%08x", id, h.Sum32())
}

// Setup imports the node image, launches the nodes, connects to them and
// returns the cluster.
func (b *Backend) Setup(ctx context.Context, dir string) (*harness.Cluster, error) {
	img := b.db.Image()
	image, err := b.d.EnsureImage(ctx, img.Binary, img.Name)
	if err != nil {
		return nil, fmt.Errorf("node image: %w", err)
	}
	cl, err := b.d.Launch(ctx, docker.Options{
		RunID:  RunID(dir),
		Dir:    dir,
		Image:  image,
		Nodes:  b.opts.Nodes,
		LazyFS: b.opts.LazyFS,
		Cmd:    func(n docker.Node) []string { return b.db.Node(n).Args },
		Env:    func(n docker.Node) []string { return b.db.Node(n).Env },
		Config: b.db.ConfigFile,
	})
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	// The cluster is the backend's from here, so that Close removes it
	// whatever fails next.
	b.mu.Lock()
	old := b.conn
	b.cluster, b.conn, b.image = cl, nil, image
	b.mu.Unlock()
	// A cluster left running by an earlier Setup keeps its own sessions
	// out of this one's health checks.
	if old != nil {
		old.Close()
	}
	conn, err := b.db.Open(ctx, cl.Members())
	if err != nil {
		return nil, fmt.Errorf("connect to the nodes: %w", err)
	}
	b.mu.Lock()
	b.conn = conn
	b.mu.Unlock()
	t := newTarget(cl, conn)
	var target nemesis.Target = t
	if d, ok := conn.(Decorator); ok {
		target = d.Decorate(t)
	}
	out := &harness.Cluster{SUT: conn.SUT(), Target: target}
	if l, ok := conn.(Leaderer); ok {
		out.Leaders = l.Leaders
	}
	return out, nil
}

// WaitHealthy polls the adapter's health check until it passes.
func (b *Backend) WaitHealthy(ctx context.Context) error {
	b.mu.Lock()
	conn := b.conn
	b.mu.Unlock()
	if conn == nil {
		return errors.New("no cluster")
	}
	for {
		last := conn.Healthy(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last problem: %v)", ctx.Err(), last)
		case <-time.After(b.opts.HealthPoll):
		}
	}
}

// Collect writes each node's container log into dir/<node>/log and, when
// the adapter is a Collector, its final state beside it.
func (b *Backend) Collect(ctx context.Context, dir string) error {
	b.mu.Lock()
	cl, conn := b.cluster, b.conn
	b.mu.Unlock()
	if cl == nil {
		return nil
	}
	err := cl.CollectLogs(ctx)
	if c, ok := conn.(Collector); ok {
		err = errors.Join(err, c.Collect(ctx, cl.Members(), dir))
	}
	return err
}

// Close closes the adapter's connection and removes the containers and
// the network.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	cl, conn := b.cluster, b.conn
	b.cluster, b.conn = nil, nil
	b.mu.Unlock()
	var errs []error
	if conn != nil {
		if err := conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the connection to the nodes: %w", err))
		}
	}
	if cl != nil {
		errs = append(errs, cl.Close(ctx))
	}
	return errors.Join(errs...)
}
