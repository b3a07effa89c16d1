package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// Sharded runtime pacing: how often a leader delivers its group's outbox,
// how long one delivery may take, and how long a coordinator waits for
// votes before it abandons (aborts) a transaction.
const (
	shardPumpEvery   = 20 * time.Millisecond
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
// does what its state machine cannot: deliver its Outbox, propose the
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

type shardView struct {
	leader  bool
	outbox  []txn.Outgoing
	pending []txn.TxnID
	config  uint64
}

// view reads the group's state on its loop goroutine.
func (g *group) shardView(ctx context.Context) (shardView, bool) {
	ch := make(chan shardView, 1)
	f := func() {
		st := g.core.Status()
		tg := g.sm.(*txn.Group)
		v := shardView{leader: st.Leader == g.node.opts.ID, config: tg.ConfigNum()}
		if v.leader {
			v.outbox, v.pending = tg.Outbox(), tg.Pending()
		}
		ch <- v
	}
	select {
	case g.calls <- f:
	case <-ctx.Done():
		return shardView{}, false
	}
	select {
	case v := <-ch:
		return v, true
	case <-ctx.Done():
		return shardView{}, false
	}
}

func randomID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func (n *Node) shardRuntime(ctx context.Context, g *group) {
	log := n.log.With("group", g.id)
	clients := map[replica.GroupID]*client.Client{}
	get := func(to replica.GroupID) *client.Client {
		if c := clients[to]; c != nil {
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
		clients[to] = c
		return c
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	self, seq := randomID(), uint64(0)
	propose := func(op []byte) {
		seq++
		g.submit(&proposal{req: replica.Request{ClientID: self, Seq: seq, Op: op}, reply: func(wire.Response) {}})
	}
	firstSeen := map[txn.TxnID]time.Time{}
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
		if !v.leader {
			clear(firstSeen)
			continue
		}
		// One goroutine per target group, so a group that is down or cut
		// off delays only its own messages.
		byTo := map[replica.GroupID][]txn.Outgoing{}
		for _, m := range v.outbox {
			byTo[m.To] = append(byTo[m.To], m)
		}
		answers := make(chan []byte, len(v.outbox)+1)
		var wg sync.WaitGroup
		for to, ms := range byTo {
			c := get(to)
			if c == nil {
				continue
			}
			wg.Go(func() {
				for _, m := range ms {
					sctx, cancel := context.WithTimeout(ctx, shardSendTimeout)
					ans, err := c.Raw(sctx, m.Op)
					cancel()
					if err != nil {
						return
					}
					if len(ans) > 0 {
						answers <- ans
					}
				}
			})
		}
		if ctl := get(n.opts.ShardController); ctl != nil {
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, shardSendTimeout)
				defer cancel()
				ans, err := ctl.Raw(sctx, shardctl.Op{Kind: shardctl.Query, Num: int64(v.config + 1)}.Encode())
				if err != nil {
					return
				}
				if r, err := shardctl.DecodeReply(ans); err == nil && r.Err == "" && r.Config.Num == v.config+1 {
					answers <- txn.EncodeConfigRequest(&r.Config)
				}
			})
		}
		wg.Wait()
		close(answers)
		for a := range answers {
			propose(a)
		}
		now := time.Now()
		for id := range firstSeen {
			if !slices.Contains(v.pending, id) {
				delete(firstSeen, id)
			}
		}
		for _, id := range v.pending {
			t0, ok := firstSeen[id]
			switch {
			case !ok:
				firstSeen[id] = now
			case now.Sub(t0) > abandonAfter:
				propose(txn.EncodeAbandon(id))
				firstSeen[id] = now
			}
		}
	}
}
