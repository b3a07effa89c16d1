package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/node"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// Sharded runtime pacing: how long one delivery may take, and how long a
// coordinator waits for votes before it abandons (aborts) a transaction.
// Delivery itself waits for no timer; the pump's defaults pace what must
// (see node.ShardPump).
const (
	shardSendTimeout = 500 * time.Millisecond
	abandonAfter     = time.Second
)

func shardedStateMachines(ctl replica.GroupID) func(replica.GroupID) replica.StateMachine {
	return func(g replica.GroupID) replica.StateMachine {
		if g == ctl {
			return shardctl.New()
		}
		return txn.NewGroup(g)
	}
}

// startShardRuntimes starts, for every local sharded group, the loop that
// carries out what node.ShardPump decides: deliver the Outbox, propose the
// answers, learn configurations in order, abandon stuck prepares.
func (n *Node) startShardRuntimes(ctx context.Context, wg *sync.WaitGroup) {
	if n.opts.ShardController == 0 {
		return
	}
	for _, g := range n.groups {
		if _, ok := g.sm.(*txn.Group); ok {
			wg.Go(func() { n.shardRuntime(ctx, g) })
		}
	}
}

// initShard readies a shard group for its runtime: the loop nudges
// shardWake whenever the runtime may have something new to do.
func (g *group) initShard() {
	if _, ok := g.sm.(*txn.Group); ok && g.node.opts.ShardController != 0 {
		g.shardWake = make(chan struct{}, 1)
	}
}

// nudgeShard tells the group's shard runtime, if any, that it may have
// something new to do: an entry was applied, the leader changed or a
// delivery ended. Nudges coalesce; it never blocks.
func (g *group) nudgeShard() {
	select {
	case g.shardWake <- struct{}{}:
	default:
	}
}

// shardView reads the group's state on its loop goroutine.
func (g *group) shardView(ctx context.Context) (node.ShardView, bool) {
	ch := make(chan node.ShardView, 1)
	f := func() {
		v, _ := node.View(g.node.opts.ID, g.core.Status(), g.sm)
		ch <- v
	}
	select {
	case g.calls <- f:
	case <-ctx.Done():
		return node.ShardView{}, false
	}
	select {
	case v := <-ch:
		return v, true
	case <-ctx.Done():
		return node.ShardView{}, false
	}
}

func randomID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func (n *Node) shardRuntime(ctx context.Context, g *group) {
	log := n.log.With("group", g.id)
	var mu sync.Mutex // guards rt: deliveries end on their own goroutines
	rt := node.ShardRuntime[*client.Client]{
		Pump:    node.ShardPump{Controller: n.opts.ShardController, AbandonAfter: abandonAfter},
		Session: randomID(),
		Dial: func(to replica.GroupID) (*client.Client, error) {
			cc, err := client.FromCluster(n.opts.Cluster, to)
			if err != nil {
				return nil, err
			}
			cc.ClientID, cc.AttemptTimeout = randomID(), shardSendTimeout/2
			return client.New(cc)
		},
	}
	propose := func(req replica.Request) {
		g.submit(&proposal{req: req, reply: func(wire.Response) {}})
	}
	epoch := time.Now()
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		for _, c := range rt.Clients() {
			c.Close()
		}
	}()
	deliver := func(s node.Send[*client.Client]) {
		wg.Go(func() {
			var ans []byte
			if s.Err != nil {
				log.Warn("shard runtime: client", "to", s.To, "err", s.Err)
			} else {
				sctx, cancel := context.WithTimeout(ctx, shardSendTimeout)
				if a, err := s.Via.Raw(sctx, s.Op); err == nil {
					ans = a
				}
				cancel()
			}
			mu.Lock()
			req, ok := rt.Answered(time.Since(epoch), s, ans)
			mu.Unlock()
			if ok {
				propose(req)
			}
			g.nudgeShard()
		})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		v, ok := g.shardView(ctx)
		if !ok {
			return
		}
		mu.Lock()
		sends, props := rt.Tick(time.Since(epoch), v)
		at, armed := rt.Wake()
		mu.Unlock()
		for _, s := range sends {
			deliver(s)
		}
		for _, req := range props {
			propose(req)
		}
		timer.Stop()
		if armed {
			timer.Reset(max(at-time.Since(epoch), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-g.shardWake:
		case <-timer.C:
		}
	}
}
