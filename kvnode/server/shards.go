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

// Sharded runtime pacing: how often a leader delivers its group's outbox,
// how long one delivery may take, and how long a coordinator waits for
// votes before it abandons (aborts) a transaction.
const (
	shardPumpEvery   = 5 * time.Millisecond
	configPollEvery  = 50 * time.Millisecond
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

// view reads the group's state on its loop goroutine.
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
		Pump:    node.ShardPump{Controller: n.opts.ShardController, AbandonAfter: abandonAfter, ConfigPollEvery: configPollEvery},
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
			req, ok := rt.Answered(s, ans)
			mu.Unlock()
			if ok {
				propose(req)
			}
		})
	}
	epoch := time.Now()
	t := time.NewTicker(shardPumpEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, ok := g.shardView(ctx)
		if !ok {
			return
		}
		mu.Lock()
		sends, props := rt.Tick(time.Since(epoch), v)
		mu.Unlock()
		for _, s := range sends {
			deliver(s)
		}
		for _, req := range props {
			propose(req)
		}
	}
}
