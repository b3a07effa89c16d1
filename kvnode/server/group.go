package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/storage"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// Queue sizes. Peer messages beyond a full inbox are dropped (the protocols
// tolerate loss); client requests beyond a full queue are refused with
// StatusOverloaded, a definite failure.
const (
	inboxSize    = 8192
	proposalSize = 8192
)

// proposal is a client request waiting for its outcome.
type proposal struct {
	req   replica.Request
	reply func(wire.Response) // called exactly once, from the loop goroutine
	id    uint64              // the wire request id, echoed in the reply
}

// group is one local replica: the loop goroutine that owns its
// node.Replica (core, pipeline, waiting clients) and feeds it events, and
// the writer goroutine that writes and syncs its storage.
type group struct {
	id      replica.GroupID
	node    *Node
	core    replica.Replicator
	store   *storage.Store
	metrics *groupMetrics
	inbox   chan replica.Message
	props   chan *proposal
	status  atomic.Pointer[replica.Status]
	rep     *node.Replica[func(wire.Response)]
	leader  replica.NodeID

	// writes carries the Replica's storage writes to the writer, which
	// writes and syncs each and answers on synced; the loop meanwhile
	// keeps stepping the core, so the next write covers everything that
	// arrived during this one.
	writes chan *replica.Persist
	synced chan error
	disk   asyncStore

	// sm is the group's state machine; only the loop goroutine touches
	// it, running what arrives on calls.
	sm    replica.StateMachine
	calls chan func()
	// shard, for a shard group of a sharded node, is its shard runtime,
	// which the loop runs. Nil otherwise.
	shard *shardShell
}

func newGroup(n *Node, id replica.GroupID, core replica.Replicator, sm replica.StateMachine, st *storage.Store, gm *groupMetrics) *group {
	g := &group{
		sm:      sm,
		id:      id,
		node:    n,
		core:    core,
		store:   st,
		metrics: gm,
		inbox:   make(chan replica.Message, inboxSize),
		props:   make(chan *proposal, proposalSize),
		writes:  make(chan *replica.Persist, 1),
		synced:  make(chan error, 1),
		calls:   make(chan func(), 16),
	}
	g.disk.writes = g.writes
	g.rep = &node.Replica[func(wire.Response)]{ID: n.opts.ID, Group: id, Core: core, Codec: n.opts.Protocol.Codec, Host: (*groupHost)(g), MaxBatch: n.opts.MaxBatch, SM: sm}
	s := core.Status()
	g.status.Store(&s)
	g.leader = s.Leader
	return g
}

// asyncStore is the Replica's storage as the loop sees it: Write hands the
// write to the writer goroutine; Sync, called once the writer reported,
// returns what the writer's write and sync returned.
type asyncStore struct {
	writes chan<- *replica.Persist
	err    error
}

func (a *asyncStore) Write(p *replica.Persist) error {
	a.writes <- p
	return nil
}

func (a *asyncStore) Sync() error { return a.err }

func (a *asyncStore) Load() (*replica.Durable, error) {
	return nil, errors.New("asyncStore: load from the store itself")
}

// step queues a peer message for the loop; it never blocks.
func (g *group) step(m replica.Message) {
	select {
	case g.inbox <- m:
	default:
		g.node.metrics.peerDrops.Add(1)
	}
}

// submit queues a client request; it reports false when the queue is full.
func (g *group) submit(p *proposal) bool {
	select {
	case g.props <- p:
		return true
	default:
		return false
	}
}

// maxDrain bounds how many queued inputs one iteration takes before it
// flushes the Replica, so that a flood cannot starve persistence and
// sending.
const maxDrain = 4096

// run is the replica's event loop. It owns the Replica; the writer
// goroutine it starts owns store's writes.
func (g *group) run(ctx context.Context) error {
	ticker := time.NewTicker(g.node.opts.Cluster.Tick())
	defer ticker.Stop()
	written := make(chan struct{})
	go func() {
		defer close(written)
		for p := range g.writes {
			err := g.store.Write(p)
			if err == nil {
				err = g.store.Sync()
			}
			g.synced <- err
		}
	}()
	// The shard runtime's events, if the group has one. Its deliveries
	// end with the loop, however the loop ends.
	var shardKick <-chan struct{}
	var shardTimer <-chan time.Time
	var shardEnds <-chan shardEnd
	ctx, stopDeliveries := context.WithCancel(ctx)
	if sh := g.shard; sh != nil {
		sh.ctx = ctx
		shardKick, shardTimer, shardEnds = sh.kick, sh.timer.C, sh.ends
	}
	// On the way out, let the writer finish (nothing is answered before
	// it is durable anyway), then answer whoever still waits.
	defer func() {
		close(g.writes)
		<-written
		g.rep.Close("node shutting down")
		stopDeliveries()
		if g.shard != nil {
			g.shard.stop()
		}
	}()
	g.observe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-shardKick:
			g.shard.sg.Tick(g.shard.now(), g.core.Status(), g.shard.tg)
		case <-shardTimer:
			g.shard.sg.Timer(g.shard.now(), g.core.Status(), g.shard.tg)
		case e := <-shardEnds:
			g.shard.sg.Delivered(g.shard.now(), e.s, e.answer)
		case err := <-g.synced:
			g.disk.err = err
			if err := g.rep.WriteDone(&g.disk); err != nil {
				return fmt.Errorf("persist: %w", err)
			}
		case <-ticker.C:
			g.rep.Tick()
		case m := <-g.inbox:
			g.rep.Step(m)
		case p := <-g.props:
			g.rep.Request(p.id, p.req, p.reply)
		case f := <-g.calls:
			f()
		}
		// Take everything already queued, so one write covers many
		// requests and messages.
	drain:
		for i := 0; i < maxDrain; i++ {
			select {
			case m := <-g.inbox:
				g.rep.Step(m)
			case p := <-g.props:
				g.rep.Request(p.id, p.req, p.reply)
			case <-ticker.C:
				g.rep.Tick()
			default:
				break drain
			}
		}
		g.metrics.proposals.Add(uint64(g.rep.Flush()))
		if _, err := g.rep.StartWrite(&g.disk); err != nil {
			return fmt.Errorf("persist: %w", err)
		}
		g.observe()
	}
}

// groupHost is how a group's Replica reaches the network and its clients;
// it runs on the loop goroutine.
type groupHost group

func (h *groupHost) Readied(*replica.Ready) {}

func (h *groupHost) Releasing(rd *replica.Ready) {
	h.metrics.readies.Add(1)
	h.metrics.commits.Add(uint64(len(rd.Results)))
	if h.shard != nil {
		h.shard.sg.Released(rd)
	}
}

func (h *groupHost) Released(*replica.Ready) bool { return true }

// Answer answers a client request.
func (h *groupHost) Answer(reply func(wire.Response), r wire.Response) {
	h.node.metrics.clientOutcome[r.Status].Add(1)
	reply(r)
}

// Send sends a released message's frame to its node.
func (h *groupHost) Send(m replica.Message, frame []byte, err error) {
	g := (*group)(h)
	dest := m.Dest()
	if err != nil {
		g.node.log.Error("encode message", "group", g.id, "dest", dest, "err", err)
		return
	}
	p := g.node.peers[dest]
	if p == nil {
		g.node.log.Warn("message to unknown node dropped", "group", g.id, "dest", dest)
		return
	}
	// The Replica reuses frame; the peer's queue keeps it.
	p.send(append([]byte(nil), frame...))
}

// observe publishes the core's status and logs leader changes.
func (g *group) observe() {
	s := g.core.Status()
	g.status.Store(&s)
	if g.shard != nil {
		g.shard.sg.Observe(s)
	}
	if s.Leader != g.leader {
		g.leader = s.Leader
		g.metrics.leaderChanges.Add(1)
		g.node.log.Info("leader changed", "group", g.id, "leader", s.Leader, "role", s.Role, "epoch", s.Epoch)
	}
}
