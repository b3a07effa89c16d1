// Package dockerbackend runs a test's kvnode cluster as Docker containers:
// it renders the cluster file, launches the nodes through package docker,
// judges their health through their admin endpoints and real requests, and
// gives workload clients kvnode sessions.
package dockerbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/workloads"
)

// Ports every node listens on, at its pinned address.
const (
	PeerPort  = 7000
	AdminPort = 7080
)

// Options configures the cluster.
type Options struct {
	// Binary is the static kvnode executable to run in the containers.
	Binary string
	// Nodes is the number of nodes (n1..nN).
	Nodes int
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
	// backend passes (for example --fsync unsafe-none-test-only).
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
	case o.Groups > 0:
		if _, err := ShardedGroups(o.Nodes, o.Replicas, o.Groups); err != nil {
			return err
		}
	}
	for _, p := range Protocols {
		if o.Protocol == p {
			return nil
		}
	}
	return fmt.Errorf("--replication: unknown protocol %q (want %s)", o.Protocol, strings.Join(Protocols, " or "))
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
// addresses.
func ClusterFile(protocol string, nodes []docker.Node, replicas int) (*config.Cluster, error) {
	c := &config.Cluster{Protocol: protocol, Groups: Groups(len(nodes), replicas)}
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

// Backend implements harness.Backend on Docker.
type Backend struct {
	d    *docker.Docker
	opts Options
	http *http.Client

	mu      sync.Mutex
	cluster *docker.Cluster
	file    *config.Cluster
	image   string
	probes  []*client.Client // one per group, for health checks
	admin   *client.Sharded  // a sharded cluster's controller session
}

var _ harness.Backend = (*Backend)(nil)

// New returns a backend that launches clusters on d.
func New(d *docker.Docker, opts Options) (*Backend, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = time.Second
	}
	return &Backend{d: d, opts: opts, http: &http.Client{Timeout: 2 * time.Second}}, nil
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

// Setup imports the node image, launches the nodes and returns the cluster.
func (b *Backend) Setup(ctx context.Context, dir string) (*harness.Cluster, error) {
	image, err := b.d.EnsureImage(ctx, b.opts.Binary, "kvnode")
	if err != nil {
		return nil, fmt.Errorf("node image: %w", err)
	}
	cl, err := b.d.Launch(ctx, docker.Options{
		RunID:  RunID(dir),
		Dir:    dir,
		Image:  image,
		Nodes:  b.opts.Nodes,
		LazyFS: b.opts.LazyFS,
		Cmd: func(n docker.Node) []string {
			args := []string{"--cluster", "/cluster.json", "--id", strconv.Itoa(n.ID), "--data", "/data"}
			return append(args, b.opts.NodeArgs...)
		},
		Config: func(nodes []docker.Node) ([]byte, error) {
			var f *config.Cluster
			var err error
			if b.opts.Groups > 0 {
				f, err = ShardedClusterFile(b.opts.Protocol, nodes, b.opts.Replicas, b.opts.Groups)
			} else {
				f, err = ClusterFile(b.opts.Protocol, nodes, b.opts.Replicas)
			}
			if err != nil {
				return nil, err
			}
			b.mu.Lock()
			b.file = f
			b.mu.Unlock()
			return json.MarshalIndent(f, "", "  ")
		},
	})
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	b.mu.Lock()
	b.cluster, b.image = cl, image
	file := b.file
	b.mu.Unlock()
	if file == nil {
		return nil, errors.New("launch: the cluster file was never rendered")
	}
	if file.ShardController != 0 {
		return b.setupSharded(cl, file)
	}
	sut := &sut{file: file, attempt: b.opts.AttemptTimeout}
	var probes []*client.Client
	for _, g := range file.Groups {
		c, err := sut.groupClient(g.ID)
		if err != nil {
			return nil, err
		}
		probes = append(probes, c)
	}
	// A cluster left running by an earlier Setup keeps its own probes out
	// of this one's health checks.
	b.mu.Lock()
	old := b.probes
	b.probes = probes
	b.mu.Unlock()
	for _, p := range old {
		p.Close()
	}
	return &harness.Cluster{SUT: sut, Target: b.target(cl, file), Leaders: b.leaders}, nil
}

// healthKey is the key health probes read; workloads never write it.
const healthKey = "chaos-health"

// WaitHealthy polls until every node answers /healthz and every group
// serves a read.
func (b *Backend) WaitHealthy(ctx context.Context) error {
	b.mu.Lock()
	file, probes, admin := b.file, b.probes, b.admin
	b.mu.Unlock()
	if file == nil {
		return errors.New("no cluster")
	}
	var last error
	for {
		if admin != nil {
			last = b.shardedHealthy(ctx, file, admin)
		} else {
			last = b.healthy(ctx, file, probes)
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last problem: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (b *Backend) healthy(ctx context.Context, file *config.Cluster, probes []*client.Client) error {
	for _, n := range file.Nodes {
		if err := b.get(ctx, n.AdminAddr, "/healthz", nil); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	for i, c := range probes {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Get(pctx, healthKey)
		cancel()
		if err != nil {
			return fmt.Errorf("group %d does not serve reads: %w", file.Groups[i].ID, err)
		}
	}
	return nil
}

func (b *Backend) get(ctx context.Context, addr, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
	}
	return nil
}

// nodeStatus is the part of a node's /status the backend reads.
type nodeStatus struct {
	ID     replica.NodeID `json:"id"`
	Groups []struct {
		Group  replica.GroupID `json:"group"`
		Leader replica.NodeID  `json:"leader"`
	} `json:"groups"`
}

// leaders asks every reachable node whom it follows and returns, per
// group, the leader most nodes name.
func (b *Backend) leaders(ctx context.Context) ([]string, error) {
	b.mu.Lock()
	file := b.file
	b.mu.Unlock()
	votes := map[replica.GroupID]map[replica.NodeID]int{}
	for _, n := range file.Nodes {
		var st nodeStatus
		if err := b.get(ctx, n.AdminAddr, "/status", &st); err != nil {
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
	for _, g := range file.Groups {
		best, bestN := replica.NodeID(0), 0
		for id, n := range votes[g.ID] {
			if n > bestN || n == bestN && id < best {
				best, bestN = id, n
			}
		}
		if best == 0 {
			continue
		}
		if n, ok := file.Node(best); ok && !seen[n.Name] {
			seen[n.Name] = true
			out = append(out, n.Name)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no node reports a leader")
	}
	return out, nil
}

// Collect writes each node's container log into the run directory.
func (b *Backend) Collect(ctx context.Context, _ string) error {
	b.mu.Lock()
	cl := b.cluster
	b.mu.Unlock()
	if cl == nil {
		return nil
	}
	return cl.CollectLogs(ctx)
}

// Close removes the containers and the network.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	cl, probes, admin := b.cluster, b.probes, b.admin
	b.cluster, b.probes, b.admin = nil, nil, nil
	b.mu.Unlock()
	if admin != nil {
		admin.Close()
	}
	for _, p := range probes {
		p.Close()
	}
	if cl == nil {
		return nil
	}
	return cl.Close(ctx)
}

// sut opens kvnode sessions; keys are spread over the groups by hash.
type sut struct {
	file    *config.Cluster
	attempt time.Duration
}

func (s *sut) groupClient(g replica.GroupID) (*client.Client, error) {
	cfg, err := client.FromCluster(s.file, g)
	if err != nil {
		return nil, err
	}
	cfg.AttemptTimeout = s.attempt
	return client.New(cfg)
}

// OpenKV returns a session that opens one kvnode client per group lazily.
func (s *sut) OpenKV(context.Context) (workloads.KV, error) {
	return &session{s: s, clients: map[replica.GroupID]*client.Client{}}, nil
}

type session struct {
	s       *sut
	clients map[replica.GroupID]*client.Client
}

// GroupOf returns the group that holds key among the cluster's groups.
func GroupOf(key string, groups []config.Group) replica.GroupID {
	h := fnv.New32a()
	h.Write([]byte(key))
	return groups[int(h.Sum32()%uint32(len(groups)))].ID
}

func (c *session) client(key string) (*client.Client, error) {
	g := GroupOf(key, c.s.file.Groups)
	if cl, ok := c.clients[g]; ok {
		return cl, nil
	}
	cl, err := c.s.groupClient(g)
	if err != nil {
		return nil, workloads.Definite(err)
	}
	c.clients[g] = cl
	return cl, nil
}

// classify marks the kvnode client's certain failures as definite.
func classify(err error) error {
	if err != nil && errors.Is(err, client.ErrFailed) {
		return workloads.Definite(err)
	}
	return err
}

func (c *session) Get(ctx context.Context, key string) (string, bool, error) {
	cl, err := c.client(key)
	if err != nil {
		return "", false, err
	}
	r, err := cl.Get(ctx, key)
	return r.Value, r.Found, classify(err)
}

func (c *session) Put(ctx context.Context, key, value string) error {
	cl, err := c.client(key)
	if err != nil {
		return err
	}
	return classify(cl.Put(ctx, key, value))
}

func (c *session) CAS(ctx context.Context, key, old, new string) (bool, error) {
	cl, err := c.client(key)
	if err != nil {
		return false, err
	}
	r, err := cl.Cas(ctx, key, old, new)
	return r.Swapped, classify(err)
}

func (c *session) Close() error {
	for g, cl := range c.clients {
		cl.Close()
		delete(c.clients, g)
	}
	return nil
}
