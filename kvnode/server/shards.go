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
	// inflight holds the requests being delivered: the outbox repeats a
	// message until its answer is applied, and it is sent again only
	// after the previous delivery ended.
	inflight := map[string]bool{}
	sem := make(chan struct{}, 64)
	deliver := func(key string, to replica.GroupID, op []byte, answer func([]byte) []byte) {
		mu.Lock()
		if inflight[key] {
			mu.Unlock()
			return
		}
		inflight[key] = true
		mu.Unlock()
		select {
		case sem <- struct{}{}:
		default:
			mu.Lock()
			delete(inflight, key)
			mu.Unlock()
			return
		}
		wg.Go(func() {
			defer func() {
				<-sem
				mu.Lock()
				delete(inflight, key)
				mu.Unlock()
			}()
			c := acquire(to)
			if c == nil {
				return
			}
			defer release(to, c)
			sctx, cancel := context.WithTimeout(ctx, shardSendTimeout)
			ans, err := c.Raw(sctx, op)
			cancel()
			if err != nil {
				return
			}
			if a := answer(ans); len(a) > 0 {
				propose(a)
			}
		})
	}
	same := func(b []byte) []byte { return b }
	firstSeen := map[txn.TxnID]time.Time{}
	var lastPoll time.Time
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
		for _, m := range v.outbox {
			deliver(string(m.Op), m.To, m.Op, same)
		}
		now := time.Now()
		want := v.config + 1
		if now.Sub(lastPoll) >= configPollEvery {
			lastPoll = now
			deliver("config", n.opts.ShardController, shardctl.Op{Kind: shardctl.Query, Num: int64(want)}.Encode(), func(ans []byte) []byte {
				if r, err := shardctl.DecodeReply(ans); err == nil && r.Err == "" && r.Config.Num == want {
					return txn.EncodeConfigRequest(&r.Config)
				}
				return nil
			})
		}
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
