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

// shardShell is the I/O of a shard group's node.ShardGroup, which the
// group's loop goroutine runs: kicks and the timer are events of the loop,
// each delivery runs on a goroutine of its own and its end comes back to
// the loop as an event too.
type shardShell struct {
	g     *group
	tg    *txn.Group // the group's state machine
	sg    *node.ShardGroup[*client.Client]
	epoch time.Time
	kick  chan struct{}
	timer *time.Timer
	ends  chan shardEnd
	ctx   context.Context // the loop's, set when it starts
	sends sync.WaitGroup
}

// shardEnd is a delivery that ended, with its answer (nil: none).
type shardEnd struct {
	s      node.Send[*client.Client]
	answer []byte
}

// initShard gives a shard group of a sharded node its shard runtime.
func (g *group) initShard() {
	n := g.node
	tg, ok := g.sm.(*txn.Group)
	if !ok || n.opts.ShardController == 0 {
		return
	}
	sh := &shardShell{g: g, tg: tg, epoch: time.Now(), kick: make(chan struct{}, 1), timer: time.NewTimer(time.Hour), ends: make(chan shardEnd, 64)}
	sh.timer.Stop()
	log := n.log.With("group", g.id)
	sh.sg = &node.ShardGroup[*client.Client]{
		Self: n.opts.ID,
		Env:  sh,
		Runtime: node.ShardRuntime[*client.Client]{
			Pump:    node.ShardPump{Controller: n.opts.ShardController, AbandonAfter: abandonAfter},
			Session: randomID(),
			Dial: func(to replica.GroupID) (*client.Client, error) {
				cc, err := client.FromCluster(n.opts.Cluster, to)
				if err == nil {
					cc.AttemptTimeout = shardSendTimeout / 2
					var c *client.Client
					if c, err = client.New(cc); err == nil {
						return c, nil
					}
				}
				log.Warn("shard runtime: client", "to", to, "err", err)
				return nil, err
			},
		},
	}
	g.shard = sh
}

func randomID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func (sh *shardShell) now() time.Duration { return time.Since(sh.epoch) }

// Kick makes the loop tick the group's runtime; kicks coalesce.
func (sh *shardShell) Kick() {
	select {
	case sh.kick <- struct{}{}:
	default:
	}
}

// WakeAt re-arms the loop's shard timer.
func (sh *shardShell) WakeAt(at time.Duration) { sh.timer.Reset(max(at-sh.now(), 0)) }

// Deliver runs s on a goroutine of its own, which hands its end to the
// loop; if the loop has stopped, it closes the client.
func (sh *shardShell) Deliver(s node.Send[*client.Client]) {
	sh.sends.Go(func() {
		ctx, cancel := context.WithTimeout(sh.ctx, shardSendTimeout)
		ans, err := s.Via.Raw(ctx, s.Op)
		cancel()
		if err != nil {
			ans = nil
		}
		select {
		case sh.ends <- shardEnd{s, ans}:
		case <-sh.ctx.Done():
			s.Via.Close()
		}
	})
}

// Propose submits req at the group's replica.
func (sh *shardShell) Propose(req replica.Request) { sh.g.rep.Submit(req) }

// stop waits for the deliveries still running, once the loop has stopped,
// and closes every client.
func (sh *shardShell) stop() {
	sh.sends.Wait()
	sh.timer.Stop()
	for {
		select {
		case e := <-sh.ends:
			e.s.Via.Close()
		default:
			for _, c := range sh.sg.Runtime.Clients() {
				c.Close()
			}
			return
		}
	}
}
