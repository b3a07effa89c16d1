package sim

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"time"

	knode "github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// ClusterConfig describes one simulated replica group. Zero fields take the
// defaults documented on each.
type ClusterConfig struct {
	// Seed drives every random choice of the simulation, the cores'
	// included (each core incarnation gets a seed drawn from it).
	Seed int64
	// Replicas is the group size (default 3).
	Replicas int
	// Spares are extra nodes, numbered after the replicas, that start
	// empty and outside the group (replica.Config.Joining) until a
	// membership change adds them.
	Spares int
	// Protocol names the replication core in the registry (default
	// "paxos"); Factory, when set, is used instead.
	Protocol string
	Factory  Factory
	// NewStateMachine builds a fresh replicated application for a node at
	// start and at every restart. Required.
	NewStateMachine func() replica.StateMachine
	// Tick is the virtual duration of one core tick (default 10ms).
	Tick time.Duration
	// ElectionTicks and HeartbeatTicks go to replica.Config (defaults 10
	// and 2).
	ElectionTicks, HeartbeatTicks int
	// SnapshotEvery, MaxBatch and MaxInflight go to replica.Config
	// (defaults 0 = no snapshots, 64, 32).
	SnapshotEvery uint64
	MaxBatch      int
	MaxInflight   int
	// Net is the network's behaviour at start; SetNet changes it.
	Net Network
	// Label names the cluster in safety violations ("group 2").
	Label string
	// Group is the group ID the cluster's messages carry on the wire.
	Group replica.GroupID
	// MayDecide, when set, tells which requests may decide a transaction
	// when applied (txn.MayDecide), for faults aimed at that moment.
	MayDecide func(op []byte) bool
	// Codec encodes protocol messages: they cross the simulated network
	// as bytes, framed as the server frames them, so a codec bug is a
	// simulated bug too. It defaults to the registered protocol's codec
	// when Factory is not set; without one, messages pass as values.
	Codec replica.Codec

	// skipSync makes every node release its Readies without syncing its
	// disk: a broken node, for the oracle's tests.
	skipSync bool
	// syncLies gives every node a disk whose Sync succeeds without making
	// anything durable (see disk.lies): a bug no oracle sees, for the
	// lose-unsynced tests.
	syncLies bool
}

// Network is the simulated network's behaviour. Every message gets an
// independent latency drawn uniformly from [MinDelay, MaxDelay], plus, with
// probability TailProb, an extra uniform delay up to TailDelay; different
// latencies reorder messages. Loss is the probability that a message is
// dropped, Dup the probability that it is delivered twice (with independent
// latencies); half the duplicates arrive up to DupDelay later still, as a
// retransmission by a lower layer would, long after the protocol moved on.
type Network struct {
	MinDelay, MaxDelay time.Duration
	TailProb           float64
	TailDelay          time.Duration
	Loss, Dup          float64
	DupDelay           time.Duration
}

// DefaultNetwork is a healthy LAN: 0.2-2 ms, with 1% of messages taking up
// to 10 ms more.
var DefaultNetwork = Network{MinDelay: 200 * time.Microsecond, MaxDelay: 2 * time.Millisecond, TailProb: 0.01, TailDelay: 10 * time.Millisecond}

func (n Network) validate() error {
	switch {
	case n.MinDelay <= 0 || n.MaxDelay < n.MinDelay:
		return fmt.Errorf("network: need 0 < MinDelay (%v) <= MaxDelay (%v)", n.MinDelay, n.MaxDelay)
	case n.Loss < 0 || n.Loss >= 1:
		return fmt.Errorf("network: Loss %v outside [0, 1)", n.Loss)
	case n.Dup < 0 || n.Dup > 1:
		return fmt.Errorf("network: Dup %v outside [0, 1]", n.Dup)
	case n.TailProb < 0 || n.TailProb > 1 || n.TailDelay < 0:
		return fmt.Errorf("network: bad tail (%v, %v)", n.TailProb, n.TailDelay)
	}
	return nil
}

// NetStats counts what the network did with protocol messages (client
// traffic is not included).
type NetStats struct {
	Sent       int64 // messages handed to the network by cores
	Delivered  int64 // messages a live node received
	Dropped    int64 // lost, cut by a partition, or sent to a crashed node
	Duplicated int64 // extra copies made
}

// node is one replica: volatile parts (core, state machine, waiting
// clients) and the disk, which survives crashes.
type node struct {
	id      replica.NodeID
	up      bool
	gen     uint64                  // incarnation; events of older incarnations are ignored
	rep     *knode.Replica[*Client] // the replica as a kvnode process runs it; nil while down
	sm      replica.StateMachine
	disk    disk
	decided bool // applied a request that may decide a transaction (while a momentDecide trap is armed)
	sent    int64
	paused  bool
	inbox   []event // what arrived while paused, in arrival order
	tick    int64   // this node's tick interval; differs from the config's under clock faults
	// skipTicks are ticks the node's timers still wait for: its clock was
	// set back (JumpClock) and must catch up first. A restart clears them.
	skipTicks int
	// proposed: as leader it sent proposals ahead of their write (while a
	// momentPropose trap is armed).
	proposed bool
	// echo is an Echo fault: what this incarnation received, to arrive
	// again at the next one.
	echo *echo
}

// packet is client traffic: a request frame (client to node) or a
// response frame (node to client).
type packet struct {
	cl      *Client
	to      replica.NodeID // the node sent to, or the node answering
	b       []byte
	refused bool // the node was down: the client's connection was refused
}

// Cluster is a simulated replica group with its clients, network and
// virtual clock. All of it runs on the caller's goroutine; nothing in it is
// safe for concurrent use.
type Cluster struct {
	cfg      ClusterConfig
	factory  Factory
	rng      *rand.Rand
	now      int64
	agenda   agenda
	nodes    []*node
	ids      []replica.NodeID // ids[i]: node i's id as clients know it (i+1 unless the cluster is part of a world)
	clients  []*Client        // the clients whose timers run here
	net      Network
	cut      [][]bool // cut[a][b]: node a cannot hear node b
	stats    NetStats
	sessions uint64 // client sessions handed out
	err      error  // the first fatal problem (a core that cannot restart, a misaddressed message, a Violation)
	oracle   *oracle
	fresh    freshness
	trap     *trap  // a fault waiting for a protocol moment
	steps    *int64 // events run so far; shared by the clusters of one world
	trace    *trace // nil unless a determinism check is recording the run

	// readIndexReads counts the confirmed reads of released Readies.
	readIndexReads int64

	// Filter, when set, sees every protocol message at delivery time;
	// returning false drops it. Tests use it to shape exact scenarios.
	Filter func(m replica.Message) bool
	// runtime, when set, is what every node runs beside its replica.
	runtime nodeRuntime
}

// nodeRuntime is what a node runs beside its replica of the cluster's
// group (a shard group's runtime), told of the node's events by index:
// started when the node (re)starts, a new incarnation; stepped after every
// event the replica handled; released for every Ready it released, after
// applying its entries; resumed when it runs again after a pause.
type nodeRuntime interface {
	started(i int)
	stepped(i int)
	released(i int, rd *replica.Ready)
	resumed(i int)
}

// NewCluster builds a cluster and starts every node.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	if cfg.Replicas < 1 || cfg.Spares < 0 || cfg.Replicas+cfg.Spares > 64 {
		return nil, fmt.Errorf("cluster: %d replicas and %d spares, want 1..64 nodes", cfg.Replicas, cfg.Spares)
	}
	if cfg.Tick == 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.ElectionTicks == 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.HeartbeatTicks == 0 {
		cfg.HeartbeatTicks = 2
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 64
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = 32
	}
	if cfg.Net == (Network{}) {
		cfg.Net = DefaultNetwork
	}
	if err := cfg.Net.validate(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if cfg.NewStateMachine == nil {
		return nil, errors.New("cluster: NewStateMachine is required")
	}
	f := cfg.Factory
	if f == nil {
		if cfg.Protocol == "" {
			cfg.Protocol = "paxos"
		}
		var err error
		if f, err = Lookup(cfg.Protocol); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		if cfg.Codec == nil {
			cfg.Codec, _ = LookupCodec(cfg.Protocol)
		}
	}
	c := &Cluster{cfg: cfg, factory: f, rng: rand.New(rand.NewSource(cfg.Seed)), net: cfg.Net, steps: new(int64)}
	total := cfg.Replicas + cfg.Spares
	c.oracle = newOracle(c, total)
	c.cut = make([][]bool, total)
	for i := range c.cut {
		c.cut[i] = make([]bool, total)
	}
	for i := 0; i < total; i++ {
		n := &node{id: replica.NodeID(i + 1), disk: disk{rng: c.rng, lies: cfg.syncLies}}
		c.nodes = append(c.nodes, n)
		c.ids = append(c.ids, n.id)
	}
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Peers returns the node IDs, 1..Replicas+Spares.
func (c *Cluster) Peers() []replica.NodeID {
	out := make([]replica.NodeID, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.id
	}
	return out
}

// Now returns the virtual time since the cluster started.
func (c *Cluster) Now() time.Duration { return time.Duration(c.now) }

// Rand is the simulation's one source of randomness, for schedules that
// must stay reproducible from the seed.
func (c *Cluster) Rand() *rand.Rand { return c.rng }

// Err returns the first fatal problem the simulation met, if any.
func (c *Cluster) Err() error { return c.err }

// Stats returns the protocol message counters.
func (c *Cluster) Stats() NetStats { return c.stats }

// ReadIndexReads returns how many reads leaders confirmed by read index.
func (c *Cluster) ReadIndexReads() int64 { return c.readIndexReads }

// SetNet changes the network's behaviour from now on.
func (c *Cluster) SetNet(n Network) error {
	if err := n.validate(); err != nil {
		return err
	}
	c.net = n
	return nil
}

// Net returns the network's current behaviour.
func (c *Cluster) Net() Network { return c.net }

// At schedules fn to run after d of virtual time.
func (c *Cluster) At(d time.Duration, fn func()) {
	c.agenda.push(event{at: c.now + int64(d), kind: evFunc, fn: fn})
}

func (c *Cluster) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *Cluster) index(id replica.NodeID) (int, bool) {
	i := int(id) - 1
	return i, i >= 0 && i < len(c.nodes)
}

// localIndex returns the index of the node clients know as id, or -1.
func (c *Cluster) localIndex(id replica.NodeID) int {
	for i, x := range c.ids {
		if x == id {
			return i
		}
	}
	return -1
}

func (c *Cluster) mustIndex(id replica.NodeID) int {
	i, ok := c.index(id)
	if !ok {
		panic(fmt.Sprintf("sim: node %d is not in this cluster of %d", id, len(c.nodes)))
	}
	return i
}

// start builds node i's core from its disk and schedules its first tick at
// a random phase, so nodes do not tick in lockstep.
func (c *Cluster) start(i int) error {
	n := c.nodes[i]
	cfg := replica.Config{
		ID:             n.id,
		Peers:          c.Peers()[:c.cfg.Replicas],
		Joining:        i >= c.cfg.Replicas,
		ElectionTicks:  c.cfg.ElectionTicks,
		HeartbeatTicks: c.cfg.HeartbeatTicks,
		Seed:           c.rng.Int63(),
		SnapshotEvery:  c.cfg.SnapshotEvery,
		MaxBatch:       c.cfg.MaxBatch,
		MaxInflight:    c.cfg.MaxInflight,
	}
	sm := c.cfg.NewStateMachine()
	watched := &watchedSM{StateMachine: sm, o: c.oracle, i: i}
	d, err := n.disk.Load()
	if err != nil {
		err = fmt.Errorf("start node %d at %v: %w", n.id, c.Now(), err)
		c.fail(err)
		return err
	}
	core, err := c.factory(cfg, watched, d)
	if err != nil {
		err = fmt.Errorf("start node %d at %v: %w", n.id, c.Now(), err)
		c.fail(err)
		return err
	}
	n.rep = &knode.Replica[*Client]{ID: n.id, Group: c.cfg.Group, Core: core, Codec: c.cfg.Codec, Host: host{c, i}, SM: sm}
	n.sm, n.up = sm, true
	n.gen++
	n.skipTicks = 0
	c.oracle.started(i)
	if n.tick == 0 {
		n.tick = int64(c.cfg.Tick)
	}
	c.agenda.push(event{at: c.now + c.rng.Int63n(n.tick) + 1, kind: evTick, who: int32(i), gen: n.gen})
	if c.runtime != nil {
		c.runtime.started(i)
	}
	c.replayEcho(i)
	c.persist(i)
	return nil
}

// Submit proposes req at node id as the node's own runtime does, with no
// one waiting for the answer; a node that is down, paused or not the
// leader drops it.
func (c *Cluster) Submit(id replica.NodeID, req replica.Request) {
	i := c.mustIndex(id)
	n := c.nodes[i]
	if !n.up || n.paused {
		return
	}
	n.rep.Submit(req)
	c.persist(i)
}

// Crash stops a node: its core, state machine and waiting clients are
// lost; its disk keeps what was synced and loses any part of the rest.
func (c *Cluster) Crash(id replica.NodeID) {
	n := c.nodes[c.mustIndex(id)]
	if !n.up {
		return
	}
	// The replica's pipeline and waiting clients go with it: the clients
	// hear nothing, and their attempts time out.
	n.up, n.rep, n.sm = false, nil, nil
	n.paused, n.inbox = false, nil
	n.disk.crash()
	n.gen++
}

// FailSyncs makes a node's next k disk syncs fail. A node whose sync fails
// stops, as the real server does, and its supervisor restarts it after
// RestartDelay.
func (c *Cluster) FailSyncs(id replica.NodeID, k int) {
	c.nodes[c.mustIndex(id)].disk.failSyncs = k
}

// DiskStats returns a node's disk counters: writes, syncs, unsynced writes
// lost at crashes, and writes torn at crashes.
func (c *Cluster) DiskStats(id replica.NodeID) (writes, syncs, lost, torn int) {
	d := &c.nodes[c.mustIndex(id)].disk
	return d.writes, d.syncs, d.lost, d.torn
}

// Pause freezes a running node, as SIGSTOP does: it neither ticks nor
// handles anything, and what arrives for it waits (as in a socket buffer)
// until Resume.
func (c *Cluster) Pause(id replica.NodeID) {
	n := c.nodes[c.mustIndex(id)]
	if n.up {
		n.paused = true
	}
}

// Resume lets a paused node run again; it first handles, in order,
// everything that arrived while it was paused.
func (c *Cluster) Resume(id replica.NodeID) {
	n := c.nodes[c.mustIndex(id)]
	if !n.paused {
		return
	}
	n.paused = false
	inbox := n.inbox
	n.inbox = nil
	i := c.mustIndex(id)
	for k, e := range inbox {
		if !n.up || n.paused {
			// Paused again (or crashed) by what it just handled:
			// keep the rest for later.
			if n.paused {
				n.inbox = append(inbox[k:len(inbox):len(inbox)], n.inbox...)
			}
			return
		}
		// The node's buffers already hold these: a partition that
		// began meanwhile does not take them back.
		switch e.kind {
		case evDeliver:
			c.stats.Delivered++
			n.keepEcho(e)
			n.rep.Step(e.msg)
			c.persist(i)
		case evSync:
			c.synced(i)
		default:
			c.request(i, e.pkt)
		}
	}
	if c.runtime != nil && n.up && !n.paused {
		c.runtime.resumed(i)
	}
}

// SetClockRate makes a node's clock run at rate times real speed (2 = its
// ticks come twice as often); 1 restores it. The rate survives restarts,
// as a faulty oscillator would.
func (c *Cluster) SetClockRate(id replica.NodeID, rate float64) error {
	if !(rate >= 0.01 && rate <= 100) {
		return fmt.Errorf("clock rate %v outside [0.01, 100]", rate)
	}
	c.nodes[c.mustIndex(id)].tick = max(1, int64(float64(c.cfg.Tick)/rate))
	return nil
}

// Paused reports whether a node is paused.
func (c *Cluster) Paused(id replica.NodeID) bool { return c.nodes[c.mustIndex(id)].paused }

// Restart starts a crashed node again from its disk. It does nothing to a
// node that is up.
func (c *Cluster) Restart(id replica.NodeID) error {
	i := c.mustIndex(id)
	if c.nodes[i].up {
		return nil
	}
	return c.start(i)
}

// Up reports whether a node is running.
func (c *Cluster) Up(id replica.NodeID) bool { return c.nodes[c.mustIndex(id)].up }

// Status returns a running node's status; ok is false for a crashed node.
func (c *Cluster) Status(id replica.NodeID) (st replica.Status, ok bool) {
	n := c.nodes[c.mustIndex(id)]
	if !n.up {
		return replica.Status{}, false
	}
	return n.rep.Core.Status(), true
}

// DiskEntries returns how many log entries a node's disk holds.
func (c *Cluster) DiskEntries(id replica.NodeID) int {
	return len(c.nodes[c.mustIndex(id)].disk.stable.entries)
}

// Leader returns the node that a majority of running nodes (itself
// included) name as leader, or 0.
func (c *Cluster) Leader() replica.NodeID {
	votes := make([]int, len(c.nodes)+1)
	for _, n := range c.nodes {
		if n.up {
			if l := n.rep.Core.Status().Leader; l > 0 && int(l) <= len(c.nodes) {
				votes[l]++
			}
		}
	}
	for id, v := range votes {
		if id > 0 && 2*v > len(c.nodes) && c.nodes[id-1].up && c.nodes[id-1].rep.Core.Status().Leader == replica.NodeID(id) {
			return replica.NodeID(id)
		}
	}
	return 0
}

// CompareReplicas checks that running replicas which report the same
// applied index hold byte-identical state machine snapshots, and returns a
// description of every difference.
func (c *Cluster) CompareReplicas() []string {
	var problems []string
	type snap struct {
		id      replica.NodeID
		applied uint64
		data    []byte
	}
	var snaps []snap
	for _, n := range c.nodes {
		if !n.up {
			continue
		}
		data, err := n.sm.Snapshot()
		if err != nil {
			problems = append(problems, fmt.Sprintf("node %d: snapshot: %v", n.id, err))
			continue
		}
		snaps = append(snaps, snap{n.id, n.rep.Core.Status().Applied, data})
	}
	// Group the nodes that applied the same prefix by the state they hold.
	done := make([]bool, len(snaps))
	for i := range snaps {
		if done[i] {
			continue
		}
		var groups [][]replica.NodeID
		var reps [][]byte
		for j := i; j < len(snaps); j++ {
			if done[j] || snaps[j].applied != snaps[i].applied {
				continue
			}
			done[j] = true
			g := -1
			for k, r := range reps {
				if bytes.Equal(r, snaps[j].data) {
					g = k
					break
				}
			}
			if g < 0 {
				g = len(reps)
				reps = append(reps, snaps[j].data)
				groups = append(groups, nil)
			}
			groups[g] = append(groups[g], snaps[j].id)
		}
		if len(groups) > 1 {
			problems = append(problems, fmt.Sprintf("replicas diverged: nodes that all applied through index %d hold %d different states: %v", snaps[i].applied, len(groups), groups))
		}
	}
	return problems
}

// Cut makes node a unable to hear node b (one way).
func (c *Cluster) Cut(a, b replica.NodeID) { c.cut[c.mustIndex(a)][c.mustIndex(b)] = true }

// Heal removes every cut between nodes.
func (c *Cluster) Heal() {
	for _, row := range c.cut {
		clear(row)
	}
}

// Partition cuts the nodes into the given groups: nodes in different
// groups cannot hear each other. Nodes in no group are isolated.
func (c *Cluster) Partition(groups ...[]replica.NodeID) {
	side := make([]int, len(c.nodes))
	for i := range side {
		side[i] = -1 - i
	}
	for g, grp := range groups {
		for _, id := range grp {
			side[c.mustIndex(id)] = g
		}
	}
	for a := range c.cut {
		for b := range c.cut[a] {
			c.cut[a][b] = side[a] != side[b]
		}
	}
}

// SetGrudge replaces the cuts: grudge[a] lists the nodes a cannot hear.
func (c *Cluster) SetGrudge(grudge map[replica.NodeID][]replica.NodeID) {
	c.Heal()
	for a, bs := range grudge {
		for _, b := range bs {
			c.Cut(a, b)
		}
	}
}

// CanHear reports whether node a currently hears node b.
func (c *Cluster) CanHear(a, b replica.NodeID) bool {
	return !c.cut[c.mustIndex(a)][c.mustIndex(b)]
}

// delay draws one message latency.
func (c *Cluster) delay() int64 {
	d := int64(c.net.MinDelay)
	if span := int64(c.net.MaxDelay - c.net.MinDelay); span > 0 {
		d += c.rng.Int63n(span + 1)
	}
	if c.net.TailProb > 0 && c.net.TailDelay > 0 && c.rng.Float64() < c.net.TailProb {
		d += c.rng.Int63n(int64(c.net.TailDelay) + 1)
	}
	return d
}

// transmit decides a message's fate: how many copies arrive and when.
func (c *Cluster) transmit(e event) {
	if c.net.Loss > 0 && c.rng.Float64() < c.net.Loss {
		if e.kind == evDeliver {
			c.stats.Dropped++
		}
		return
	}
	e.at = c.now + c.delay()
	c.agenda.push(e)
	// A client's request and its answer ride a connection, which delivers
	// each at most once: a copy of a request could reach a live node while
	// the other finds it down, and a late copy of an answer (a refused
	// connection, a not-leader) could be taken for the answer to a later
	// attempt of the same request; either way the client would rightly
	// call a request that was applied failed.
	if e.kind == evDeliver && c.net.Dup > 0 && c.rng.Float64() < c.net.Dup {
		if e.kind == evDeliver {
			c.stats.Duplicated++
		}
		e.at = c.now + c.delay()
		if c.net.DupDelay > 0 && c.rng.Intn(2) == 0 {
			e.at += c.rng.Int63n(int64(c.net.DupDelay) + 1)
		}
		c.agenda.push(e)
	}
}

// Disk latencies: a sync completes this long after its write began.
const (
	minSync = 50 * time.Microsecond
	maxSync = 500 * time.Microsecond
)

// persist runs after every event of node i: the replica takes what the
// event produced, and starts its next disk write unless one is in
// progress.
func (c *Cluster) persist(i int) {
	n := c.nodes[i]
	if !n.up {
		return
	}
	n.rep.Flush()
	if !n.up {
		return // a trap crashed it
	}
	started, err := n.rep.StartWrite(&n.disk)
	if err != nil {
		c.fail(fmt.Errorf("node %d: %w", n.id, err))
		return
	}
	if started {
		c.agenda.push(event{at: c.now + int64(minSync) + c.rng.Int63n(int64(maxSync-minSync)+1), kind: evSync, who: int32(i), gen: n.gen})
	}
	if n.proposed {
		n.proposed = false
		if t := c.trap; t != nil && t.moment == momentPropose {
			c.trap = nil
			t.fire(n.id)
		}
	}
	if c.runtime != nil && n.up {
		c.runtime.stepped(i)
	}
}

// RestartDelay is how long a node that stopped on a failed sync stays down.
const RestartDelay = 200 * time.Millisecond

// synced completes node i's disk write: it syncs and releases the Readies
// the write covered, or stops the node when the sync fails.
func (c *Cluster) synced(i int) {
	n := c.nodes[i]
	var st replica.Storage = &n.disk
	if c.cfg.skipSync {
		st = unsynced{&n.disk} // the broken node of the oracle's tests
	}
	if err := n.rep.WriteDone(st); err != nil {
		c.Crash(n.id)
		gen := n.gen
		c.At(RestartDelay, func() {
			if n.gen == gen {
				if err := c.Restart(n.id); err != nil {
					c.fail(err)
				}
			}
		})
		return
	}
	c.persist(i)
}

// unsynced is a disk whose Sync does nothing: a node that forgets to sync.
type unsynced struct{ *disk }

func (unsynced) Sync() error { return nil }

// host is how node i's Replica reaches the simulated world.
type host struct {
	c *Cluster
	i int
}

func (h host) Answer(cl *Client, r wire.Response) { h.c.answer(h.i, cl, r) }

// Readied checks rd and notes a leader's proposals, for a trap waiting
// for the moment they leave ahead of its own write.
func (h host) Readied(rd *replica.Ready) {
	h.c.oracle.readied(h.i, rd)
	if t := h.c.trap; t != nil && t.moment == momentPropose && len(rd.Early) > 0 && len(rd.Persist.Entries) > 0 {
		h.c.nodes[h.i].proposed = true
	}
}

// Releasing counts the confirmed reads rd carries and tells the node's
// runtime.
func (h host) Releasing(rd *replica.Ready) {
	h.c.oracle.releasing(h.i, rd)
	for _, rs := range rd.Reads {
		if !rs.Lost {
			h.c.readIndexReads++
		}
	}
	if h.c.runtime != nil {
		h.c.runtime.released(h.i, rd)
	}
}

// Released fires a trap waiting for the moment rd reached.
func (h host) Released(rd *replica.Ready) bool {
	c, n := h.c, h.c.nodes[h.i]
	if c.trap != nil && c.trap.hit(n, rd) {
		t := c.trap
		c.trap = nil
		t.fire(n.id)
	}
	return n.up
}

// Send puts a released message on the network, as its frame when the
// cluster has a codec.
func (h host) Send(m replica.Message, b []byte, encErr error) {
	c, i := h.c, h.i
	n := c.nodes[i]
	c.stats.Sent++
	n.sent++
	if m.Source() != n.id {
		c.fail(fmt.Errorf("node %d sent a message claiming source %d (%T)", n.id, m.Source(), m))
		return
	}
	d, ok := c.index(m.Dest())
	if !ok || d == i {
		c.fail(fmt.Errorf("node %d sent a message to node %d, not a peer (%T)", n.id, m.Dest(), m))
		return
	}
	if encErr != nil {
		c.oracle.violate(i, "could not encode its %T: %v", m, encErr)
		return
	}
	e := event{kind: evDeliver, who: int32(d), gen: uint64(i), msg: m}
	if b != nil {
		e.msg = &frame{b: append([]byte(nil), b...)}
	}
	c.transmit(e)
}

// moment is a protocol moment at which a targeted fault strikes.
type moment uint8

const (
	// momentVouch: a replica just sent a promise, an acceptance or a
	// vote (replica.Inspector's Vouches).
	momentVouch moment = iota + 1
	// momentChoose: a leader just sent the values it picked for new log
	// slots.
	momentChoose
	// momentDecide: a replica just applied a request that may decide a
	// transaction (ClusterConfig.MayDecide).
	momentDecide
	// momentPropose: a leader just sent proposals ahead of its own write
	// of them, which is not yet durable (Ready.Early).
	momentPropose
	// momentCommit: a leader just answered clients for requests it
	// applied. Its followers may not yet know those slots are chosen: a
	// crash here leaves the next leader to find them among unchosen ones.
	momentCommit
)

var moments = []moment{momentVouch, momentChoose, momentPropose, momentCommit}

func (m moment) String() string {
	switch m {
	case momentVouch:
		return "after-vouch"
	case momentChoose:
		return "after-choose"
	case momentPropose:
		return "after-propose"
	case momentCommit:
		return "after-commit"
	}
	return "after-decide"
}

// trap fires once, at the first node to reach its moment: right after the
// Ready that reached it was released.
type trap struct {
	moment moment
	fire   func(replica.NodeID)
}

func (t *trap) hit(n *node, rd *replica.Ready) bool {
	if t.moment == momentDecide {
		d := n.decided
		n.decided = false
		return d && n.up
	}
	if !n.up {
		return false
	}
	if t.moment == momentCommit {
		return len(rd.Results) > 0 && n.rep.Core.Status().Leader == n.id
	}
	if len(rd.Messages) == 0 {
		return false
	}
	switch t.moment {
	case momentVouch:
		insp, ok := n.rep.Core.(replica.Inspector)
		if !ok {
			return false
		}
		for _, m := range rd.Messages {
			if _, ok := insp.Vouches(m); ok {
				return true
			}
		}
	case momentChoose:
		return len(rd.Persist.Entries) > 0 && n.rep.Core.Status().Leader == n.id
	}
	return false
}

// decode turns a delivered frame back into a message with the cluster's
// codec; a frame that does not decode, or decodes to a message that is not
// from its sender to its receiver, is a violation.
func (c *Cluster) decode(e event, f *frame) replica.Message {
	p, err := wire.OneFrame(f.b, wire.KindPeer)
	var g uint32
	if err == nil {
		g, p, err = wire.DecodePeer(p)
	}
	if err == nil && g != uint32(c.cfg.Group) {
		err = fmt.Errorf("frame for group %d", g)
	}
	var m replica.Message
	if err == nil {
		m, err = c.cfg.Codec.DecodeMessage(p)
	}
	from := c.nodes[e.gen]
	if err == nil && (m.Source() != from.id || m.Dest() != c.nodes[e.who].id) {
		err = fmt.Errorf("%T decoded as from %d to %d", m, m.Source(), m.Dest())
	}
	if err != nil {
		c.oracle.violate(int(e.who), "a message from node %d did not survive the wire: %v", from.id, err)
		return nil
	}
	return m
}

// Step runs the next event. It returns false when nothing is scheduled.
func (c *Cluster) Step() bool {
	if c.agenda.len() == 0 {
		return false
	}
	e := c.agenda.pop()
	c.now = e.at
	*c.steps++
	if c.trace != nil {
		c.trace.event(e)
	}
	c.handle(e)
	return true
}

func (c *Cluster) handle(e event) {
	switch e.kind {
	case evTick:
		n := c.nodes[e.who]
		if !n.up || n.gen != e.gen {
			return
		}
		if n.skipTicks > 0 {
			n.skipTicks--
		} else if !n.paused {
			n.rep.Tick()
			c.persist(int(e.who))
		}
		e.at = c.now + n.tick
		c.agenda.push(e)
	case evDeliver:
		n := c.nodes[e.who]
		if !n.up || c.cut[e.who][e.gen] {
			c.stats.Dropped++
			return
		}
		if f, ok := e.msg.(*frame); ok {
			if e.msg = c.decode(e, f); e.msg == nil {
				return
			}
		}
		if c.Filter != nil && !c.Filter(e.msg) {
			c.stats.Dropped++
			return
		}
		if n.paused {
			n.inbox = append(n.inbox, e)
			return
		}
		c.stats.Delivered++
		n.keepEcho(e)
		n.rep.Step(e.msg)
		c.persist(int(e.who))
	case evRequest:
		if n := c.nodes[e.who]; n.up && n.paused {
			n.inbox = append(n.inbox, e)
			return
		}
		c.request(int(e.who), e.pkt)
	case evReply:
		e.pkt.cl.reply(c, e.pkt)
	case evTimer:
		c.clients[e.who].timerFired(e.gen)
	case evSync:
		n := c.nodes[e.who]
		switch {
		case !n.up || n.gen != e.gen:
		case n.paused:
			// The sync completes, but the process cannot act on it
			// until it runs again.
			n.inbox = append(n.inbox, e)
		default:
			c.synced(int(e.who))
		}
	case evFunc:
		e.fn()
	}
}

// request handles a client request frame arriving at node i, as the
// server's connection handler does: a node that is down refuses the
// connection; a frame that does not decode is a violation.
func (c *Cluster) request(i int, p *packet) {
	n := c.nodes[i]
	if p.cl.cutFrom(c.ids[i]) {
		return
	}
	if !n.up {
		c.transmit(event{kind: evReply, pkt: &packet{cl: p.cl, to: c.ids[i], refused: true}})
		return
	}
	payload, err := wire.OneFrame(p.b, wire.KindRequest)
	var req wire.Request
	if err == nil {
		req, err = wire.DecodeRequest(payload)
	}
	if err != nil {
		c.oracle.violate(i, "a request of client %d did not survive the wire: %v", p.cl.idx, err)
		return
	}
	if req.Group != uint32(c.cfg.Group) {
		c.answer(i, p.cl, wire.Response{ID: req.ID, Status: wire.StatusNoGroup, Err: fmt.Sprintf("no group %d here", req.Group)})
		return
	}
	c.fresh.arrived(c, req.ID, opKey{p.cl, req.ClientID, req.Seq})
	n.rep.Request(req.ID, replica.Request{ClientID: req.ClientID, Seq: req.Seq, Op: req.Op}, p.cl)
	c.persist(i)
}

// answer frames node i's response to a client and puts it on the network.
// Leader hints name nodes as clients know them.
func (c *Cluster) answer(i int, cl *Client, r wire.Response) {
	c.fresh.answered(c, i, cl, &r)
	if r.Leader != 0 && int(r.Leader) <= len(c.ids) {
		r.Leader = uint32(c.ids[r.Leader-1])
	}
	b, err := wire.AppendFrame(nil, wire.KindResponse, r.Append)
	if err != nil {
		c.oracle.violate(i, "could not frame an answer: %v", err)
		return
	}
	c.transmit(event{kind: evReply, pkt: &packet{cl: cl, to: c.ids[i], b: b}})
}

// RunFor runs events for d of virtual time.
func (c *Cluster) RunFor(d time.Duration) {
	end := c.now + int64(d)
	for c.agenda.len() > 0 && c.agenda.peekTime() <= end {
		c.Step()
	}
	if c.now < end {
		c.now = end
	}
}

// RunUntil runs events until cond holds (checked after every event) or
// limit of virtual time has passed; it reports whether cond holds.
func (c *Cluster) RunUntil(cond func() bool, limit time.Duration) bool {
	end := c.now + int64(limit)
	for !cond() {
		if c.agenda.len() == 0 || c.agenda.peekTime() > end {
			c.now = max(c.now, end)
			return cond()
		}
		c.Step()
	}
	return true
}

// Members returns the configuration that the leader with the highest
// epoch reports, and whether it governs the leader's next log index (a
// change is not in progress); nil when no running node leads.
func (c *Cluster) Members() ([]replica.NodeID, bool) {
	var best *replica.Status
	for _, n := range c.nodes {
		if !n.up || n.paused {
			continue
		}
		if st := n.rep.Core.Status(); st.Leader == st.ID && (best == nil || st.Epoch > best.Epoch) {
			best = &st
		}
	}
	if best == nil || best.Members == nil {
		return nil, false
	}
	return best.Members, best.MembersFrom <= best.Applied+1
}

// ChangeMembers proposes members as the group's next configuration at
// every running node that believes it leads, as an admin would retry, and
// returns the node that took it.
func (c *Cluster) ChangeMembers(members []replica.NodeID) (replica.NodeID, error) {
	err := error(&replica.NotLeaderError{})
	for i, n := range c.nodes {
		if !n.up || n.paused {
			continue
		}
		if st := n.rep.Core.Status(); st.Leader != st.ID {
			continue
		}
		if err = n.rep.ChangeMembers(members); err == nil {
			c.persist(i)
			return n.id, nil
		}
	}
	return 0, fmt.Errorf("change members to %v: %w", members, err)
}

// Healthy reports whether node id runs and is not paused.
func (c *Cluster) Healthy(id replica.NodeID) bool {
	n := c.nodes[c.mustIndex(id)]
	return n.up && !n.paused
}
