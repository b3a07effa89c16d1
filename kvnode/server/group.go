package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

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

type waitKey struct{ client, seq uint64 }

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

	waiters map[waitKey][]*proposal
	batch   []*proposal
	reqs    []replica.Request
	leader  replica.NodeID
	out     []byte
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
		waiters: map[waitKey][]*proposal{},
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

// run is the replica's event loop. It owns core and store.
func (g *group) run(ctx context.Context) error {
	ticker := time.NewTicker(g.node.opts.Cluster.Tick())
	defer ticker.Stop()
	defer g.failWaiters("node shutting down")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			g.core.Tick()
		case m := <-g.inbox:
			g.core.Step(m)
		case p := <-g.props:
			g.batch = append(g.batch, p)
		}
		// Take everything already queued, so one persist covers many
		// requests and messages.
	drain:
		for i := 0; i < maxDrain; i++ {
			select {
			case m := <-g.inbox:
				g.core.Step(m)
			case p := <-g.props:
				g.batch = append(g.batch, p)
			case <-ticker.C:
				g.core.Tick()
			default:
				break drain
			}
		}
		g.propose()
		for g.core.HasReady() {
			if err := g.handleReady(); err != nil {
				return err
			}
		}
		g.observe()
	}
}

// propose hands the batched client requests to the core in one call.
func (g *group) propose() {
	if len(g.batch) == 0 {
		return
	}
	g.reqs = g.reqs[:0]
	for _, p := range g.batch {
		g.reqs = append(g.reqs, p.req)
	}
	err := g.core.Propose(g.reqs...)
	var nle *replica.NotLeaderError
	switch {
	case err == nil:
		g.metrics.proposals.Add(uint64(len(g.batch)))
		for _, p := range g.batch {
			k := waitKey{p.req.ClientID, p.req.Seq}
			g.waiters[k] = append(g.waiters[k], p)
		}
	case errors.As(err, &nle):
		for _, p := range g.batch {
			g.respond(p, wire.Response{Status: wire.StatusNotLeader, Leader: uint32(nle.Leader), Err: nle.Error()})
		}
	default:
		// The core refused the batch for another reason; whether any of
		// it was ordered is not known.
		for _, p := range g.batch {
			g.respond(p, wire.Response{Status: wire.StatusUnknown, Err: "propose: " + err.Error()})
		}
	}
	clear(g.batch)
	g.batch = g.batch[:0]
}

func (g *group) respond(p *proposal, r wire.Response) {
	r.ID = p.id
	g.node.metrics.clientOutcome[r.Status].Add(1)
	p.reply(r)
}

// handleReady persists (one batch, fsynced), then sends, then answers
// clients, in the order the replica contract demands.
func (g *group) handleReady() error {
	rd := g.core.Ready()
	g.metrics.readies.Add(1)
	if err := g.store.Save(&rd.Persist); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	for _, m := range rd.Messages {
		g.send(m)
	}
	for _, r := range rd.Results {
		g.metrics.commits.Add(1)
		k := waitKey{r.ClientID, r.Seq}
		ws := g.waiters[k]
		if len(ws) == 0 {
			continue
		}
		delete(g.waiters, k)
		resp := wire.Response{Status: wire.StatusOK, Index: r.Index, Value: r.Value}
		if r.Value == nil {
			// The state machine saw an older request of a client that
			// has moved on; its outcome is whatever it was back then.
			resp = wire.Response{Status: wire.StatusUnknown, Err: "stale request: the client already issued a later one"}
		}
		for _, p := range ws {
			g.respond(p, resp)
		}
	}
	return nil
}

func (g *group) send(m replica.Message) {
	dest := m.Dest()
	if dest == g.node.opts.ID {
		g.core.Step(m)
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
	if s.Leader != g.node.opts.ID && len(g.waiters) > 0 {
		g.failWaiters("leadership lost while the request was pending")
	}
}

func (g *group) failWaiters(why string) {
	for k, ws := range g.waiters {
		for _, p := range ws {
			g.respond(p, wire.Response{Status: wire.StatusUnknown, Leader: uint32(g.leader), Err: why})
		}
		delete(g.waiters, k)
	}
	for _, p := range g.batch {
		g.respond(p, wire.Response{Status: wire.StatusUnknown, Err: why})
	}
	g.batch = g.batch[:0]
}
