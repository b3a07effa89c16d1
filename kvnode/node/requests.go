package node

import (
	"cmp"
	"errors"
	"maps"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// Requests is one replica's table of client requests on their way through
// its core, and the one place of the rules for answering them:
//
//   - requests are batched and proposed together (one log entry for many);
//   - a refusal by a replica that does not lead is a definite not-leader
//     answer naming the leader it believes in; any other refusal is
//     unknown, since the core may have ordered part of the batch;
//   - an accepted request waits, keyed by (client, seq), until a released
//     Ready carries its result; a result with no value is a stale request
//     (the client already issued a later one) and its outcome is unknown;
//   - a result that a Deferrer state machine marks as deferred is not the
//     answer but the promise of one (a cross-group transaction waiting
//     for its coordinator's decision): the request keeps waiting, and is
//     answered as soon as a released Ready finds the state machine holding
//     its answer, so that its client need not ask again;
//   - when the replica stops leading, or stops, every waiting request is
//     answered unknown, so its client retries elsewhere with the same seq
//     instead of waiting for its deadline;
//   - a read-only request may instead be served by read index, without a
//     log entry (reads.go): it waits, keyed by the read's ID, for the
//     released Ready that confirms it, and is answered from the state
//     machine, or not-leader if it was lost.
//
// W is what the shell needs to reach the request's client (a connection, a
// simulated client). Requests does no I/O: every answer goes through the
// answer function the caller passes, with the request's wire id set. It is
// not safe for concurrent use.
type Requests[W any] struct {
	batch   []pending[W]
	waiters map[waitKey][]pending[W]
	held    map[waitKey][]pending[W] // deferred: waiting for the state machine's answer

	readBatch []pending[W]          // reads for the next StartReads
	reads     map[uint64]pending[W] // started reads by read ID
	readID    uint64                // the last read ID handed to the core
}

type pending[W any] struct {
	req replica.Request
	id  uint64 // the wire request id, echoed in the answer
	to  W
}

type waitKey struct{ client, seq uint64 }

// Add queues a request (wire id id, from to) for the next Propose.
func (q *Requests[W]) Add(id uint64, req replica.Request, to W) {
	q.batch = append(q.batch, pending[W]{req: req, id: id, to: to})
}

// Batched returns how many requests wait for Propose.
func (q *Requests[W]) Batched() int { return len(q.batch) }

// Waiting returns how many proposed requests and started reads wait for
// their answers.
func (q *Requests[W]) Waiting() int { return len(q.waiters) + len(q.held) + len(q.reads) }

// Deferrer is a state machine that answers some requests later than it
// applies them: txn.Group answers a cross-group transaction when its
// coordinator decides, several log entries after the request's own.
type Deferrer interface {
	// Deferred reports whether value, what Apply returned for a request,
	// only promises its answer.
	Deferred(value []byte) bool
	// Answer returns the answer to request seq of client once the state
	// machine has it (done true); nil with done true says the client has
	// since issued a later request, so this one's outcome is unknown here.
	Answer(client, seq uint64) (value []byte, done bool)
}

// Propose hands the batch to core in one call and answers the requests the
// core refused. It returns how many it proposed.
func (q *Requests[W]) Propose(core replica.Replicator, answer func(W, wire.Response)) int {
	n := len(q.batch)
	if n == 0 {
		return 0
	}
	// A fresh slice each time: a core may keep the one it is given.
	reqs := make([]replica.Request, n)
	for i, p := range q.batch {
		reqs[i] = p.req
	}
	err := core.Propose(reqs...)
	var nle *replica.NotLeaderError
	switch {
	case err == nil:
		if q.waiters == nil {
			q.waiters = map[waitKey][]pending[W]{}
		}
		for _, p := range q.batch {
			k := waitKey{p.req.ClientID, p.req.Seq}
			q.waiters[k] = append(q.waiters[k], p)
		}
	case errors.As(err, &nle):
		n = 0
		for _, p := range q.batch {
			answer(p.to, wire.Response{ID: p.id, Status: wire.StatusNotLeader, Leader: uint32(nle.Leader), Err: nle.Error()})
		}
	default:
		n = 0
		for _, p := range q.batch {
			answer(p.to, wire.Response{ID: p.id, Status: wire.StatusUnknown, Err: "propose: " + err.Error()})
		}
	}
	clear(q.batch)
	q.batch = q.batch[:0]
	return n
}

// Release answers the requests whose results a released Ready carries; sm,
// when not nil, may defer some of them (see Deferrer). The state machine
// only ever holds applied, hence committed, state, so an answer found
// there may be given at once.
func (q *Requests[W]) Release(results []replica.Result, sm Deferrer, answer func(W, wire.Response)) {
	if len(q.waiters) == 0 && len(q.held) == 0 {
		return
	}
	var last uint64
	for _, r := range results {
		last = max(last, r.Index)
		k := waitKey{r.ClientID, r.Seq}
		ws := q.waiters[k]
		if len(ws) == 0 {
			continue
		}
		delete(q.waiters, k)
		if sm != nil && r.Value != nil && sm.Deferred(r.Value) {
			if q.held == nil {
				q.held = map[waitKey][]pending[W]{}
			}
			q.held[k] = append(q.held[k], ws...)
			continue
		}
		// A definite result also answers the attempts held before it.
		q.answerAll(append(q.held[k], ws...), r.Index, r.Value, answer)
		delete(q.held, k)
	}
	if len(q.held) == 0 || len(results) == 0 || sm == nil {
		return
	}
	// Something was applied: it may have brought held answers.
	type found struct {
		k waitKey
		v []byte
	}
	var done []found
	for k := range q.held {
		if v, ok := sm.Answer(k.client, k.seq); ok {
			done = append(done, found{k, v})
		}
	}
	// In key order, so that a simulated run stays a function of its seed.
	slices.SortFunc(done, func(a, b found) int { return compareKeys(a.k, b.k) })
	for _, f := range done {
		q.answerAll(q.held[f.k], last, f.v, answer)
		delete(q.held, f.k)
	}
}

// answerAll answers ws with value, applied at or below index; a nil value
// is a stale request.
func (q *Requests[W]) answerAll(ws []pending[W], index uint64, value []byte, answer func(W, wire.Response)) {
	resp := wire.Response{Status: wire.StatusOK, Index: index, Value: value}
	if value == nil {
		// The state machine saw an older request of a client that has
		// moved on; its outcome is whatever it was back then.
		resp = wire.Response{Status: wire.StatusUnknown, Err: "stale request: the client already issued a later one"}
	}
	for _, p := range ws {
		resp.ID = p.id
		answer(p.to, resp)
	}
}

func compareKeys(a, b waitKey) int {
	return cmp.Or(cmp.Compare(a.client, b.client), cmp.Compare(a.seq, b.seq))
}

// Observe tells the table who leads now: unless it is self, every waiting
// and batched request is answered unknown.
func (q *Requests[W]) Observe(self, leader replica.NodeID, answer func(W, wire.Response)) {
	if leader != self {
		q.Fail("leadership lost while the request was pending", leader, answer)
	}
}

// Fail answers every waiting and batched request unknown (why, with leader
// as the hint), every read not-leader, and forgets them: the replica stops
// or no longer leads.
func (q *Requests[W]) Fail(why string, leader replica.NodeID, answer func(W, wire.Response)) {
	q.failReads(why, leader, answer)
	for _, m := range []map[waitKey][]pending[W]{q.waiters, q.held} {
		// In key order, so that a simulated run stays a function of its
		// seed.
		for _, k := range slices.SortedFunc(maps.Keys(m), compareKeys) {
			for _, p := range m[k] {
				answer(p.to, wire.Response{ID: p.id, Status: wire.StatusUnknown, Leader: uint32(leader), Err: why})
			}
		}
		clear(m)
	}
	for _, p := range q.batch {
		answer(p.to, wire.Response{ID: p.id, Status: wire.StatusUnknown, Err: why})
	}
	clear(q.batch)
	q.batch = q.batch[:0]
}
