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
	// A pool of clients per target group: a client runs one request at a
	// time, and one slow request must not hold up the rest.
	var mu sync.Mutex
	pools := map[replica.GroupID][]*client.Client{}
	var all []*client.Client
	acquire := func(to replica.GroupID) *client.Client {
		mu.Lock()
		defer mu.Unlock()
		if p := pools[to]; len(p) > 0 {
			c := p[len(p)-1]
			pools[to] = p[:len(p)-1]
			return c
		}
		cc, err := client.FromCluster(n.opts.Cluster, to)
		if err != nil {
			return nil
		}
		cc.ClientID, cc.AttemptTimeout = randomID(), shardSendTimeout/2
		c, err := client.New(cc)
		if err != nil {
			log.Warn("shard runtime: client", "to", to, "err", err)
			return nil
		}
		all = append(all, c)
		return c
	}
	release := func(to replica.GroupID, c *client.Client) {
		mu.Lock()
		defer mu.Unlock()
		pools[to] = append(pools[to], c)
	}
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		for _, c := range all {
			c.Close()
		}
	}()
	self := randomID()
	var seq uint64
	propose := func(op []byte) {
		mu.Lock()
		seq++
		s := seq
		mu.Unlock()
		g.submit(&proposal{req: replica.Request{ClientID: self, Seq: s, Op: op}, reply: func(wire.Response) {}})
	}
	pump := node.ShardPump{Controller: n.opts.ShardController, AbandonAfter: abandonAfter, ConfigPollEvery: configPollEvery}
	deliver := func(d node.Delivery) {
		wg.Go(func() {
			var ans []byte
			if c := acquire(d.To); c != nil {
				sctx, cancel := context.WithTimeout(ctx, shardSendTimeout)
				a, err := c.Raw(sctx, d.Op)
				cancel()
				release(d.To, c)
				if err == nil {
					ans = a
				}
			}
			mu.Lock()
			op := pump.Answered(d, ans)
			mu.Unlock()
			if op != nil {
				propose(op)
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
		out, props := pump.Tick(time.Since(epoch), v)
		mu.Unlock()
		for _, d := range out {
			deliver(d)
		}
		for _, op := range props {
			propose(op)
		}
	}
}
