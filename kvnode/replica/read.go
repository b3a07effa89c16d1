package replica

import "math/bits"

// ReadIndexer is implemented by cores that serve linearizable reads without
// a log entry (see the package documentation).
type ReadIndexer interface {
	// ReadIndex starts a linearizable read identified by id, which the
	// core hands back in a ReadState. It returns a *NotLeaderError when
	// this replica cannot serve reads now.
	ReadIndex(id uint64) error
}

// ReadState reports a read started with ReadIndex. Unless Lost, the read is
// confirmed at Index: every write acknowledged before ReadIndex was called
// is at or below Index, and the state machine has applied at least Index.
// Lost means the replica stopped leading before it could confirm; the read
// was not served and may be retried at the new leader.
type ReadState struct {
	ID    uint64
	Index uint64
	Lost  bool
}

// ReadRounds is the read-index bookkeeping that every core shares: it
// batches reads into confirmation rounds and holds confirmed reads until
// the state machine reaches their index. It is deterministic and knows
// nothing of messages; the core sends the round's heartbeats, ties each
// acknowledgement to its ballot or view, and reports it with Ack.
//
// A round serves exactly the reads that arrived before it started; reads
// that arrive while it is in flight wait for the next one, because an
// acknowledgement sent before a read arrived says nothing about who led
// when it did. A core starts rounds when the runtime drains its Ready, just
// before the round's heartbeats leave, so every read that arrived since
// the previous Ready shares one round. Round IDs grow for the life of the value and are never 0.
// Groups of at most 64 members are supported (acknowledgements are a
// bitmask of member indexes).
type ReadRounds struct {
	round   uint64 // the newest round's ID
	active  bool   // round is in flight
	acks    uint64 // members (by index) that acknowledged round
	inRound []ReadState
	waiting []ReadState // arrived during the round in flight
	held    []ReadState // confirmed, waiting for the state machine
	out     []ReadState
}

// Add queues read id at index for the next round.
func (q *ReadRounds) Add(id, index uint64) {
	q.waiting = append(q.waiting, ReadState{ID: id, Index: index})
}

// Startable reports whether reads wait and no round is in flight.
func (q *ReadRounds) Startable() bool { return !q.active && len(q.waiting) > 0 }

// Start begins a round for every waiting read, counting self (a member
// index) as acknowledged, and returns the round's ID, which the core puts
// on its heartbeats. It returns 0 when no read waits or a round is in
// flight.
func (q *ReadRounds) Start(self int) uint64 {
	if !q.Startable() {
		return 0
	}
	q.round++
	q.active = true
	q.acks = 1 << self
	q.inRound, q.waiting = q.waiting, q.inRound[:0]
	return q.round
}

// InFlight returns the ID of the round in flight, or 0.
func (q *ReadRounds) InFlight() uint64 {
	if !q.active {
		return 0
	}
	return q.round
}

// Ack records that member peer acknowledged round as the leader's, and
// confirms the round's reads once quorum members did.
func (q *ReadRounds) Ack(round uint64, peer, quorum int) {
	q.AckWith(round, peer, func(acks uint64) bool { return bits.OnesCount64(acks) >= quorum })
}

// AckWith is Ack for a core whose quorums are not a plain count (several
// configurations during a membership change): enough reports whether the
// members (by index) in acks confirm the round.
func (q *ReadRounds) AckWith(round uint64, peer int, enough func(acks uint64) bool) {
	if !q.active || round != q.round {
		return
	}
	q.acks |= 1 << peer
	if !enough(q.acks) {
		return
	}
	q.active = false
	q.held = append(q.held, q.inRound...)
	q.inRound = q.inRound[:0]
}

// Release moves to the output every confirmed read whose index the state
// machine has applied.
func (q *ReadRounds) Release(applied uint64) {
	k := 0
	for _, r := range q.held {
		if r.Index <= applied {
			q.out = append(q.out, r)
		} else {
			q.held[k] = r
			k++
		}
	}
	clear(q.held[k:])
	q.held = q.held[:k]
}

// Abort reports every read not yet released as lost: the replica no
// longer leads, so neither a round in flight nor a confirmed read whose
// index it has not reached may be answered by it.
func (q *ReadRounds) Abort() {
	for _, rs := range [][]ReadState{q.held, q.inRound, q.waiting} {
		for _, r := range rs {
			r.Lost = true
			q.out = append(q.out, r)
		}
	}
	q.held, q.inRound, q.waiting = nil, nil, nil
	q.active = false
}

// Pending reports whether reads are waiting, in a round or held.
func (q *ReadRounds) Pending() bool {
	return len(q.waiting) > 0 || len(q.inRound) > 0 || len(q.held) > 0
}

// HasOutput reports whether Drain would return anything.
func (q *ReadRounds) HasOutput() bool { return len(q.out) > 0 }

// Drain returns the reads released or lost since the previous call.
func (q *ReadRounds) Drain() []ReadState {
	out := q.out
	q.out = nil
	return out
}
