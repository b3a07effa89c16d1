package node

import (
	"errors"
	"maps"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// Querier is a state machine that can answer its read-only ops without a
// log entry (kv.Store, shardctl.Controller). A Replica whose core is a
// replica.ReadIndexer serves such ops by read index instead of proposing
// them.
type Querier interface {
	// ReadOnly reports whether op changes nothing, so that it may be
	// answered by Query.
	ReadOnly(op []byte) bool
	// Query answers a read-only op from the current state, as Apply
	// would, without touching the session table.
	Query(op []byte) []byte
}

// A read served by read index takes no log entry and no session slot: the
// session table never sees its seq, which is harmless because a table
// accepts any seq above the last it applied, and a read needs no
// deduplication since repeating it changes nothing. (A read no longer
// makes an earlier write of its client stale; that write's client was
// told its outcome is unknown, so it may take effect later anyway.) For
// the same reason
// every read that is not answered OK is answered not-leader, a definite
// refusal: unlike a proposed write, nothing of it can take effect later,
// so its client may count it failed (or retry it anywhere at once).

// AddRead queues a read-only request (wire id id, from to) for the next
// StartReads.
func (q *Requests[W]) AddRead(id uint64, req replica.Request, to W) {
	q.readBatch = append(q.readBatch, pending[W]{req: req, id: id, to: to})
}

// StartReads starts a read-index read in core for every queued read and
// answers those the core refused.
func (q *Requests[W]) StartReads(core replica.ReadIndexer, answer func(W, wire.Response)) {
	for _, p := range q.readBatch {
		q.readID++
		err := core.ReadIndex(q.readID)
		if err == nil {
			if q.reads == nil {
				q.reads = map[uint64]pending[W]{}
			}
			q.reads[q.readID] = p
			continue
		}
		var leader replica.NodeID
		if nle := (*replica.NotLeaderError)(nil); errors.As(err, &nle) {
			leader = nle.Leader
		}
		answer(p.to, wire.Response{ID: p.id, Status: wire.StatusNotLeader, Leader: uint32(leader), Err: "read index: " + err.Error()})
	}
	clear(q.readBatch)
	q.readBatch = q.readBatch[:0]
}

// ReleaseReads answers the reads a released Ready reports: a confirmed one
// from sm, whose state is at or past the read's index once the Ready that
// confirmed it is released, a lost one not-leader (leader is the hint).
func (q *Requests[W]) ReleaseReads(reads []replica.ReadState, sm Querier, leader replica.NodeID, answer func(W, wire.Response)) {
	for _, rs := range reads {
		p, ok := q.reads[rs.ID]
		if !ok {
			continue
		}
		delete(q.reads, rs.ID)
		if rs.Lost {
			answer(p.to, wire.Response{ID: p.id, Status: wire.StatusNotLeader, Leader: uint32(leader), Err: "read lost: leadership changed before it was confirmed"})
			continue
		}
		answer(p.to, wire.Response{ID: p.id, Status: wire.StatusOK, Index: rs.Index, Value: sm.Query(p.req.Op)})
	}
}

// failReads answers every pending and queued read not-leader (why, with
// leader as the hint) and forgets them.
func (q *Requests[W]) failReads(why string, leader replica.NodeID, answer func(W, wire.Response)) {
	if len(q.reads) > 0 {
		// Read IDs grow in arrival order; answering in that order keeps a
		// simulated run a function of its seed.
		for _, id := range slices.Sorted(maps.Keys(q.reads)) {
			p := q.reads[id]
			answer(p.to, wire.Response{ID: p.id, Status: wire.StatusNotLeader, Leader: uint32(leader), Err: why})
		}
		clear(q.reads)
	}
	for _, p := range q.readBatch {
		answer(p.to, wire.Response{ID: p.id, Status: wire.StatusNotLeader, Leader: uint32(leader), Err: why})
	}
	clear(q.readBatch)
	q.readBatch = q.readBatch[:0]
}
