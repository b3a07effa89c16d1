package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaoskv/chaos/docker/lazyfs"
	"github.com/chaoskv/chaos/nemesis"
)

// Node is one member of a cluster as the backend placed it.
type Node struct {
	Name string     // n1, n2, ...; also the container's hostname and DNS alias
	ID   int        // 1-based
	IP   netip.Addr // pinned address on the run's network
}

// Paths inside every node container.
const (
	// DataDir is where a node's data directory (Dir/nodes/<node>/data on
	// the host, or its lazyfs) is mounted.
	DataDir = "/data"
	// ConfigPath is where the file Options.Config renders is mounted,
	// read-only.
	ConfigPath = "/cluster.json"
)

// Options configures Launch.
type Options struct {
	// RunID names the run; every object is labelled chaos.run=<RunID> and
	// named chaos-<RunID>-... Letters, digits, '_', '.' and '-'.
	RunID string
	// Dir is the run's store directory (store/<test>/<ts>). Node n keeps
	// its data in Dir/nodes/n/data and its log in Dir/nodes/n/log.
	Dir string
	// Image is the node image, from EnsureImage.
	Image string
	// Nodes is the number of nodes, named n1..nN.
	Nodes int
	// Subnet pins the run network's subnet; the zero value picks a free
	// /24 from 10.100.0.0-10.199.255.0 that no network or host interface
	// uses.
	Subnet netip.Prefix
	// Config renders the cluster file every node reads (mounted read-only
	// at ConfigPath) from the nodes' names and addresses. Nil mounts no
	// cluster file.
	Config func(nodes []Node) ([]byte, error)
	// Cmd returns a node's container command (the entrypoint's
	// arguments); nil runs the entrypoint without arguments.
	Cmd func(n Node) []string
	// Env returns a node's environment variables (KEY=value); nil sets
	// none.
	Env func(n Node) []string
	// LazyFS puts each node's data directory on a lazyfs mounted on the
	// host (at Dir/nodes/n/lazyfs, over Dir/nodes/n/data) and bind-mounts
	// that into the container, so that LoseUnsynced can drop what the node
	// never synced. It needs FUSE (lazyfs.Available) and cannot be
	// combined with LeaveRunning: the file system is served by this
	// process.
	LazyFS bool
	// LeaveRunning keeps the containers and network after Close (logs are
	// still collected); Clean removes them later.
	LeaveRunning bool
	// Log receives progress messages; nil means slog.Default().
	Log *slog.Logger
}

var runIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// member is a node and its container.
type member struct {
	Node
	container string // id
	dir       string // Dir/nodes/<name>

	mu  sync.Mutex // serialises lifecycle operations on this node
	pid int        // 0 while not running

	lfs *lazyfs.FS // the data directory's lazyfs, with Options.LazyFS
}

// Cluster is a running set of node containers on their own network. It
// implements nemesis.Target. Its methods are safe for concurrent use.
type Cluster struct {
	d       *Docker
	opts    Options
	log     *slog.Logger
	network string // id
	subnet  netip.Prefix
	members []*member

	// faults is the network fault state every running node must carry.
	fmu     sync.Mutex
	grudge  nemesis.Grudge
	loss    int
	latency nemesis.LatencySpec

	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

var (
	_ nemesis.Target    = (*Cluster)(nil)
	_ nemesis.Checker   = (*Cluster)(nil)
	_ nemesis.DiskLoser = (*Cluster)(nil)
)

// Launch creates the run's network and one started container per node. On
// failure everything it created is removed again.
func (d *Docker) Launch(ctx context.Context, opts Options) (*Cluster, error) {
	if !runIDPattern.MatchString(opts.RunID) {
		return nil, fmt.Errorf("run id %q: want 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit", opts.RunID)
	}
	if opts.Nodes < 1 || opts.Nodes > 200 {
		return nil, fmt.Errorf("cluster size %d: want 1..200 nodes", opts.Nodes)
	}
	if opts.Image == "" {
		return nil, fmt.Errorf("no node image given")
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("no run directory given")
	}
	if opts.LazyFS && opts.LeaveRunning {
		return nil, fmt.Errorf("a cluster on lazyfs cannot be left running: its file systems are served by this process")
	}
	if opts.LazyFS {
		if err := lazyfs.Available(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("run directory %q: %w", opts.Dir, err)
	}
	opts.Dir = dir
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	c := &Cluster{d: d, opts: opts, log: opts.Log.With("run", opts.RunID)}
	if err := c.launch(ctx); err != nil {
		// A half-built cluster is never left behind, whatever LeaveRunning says.
		c.opts.LeaveRunning = false
		if cerr := c.Close(ctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after failed launch: %w", cerr))
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) labels(node string) map[string]string {
	l := map[string]string{LabelRun: c.opts.RunID}
	if node != "" {
		l[LabelNode] = node
	}
	return l
}

func (c *Cluster) launch(ctx context.Context) error {
	start := time.Now()
	if err := c.createNetwork(ctx); err != nil {
		return err
	}
	for i := 1; i <= c.opts.Nodes; i++ {
		ip, err := nodeAddr(c.subnet, i)
		if err != nil {
			return err
		}
		name := "n" + strconv.Itoa(i)
		c.members = append(c.members, &member{Node: Node{Name: name, ID: i, IP: ip},
			dir: filepath.Join(c.opts.Dir, "nodes", name)})
	}
	var conf []byte
	if c.opts.Config != nil {
		var err error
		if conf, err = c.opts.Config(c.Members()); err != nil {
			return fmt.Errorf("render cluster file: %w", err)
		}
	}
	err := c.each(func(m *member) error { return c.createContainer(ctx, m, conf) })
	if err != nil {
		return err
	}
	// No fault exists before Launch returns, so the fresh namespaces need
	// no rules; opening each one checks early that faults will be possible.
	err = c.each(func(m *member) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if err := c.startContainer(ctx, m); err != nil {
			return err
		}
		f, err := openNetNS(m.pid)
		if err != nil {
			return fmt.Errorf("node %s: %w", m.Name, err)
		}
		return f.Close()
	})
	if err != nil {
		return err
	}
	c.log.Info("cluster up", "nodes", len(c.members), "subnet", c.subnet, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// createNetwork creates the run's bridge network on the pinned subnet or
// the first free candidate, moving on when another run takes a candidate
// between our look and our create.
func (c *Cluster) createNetwork(ctx context.Context) error {
	name := "chaos-" + c.opts.RunID
	var cands []netip.Prefix
	if c.opts.Subnet.IsValid() {
		if !c.opts.Subnet.Addr().Is4() || c.opts.Subnet.Bits() > 26 {
			return fmt.Errorf("subnet %s: want an IPv4 prefix of /26 or larger", c.opts.Subnet)
		}
		cands = []netip.Prefix{c.opts.Subnet.Masked()}
	} else {
		used, err := c.d.e.Subnets(ctx)
		if err != nil {
			return fmt.Errorf("list networks: %w", err)
		}
		used = append(used, hostPrefixes()...)
		if cands = freeSubnets(c.opts.RunID, used, 8); len(cands) == 0 {
			return fmt.Errorf("no free /24 left in 10.100.0.0-10.199.255.0; remove stale networks (chaos clean) or pass a subnet")
		}
	}
	var errs []error
	for _, s := range cands {
		id, err := c.d.e.NetworkCreate(ctx, networkSpec{Name: name, Subnet: s, Gateway: gatewayAddr(s), Labels: c.labels("")})
		if err == nil {
			c.network, c.subnet = id, s
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
		if !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	return fmt.Errorf("create network %s: %w", name, errors.Join(errs...))
}

func (c *Cluster) createContainer(ctx context.Context, m *member, conf []byte) error {
	data := filepath.Join(m.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("node %s: %w", m.Name, err)
	}
	if c.opts.LazyFS {
		mnt := filepath.Join(m.dir, "lazyfs")
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			return fmt.Errorf("node %s: %w", m.Name, err)
		}
		lfs, err := lazyfs.Mount(data, mnt)
		if err != nil {
			return fmt.Errorf("node %s: %w", m.Name, err)
		}
		m.lfs = lfs
		data = mnt
	}
	binds := []string{data + ":" + DataDir}
	if conf != nil {
		path := filepath.Join(m.dir, "cluster.json")
		if err := os.WriteFile(path, conf, 0o644); err != nil {
			return fmt.Errorf("node %s: write cluster file: %w", m.Name, err)
		}
		binds = append(binds, path+":"+ConfigPath+":ro")
	}
	var cmd, env []string
	if c.opts.Cmd != nil {
		cmd = c.opts.Cmd(m.Node)
	}
	if c.opts.Env != nil {
		env = c.opts.Env(m.Node)
	}
	id, err := c.d.e.ContainerCreate(ctx, containerSpec{
		Name: c.containerName(m.Name), Image: c.opts.Image, Hostname: m.Name,
		Cmd: cmd, Env: env, Labels: c.labels(m.Name), Binds: binds,
		Network: "chaos-" + c.opts.RunID, IP: m.IP, Aliases: []string{m.Name},
	})
	if err != nil {
		return fmt.Errorf("create container for %s: %w", m.Name, err)
	}
	m.container = id
	return nil
}

func (c *Cluster) containerName(node string) string { return "chaos-" + c.opts.RunID + "-" + node }

// each runs fn for every member concurrently and joins the errors.
func (c *Cluster) each(fn func(m *member) error) error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(m)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Members returns the nodes with their addresses.
func (c *Cluster) Members() []Node {
	out := make([]Node, len(c.members))
	for i, m := range c.members {
		out[i] = m.Node
	}
	return out
}

// Subnet returns the run network's subnet.
func (c *Cluster) Subnet() netip.Prefix { return c.subnet }

// Nodes returns the node names n1..nN.
func (c *Cluster) Nodes() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.Name
	}
	return out
}

func (c *Cluster) member(name string) (*member, error) {
	for _, m := range c.members {
		if m.Name == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no node %q in this cluster (nodes: %s)", name, strings.Join(c.Nodes(), ", "))
}

// IP returns a node's address.
func (c *Cluster) IP(node string) (netip.Addr, error) {
	m, err := c.member(node)
	if err != nil {
		return netip.Addr{}, err
	}
	return m.IP, nil
}

// PID returns the host pid of a node's main process, or 0 when the node is
// not running.
func (c *Cluster) PID(node string) (int, error) {
	m, err := c.member(node)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pid, nil
}

// startContainer starts m's container and records its pid. m.mu must be
// held.
func (c *Cluster) startContainer(ctx context.Context, m *member) error {
	if err := c.d.e.ContainerStart(ctx, m.container); err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	st, err := c.d.e.ContainerInspect(ctx, m.container)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", m.Name, err)
	}
	if !st.Running || st.Pid == 0 {
		return fmt.Errorf("%s exited right after start; see its log (%s)", m.Name, filepath.Join(m.dir, "log"))
	}
	if err := checkOwner(st.Pid, m.container); err != nil {
		return fmt.Errorf("node %s: %w", m.Name, err)
	}
	m.pid = st.Pid
	return nil
}

// applyLocked puts the current network faults into m's namespace. c.fmu
// and m.mu must be held, in that order (the order every path takes them).
func (c *Cluster) applyLocked(m *member) error {
	if err := applyRules(m.pid, c.rulesFor(m.Name)); err != nil {
		return fmt.Errorf("network faults of %s: %w", m.Name, err)
	}
	if !c.latency.IsZero() {
		if err := setLatency(m.pid, c.latency.Delay, c.latency.Jitter); err != nil {
			return fmt.Errorf("latency of %s: %w", m.Name, err)
		}
	}
	return nil
}

// rulesFor returns node's share of the fault state. c.fmu must be held.
func (c *Cluster) rulesFor(node string) netRules {
	r := netRules{LossPercent: c.loss}
	for _, from := range c.grudge[node] {
		if m, err := c.member(from); err == nil {
			r.Drop = append(r.Drop, m.IP)
		}
	}
	slices.SortFunc(r.Drop, func(a, b netip.Addr) int { return a.Compare(b) })
	return r
}

// applyAll writes the fault state into every running node. c.fmu must be
// held.
func (c *Cluster) applyAll() error {
	return c.each(func(m *member) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.pid == 0 {
			return nil // applied when it starts
		}
		err := applyRules(m.pid, c.rulesFor(m.Name))
		if err != nil && c.exitedLocked(m) {
			return nil // it crashed on its own; Start will apply the rules
		}
		if err != nil {
			return fmt.Errorf("network faults of %s: %w", m.Name, err)
		}
		return nil
	})
}

// exitedLocked reports whether m's container has stopped since we last
// looked, and forgets its pid if so. m.mu must be held.
func (c *Cluster) exitedLocked(m *member) bool {
	st, err := c.d.e.ContainerInspect(context.Background(), m.container)
	if err != nil || st.Running {
		return false
	}
	m.pid = 0
	return true
}

// Partition makes each node drop packets from the nodes its grudge names;
// an empty grudge ends the partition.
func (c *Cluster) Partition(ctx context.Context, g nemesis.Grudge) error {
	if err := g.Validate(c.Nodes()); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.grudge = make(nemesis.Grudge, len(g))
	for k, v := range g {
		c.grudge[k] = slices.Clone(v)
	}
	return c.applyAll()
}

// Loss makes every node drop percent of its incoming packets (loopback
// excepted) at random; 0 stops it. A round trip between two nodes thus
// survives with probability (1-p)^2.
func (c *Cluster) Loss(ctx context.Context, percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("loss: percentage %d outside 0..100", percent)
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.loss = percent
	return c.applyAll()
}

// Latency delays every node's outgoing packets with a netem qdisc; the
// zero value removes it. On kernels without netem it returns ErrNoNetem
// and changes nothing.
func (c *Cluster) Latency(ctx context.Context, l nemesis.LatencySpec) error {
	if l.Delay < 0 || l.Jitter < 0 {
		return fmt.Errorf("latency: negative delay or jitter %v±%v", l.Delay, l.Jitter)
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if l.IsZero() && c.latency.IsZero() {
		return nil
	}
	err := c.each(func(m *member) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.pid == 0 {
			return nil
		}
		err := setLatency(m.pid, l.Delay, l.Jitter)
		if err != nil && !errors.Is(err, ErrNoNetem) && c.exitedLocked(m) {
			return nil
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNoNetem) {
			return ErrNoNetem
		}
		return fmt.Errorf("latency: %w", err)
	}
	c.latency = l
	return nil
}

// Heal ends every network fault.
func (c *Cluster) Heal(ctx context.Context) error {
	var errs []error
	c.fmu.Lock()
	c.grudge, c.loss = nil, 0
	errs = append(errs, c.applyAll())
	c.fmu.Unlock()
	errs = append(errs, c.Latency(ctx, nemesis.LatencySpec{}))
	return errors.Join(errs...)
}

// opTimeout bounds one node operation.
const opTimeout = 60 * time.Second

// opContext detaches a node operation from the caller's cancellation: a
// kill or start cut off half-way (the request sent, the answer not awaited)
// would leave the node in a state nobody knows, and a later Start could
// see a container that is about to die as running.
func opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
}

// Kill SIGKILLs a node's container and returns once the engine reports it
// stopped. Once begun it completes even if ctx is cancelled.
func (c *Cluster) Kill(ctx context.Context, node string) error {
	m, err := c.member(node)
	if err != nil {
		return err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := c.d.e.ContainerInspect(ctx, m.container)
	if err != nil {
		return fmt.Errorf("kill %s: %w", node, err)
	}
	if st.Running {
		if err := c.d.e.ContainerKill(ctx, m.container, "SIGKILL"); err != nil {
			return fmt.Errorf("kill %s: %w", node, err)
		}
	}
	if err := c.d.e.ContainerWaitNotRunning(ctx, m.container); err != nil {
		return fmt.Errorf("kill %s: wait for it to die: %w", node, err)
	}
	m.pid = 0
	return nil
}

// Start starts a stopped node and re-applies its network faults before
// returning (they died with its old namespace); a node already running is
// left as it is. Once begun it completes even if ctx is cancelled.
func (c *Cluster) Start(ctx context.Context, node string) error {
	m, err := c.member(node)
	if err != nil {
		return err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	c.fmu.Lock()
	defer c.fmu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := c.d.e.ContainerInspect(ctx, m.container)
	if err != nil {
		return fmt.Errorf("start %s: %w", node, err)
	}
	if st.Running {
		m.pid = st.Pid
		return nil
	}
	if err := c.startContainer(ctx, m); err != nil {
		return err
	}
	return c.applyLocked(m)
}

// Pause freezes a node's processes with the cgroup freezer. Once begun it
// completes even if ctx is cancelled.
func (c *Cluster) Pause(ctx context.Context, node string) error {
	m, err := c.member(node)
	if err != nil {
		return err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := c.d.e.ContainerPause(ctx, m.container); err != nil {
		return fmt.Errorf("pause %s: %w", node, err)
	}
	return nil
}

// Resume thaws a paused node; a node that is not paused is left alone.
// Once begun it completes even if ctx is cancelled.
func (c *Cluster) Resume(ctx context.Context, node string) error {
	m, err := c.member(node)
	if err != nil {
		return err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := c.d.e.ContainerInspect(ctx, m.container)
	if err != nil {
		return fmt.Errorf("resume %s: %w", node, err)
	}
	if !st.Paused {
		return nil
	}
	if err := c.d.e.ContainerUnpause(ctx, m.container); err != nil {
		return fmt.Errorf("resume %s: %w", node, err)
	}
	return nil
}

// CollectLogs writes each node's container output (stdout and stderr,
// timestamped, in order) to Dir/nodes/<node>/log, replacing what an
// earlier call wrote.
func (c *Cluster) CollectLogs(ctx context.Context) error {
	return c.each(func(m *member) error {
		if m.container == "" {
			return nil
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("logs of %s: %w", m.Name, err)
		}
		f, err := os.Create(filepath.Join(m.dir, "log"))
		if err != nil {
			return fmt.Errorf("logs of %s: %w", m.Name, err)
		}
		err = c.d.e.ContainerLogs(ctx, m.container, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("logs of %s: %w", m.Name, err)
		}
		return nil
	})
}

// closeTimeout bounds teardown when the caller's context is already done.
const closeTimeout = 60 * time.Second

// Close collects the nodes' logs and, unless LeaveRunning, removes the
// containers and the network. It is idempotent and safe to call
// concurrently, e.g. from a signal handler while a test is still running:
// later callers wait for the first and get its result. It ignores the
// cancellation of ctx (teardown after Ctrl-C must still happen) but keeps
// its values, and gives up after a minute.
func (c *Cluster) Close(ctx context.Context) error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	start := time.Now()
	var errs []error
	if err := c.CollectLogs(ctx); err != nil {
		errs = append(errs, err)
	}
	if c.opts.LeaveRunning {
		c.log.Info("cluster left running", "network", "chaos-"+c.opts.RunID)
		c.closeErr = errors.Join(errs...)
		return c.closeErr
	}
	errs = append(errs, c.each(func(m *member) error {
		if m.container == "" {
			return nil
		}
		if err := c.d.e.ContainerRemove(ctx, m.container); err != nil {
			return fmt.Errorf("remove container of %s: %w", m.Name, err)
		}
		return nil
	}))
	if c.network != "" {
		if err := c.d.e.NetworkRemove(ctx, c.network); err != nil {
			errs = append(errs, fmt.Errorf("remove network chaos-%s: %w", c.opts.RunID, err))
		}
	}
	// A create cut short by a cancellation can leave a container we never
	// learnt the id of; the run's label still finds it.
	if _, err := c.d.Clean(ctx, c.opts.RunID, false); err != nil {
		errs = append(errs, err)
	}
	// With the containers gone nobody uses the lazyfs mounts; unmounting
	// keeps every write, as a clean shutdown would.
	errs = append(errs, c.each(func(m *member) error {
		if m.lfs == nil {
			return nil
		}
		if err := m.lfs.Unmount(); err != nil {
			return fmt.Errorf("node %s: %w", m.Name, err)
		}
		return nil
	}))
	c.closeErr = errors.Join(errs...)
	c.log.Info("cluster removed", "took", time.Since(start).Round(time.Millisecond), "err", c.closeErr)
	return c.closeErr
}

// LoseUnsynced SIGKILLs a node and then discards every write its data
// directory had not synced, keeping with tear a prefix of the newest one.
// The node stays down until Start. It needs Options.LazyFS.
func (c *Cluster) LoseUnsynced(ctx context.Context, node string, tear *rand.Rand) (nemesis.Lost, error) {
	m, err := c.member(node)
	if err != nil {
		return nemesis.Lost{}, err
	}
	if m.lfs == nil {
		return nemesis.Lost{}, fmt.Errorf("lose unsynced writes of %s: %w", node, errNoLazyFS)
	}
	if err := c.Kill(ctx, node); err != nil {
		return nemesis.Lost{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pid != 0 {
		return nemesis.Lost{}, fmt.Errorf("lose unsynced writes of %s: it was started again before its disk could lose them", node)
	}
	loss, err := m.lfs.Lose(tear != nil, tear)
	out := nemesis.Lost{Files: len(loss.Files), Changes: loss.Changes}
	if t := loss.Torn; t != nil {
		out.TornFile, out.TornKept, out.TornLen = t.File, t.Kept, t.Len
	}
	if err != nil {
		return out, fmt.Errorf("node %s: %w", node, err)
	}
	return out, nil
}

// errNoLazyFS refuses lose-unsynced on a cluster launched without lazyfs.
var errNoLazyFS = errors.New("the cluster's data directories are not on lazyfs (launch it with LazyFS)")

// Supports reports whether the cluster can inject faults of kind k.
// lose-unsynced needs the cluster on lazyfs; latency needs netem, which it
// probes by trying a 1ms netem qdisc on the first running node and
// removing it again.
func (c *Cluster) Supports(ctx context.Context, k nemesis.Kind) error {
	if k == nemesis.LoseUnsynced && !c.opts.LazyFS {
		return errNoLazyFS
	}
	if k != nemesis.Latency {
		return nil
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	for _, m := range c.members {
		m.mu.Lock()
		pid := m.pid
		var err error
		if pid != 0 {
			if err = setLatency(pid, time.Millisecond, 0); err == nil {
				err = setLatency(pid, c.latency.Delay, c.latency.Jitter)
			}
		}
		m.mu.Unlock()
		if pid != 0 {
			return err
		}
	}
	return fmt.Errorf("no running node to probe for netem")
}
