package node

import (
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// ShardEnv is how a ShardGroup reaches its shell: the shell's event loop,
// its one timer for the group, its clients and its replica of the group.
// A shell's methods run on the loop that owns the replica.
type ShardEnv[C any] interface {
	// Kick asks the shell to call Tick soon, from its loop (not from
	// within Kick). The ShardGroup asks once until that Tick runs.
	Kick()
	// WakeAt arms the group's one timer for time at, replacing the one
	// armed before; when it fires the shell calls Timer.
	WakeAt(at time.Duration)
	// Deliver sends s.Op through s.Via, a client of s.To, and reports
	// its end with Delivered: the answer, or nil when it failed or its
	// outcome is unknown. It may report at once, from within Deliver.
	Deliver(s Send[C])
	// Propose submits req at the shell's replica of the group, with no
	// one waiting for the answer; a replica that does not lead drops it.
	Propose(req replica.Request)
}

// ShardGroup is the shard runtime of one replica of a shard group, as the
// node hosting the replica runs it: it decides when the group's
// ShardRuntime looks at the replica (Tick), and passes what the runtime
// decides to the shell (deliveries, proposals, its one timer). Every
// replica of a shard group has one; only a leader's does anything, since
// the runtime sees its replica as the leader only while the replica
// believes it leads.
//
// The runtime looks at its replica (the shell calls Tick after Kick):
//   - once at start;
//   - when the replica released a Ready with results (applied entries
//     may change the outbox, the pending transactions or the
//     configuration), see Released;
//   - when the replica's leader changed, see Observe;
//   - when a delivery ended (a free delivery slot, an answer proposed
//     and the message's retry time are news to the pump), see Delivered;
//   - at the time the pump's Wake asks for (see ShardPump for what no
//     event announces), through the shell's timer, see Timer.
//
// The timer is re-armed only for a time earlier than the one it is armed
// for: a timer that fires for nothing costs one Tick, which re-arms it.
// A send the runtime could make no client for ends at once, failed. An
// answer ends its delivery; what the runtime makes of it is proposed at
// the replica.
//
// A ShardGroup is volatile: a replica that restarts starts a new one (a
// new runtime session), and the shell drops what the old one still
// awaited. It is not safe for concurrent use.
type ShardGroup[C any] struct {
	Runtime ShardRuntime[C]
	// Self is the hosting node; the replica leads when its status names
	// Self.
	Self replica.NodeID
	Env  ShardEnv[C]

	begun  bool           // Observe ran once
	leader replica.NodeID // the leader at the last Observe
	kicked bool           // Kick was asked and its Tick did not run yet
	timed  bool           // the shell's timer is armed, for timer
	timer  time.Duration
}

// Observe shows the group the replica's status, after every event the
// replica handled: the first call, and any change of leader, asks for a
// Tick.
func (s *ShardGroup[C]) Observe(st replica.Status) {
	if s.begun && st.Leader == s.leader {
		return
	}
	s.begun, s.leader = true, st.Leader
	s.kick()
}

// Released tells the group that its replica released rd, after applying
// its committed entries.
func (s *ShardGroup[C]) Released(rd *replica.Ready) {
	if len(rd.Results) > 0 {
		s.kick()
	}
}

// Tick runs the runtime at time now (the shell's monotonic clock, any
// origin) over the replica's status st and state machine tg: it starts the
// deliveries, proposes what the runtime returns, and arms the timer.
func (s *ShardGroup[C]) Tick(now time.Duration, st replica.Status, tg *txn.Group) {
	s.kicked = false
	sends, props := s.Runtime.Tick(now, View(s.Self, st, tg))
	for _, snd := range sends {
		if !snd.ok {
			s.Delivered(now, snd, nil)
			continue
		}
		s.Env.Deliver(snd)
	}
	for _, req := range props {
		s.Env.Propose(req)
	}
	if at, ok := s.Runtime.Wake(); ok && (!s.timed || at < s.timer) {
		s.timed, s.timer = true, at
		s.Env.WakeAt(at)
	}
}

// Timer is the shell's timer firing at time now: a Tick.
func (s *ShardGroup[C]) Timer(now time.Duration, st replica.Status, tg *txn.Group) {
	s.timed = false
	s.Tick(now, st, tg)
}

// Delivered ends snd at time now with answer (nil: failed or unknown),
// proposes what the runtime makes of it, and asks for a Tick.
func (s *ShardGroup[C]) Delivered(now time.Duration, snd Send[C], answer []byte) {
	if req, ok := s.Runtime.Answered(now, snd, answer); ok {
		s.Env.Propose(req)
	}
	s.kick()
}

func (s *ShardGroup[C]) kick() {
	if !s.kicked {
		s.kicked = true
		s.Env.Kick()
	}
}
