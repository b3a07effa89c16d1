package server

import (
	"context"
	"fmt"
	"sync"
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
	persistQueue = 256
)

// proposal is a client request waiting for its outcome.
type proposal struct {
	req   replica.Request
	reply func(wire.Response) // called exactly once, from the loop goroutine
	id    uint64              // the wire request id, echoed in the reply
}

// group is one local replica: a core, its storage and the loop that owns
// both.
type group struct {
	id      replica.GroupID
	node    *Node
	core    replica.Replicator
	store   *storage.Store
	metrics *groupMetrics
	inbox   chan replica.Message
	props   chan *proposal
	status  atomic.Pointer[replica.Status]

	// persistq carries Readies, in order, from the loop to the persister,
	// which makes them durable and only then sends their messages and
	// answers their clients. The loop meanwhile keeps stepping the core,
	// so the next fsync covers everything that arrived during this one.
	persistq chan replica.Ready
	failed   chan error
	// busy counts Readies handed to the persister and not yet released;
	// wake tells the loop that the persister finished a write.
	busy atomic.Int32
	wake chan struct{}

	// reqs holds the client requests between submit and answer. The loop
	// batches and proposes; the persister answers what it releases; wmu
	// guards what both touch.
	wmu    sync.Mutex
	reqs   node.Requests[func(wire.Response)]
	leader replica.NodeID

	// sm is the group's state machine; only the loop goroutine touches
	// it, running what arrives on calls.
	sm    replica.StateMachine
	calls chan func()
}

func newGroup(n *Node, id replica.GroupID, core replica.Replicator, st *storage.Store, gm *groupMetrics) *group {
	g := &group{
		id:      id,
		node:    n,
		core:    core,
		store:   st,
		metrics: gm,
		inbox:   make(chan replica.Message, inboxSize),
		props:   make(chan *proposal, proposalSize),

		persistq: make(chan replica.Ready, persistQueue),
		failed:   make(chan error, 1),
		wake:     make(chan struct{}, 1),
		calls:    make(chan func(), 16),
	}
	s := core.Status()
	g.status.Store(&s)
	g.leader = s.Leader
	return g
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
// handles Ready, so that a flood cannot starve persistence and sending.
const maxDrain = 4096

// run is the replica's event loop. It owns core; the persister goroutine
// it starts owns store.
func (g *group) run(ctx context.Context) error {
	ticker := time.NewTicker(g.node.opts.Cluster.Tick())
	defer ticker.Stop()
	persisted := make(chan struct{})
	go func() {
		defer close(persisted)
		g.persister()
	}()
	// On the way out, let the persister finish what it was given (so every
	// answered request is durable), then answer whoever still waits.
	defer func() {
		close(g.persistq)
		<-persisted
		g.failWaiters("node shutting down")
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-g.failed:
			return err
		case <-ticker.C:
			g.core.Tick()
		case m := <-g.inbox:
			g.core.Step(m)
		case p := <-g.props:
			g.reqs.Add(p.id, p.req, p.reply)
		case <-g.wake:
		case f := <-g.calls:
			f()
		}
		// Take everything already queued, so one persist covers many
		// requests and messages.
	drain:
		for i := 0; i < maxDrain; i++ {
			select {
			case m := <-g.inbox:
				g.core.Step(m)
			case p := <-g.props:
				g.reqs.Add(p.id, p.req, p.reply)
			case <-ticker.C:
				g.core.Tick()
			default:
				break drain
			}
		}
		// While the persister is busy, a leader holds client requests back:
		// they could not be made durable any sooner, and proposing them
		// together when it frees up puts them in one log entry instead of
		// many.
		if g.leader != g.node.opts.ID || g.busy.Load() == 0 || g.reqs.Batched() >= g.node.opts.MaxBatch {
			g.propose()
		}
		if g.core.HasReady() {
			rd := g.core.Ready()
			if node.AtOnce(&rd, g.busy.Load() > 0) {
				// Nothing to write and nothing written before it still
				// pending: release at once, sparing the hand-off.
				g.release(&rd)
			} else {
				g.busy.Add(1)
				select {
				case g.persistq <- rd:
				case err := <-g.failed:
					return err
				}
			}
		}
		g.observe()
	}
}

// persister makes Readies durable in order through node.Pipeline, which
// merges those queued behind each other into one write, and then sends
// their messages and delivers their results. A Ready's messages never
// leave before it and every Ready before it are durable.
func (g *group) persister() {
	var pl node.Pipeline
	push := func(rd replica.Ready) {
		if pl.Push(rd) {
			// Nothing to write and everything before it released.
			g.metrics.readies.Add(1)
			g.release(&rd)
			g.done(1)
		}
	}
	for rd := range g.persistq {
		push(rd)
	more:
		for i := 1; i < node.MaxMerge; i++ {
			select {
			case rd, ok := <-g.persistq:
				if !ok {
					break more
				}
				push(rd)
			default:
				break more
			}
		}
		for {
			released := 0
			started, err := pl.Start(g.store)
			if started && err == nil {
				err = pl.Finish(g.store, func(rd *replica.Ready) bool {
					g.release(rd)
					released++
					return true
				})
			}
			if err != nil {
				g.failed <- fmt.Errorf("persist: %w", err)
				for range g.persistq {
				}
				return
			}
			if !started {
				break
			}
			g.metrics.readies.Add(uint64(released))
			g.done(released)
		}
	}
}

// done tells the loop that the persister released n Readies.
func (g *group) done(n int) {
	g.busy.Add(-int32(n))
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// release sends a durable Ready's messages and answers its clients.
func (g *group) release(rd *replica.Ready) {
	for _, m := range rd.Messages {
		g.send(m)
	}
	if len(rd.Results) == 0 {
		return
	}
	g.metrics.commits.Add(uint64(len(rd.Results)))
	g.wmu.Lock()
	g.reqs.Release(rd.Results, g.respond)
	g.wmu.Unlock()
}

// propose hands the batched client requests to the core in one call.
func (g *group) propose() {
	if g.reqs.Batched() == 0 {
		return
	}
	g.wmu.Lock()
	n := g.reqs.Propose(g.core, g.respond)
	g.wmu.Unlock()
	g.metrics.proposals.Add(uint64(n))
}

// respond answers a client request; node.Requests sets the response's id.
func (g *group) respond(reply func(wire.Response), r wire.Response) {
	g.node.metrics.clientOutcome[r.Status].Add(1)
	reply(r)
}

func (g *group) send(m replica.Message) {
	dest := m.Dest()
	if dest == g.node.opts.ID {
		g.step(m)
		return
	}
	p := g.node.peers[dest]
	if p == nil {
		g.node.log.Warn("message to unknown node dropped", "group", g.id, "dest", dest)
		return
	}
	var encErr error
	b, err := wire.AppendFrame(nil, wire.KindPeer, func(b []byte) []byte {
		b = wire.AppendPeer(b, uint32(g.id))
		b, encErr = g.node.opts.Protocol.Codec.AppendMessage(b, m)
		return b
	})
	if err == nil {
		err = encErr
	}
	if err != nil {
		g.node.log.Error("encode message", "group", g.id, "dest", dest, "err", err)
		return
	}
	p.send(b)
}

// observe publishes the core's status and, when this replica stops being
// the leader, tells every waiting client that its outcome is unknown so it
// retries elsewhere (with the same sequence number) instead of waiting for
// its deadline.
func (g *group) observe() {
	s := g.core.Status()
	g.status.Store(&s)
	if s.Leader != g.leader {
		g.leader = s.Leader
		g.metrics.leaderChanges.Add(1)
		g.node.log.Info("leader changed", "group", g.id, "leader", s.Leader, "role", s.Role, "epoch", s.Epoch)
	}
	if s.Leader != g.node.opts.ID {
		g.wmu.Lock()
		g.reqs.Observe(g.node.opts.ID, s.Leader, g.respond)
		g.wmu.Unlock()
	}
}

func (g *group) failWaiters(why string) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.reqs.Fail(why, g.leader, g.respond)
}
