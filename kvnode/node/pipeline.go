package node

import (
	"fmt"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// MaxMerge bounds how many Readies one storage write covers.
const MaxMerge = 64

// Pipeline is the rule "persist a Ready, then release what depends on it":
// a replica's Readies are written to its replica.Storage in order, runs of
// them merged into one write, each write synced before the next begins, and
// a Ready's messages and results are released only after the sync that
// covers its Persist and every Persist before it.
//
// Syncing each write before the next begins is load-bearing beyond the
// messages: the cores' hard states claim a commit index one Ready behind
// the entries it covers (paxos, vr), which is safe only if a crash can
// never keep a later write while losing an earlier one.
//
// Nor are the Results and Reads of a core that is a replica.EarlyAnswerer,
// which the Replica answers as soon as it has the Ready (answerEarly).
//
// A Ready's Early messages are not the pipeline's: the Replica sends them
// before it pushes the Ready, so they leave in Ready order, ahead of the
// write of their own Ready and of every Ready still queued. That is how a
// leader's proposals reach its followers while its own write is in
// progress. It is safe because Early carries no acknowledgement and no
// commit index that counts an unsynced write: the cores count their own
// copy only when its acknowledgement, a message to themselves among the
// Ready's Messages, comes back through the pipeline (replica.Ready).
//
// It is not safe for concurrent use: a Replica owns it.
type Pipeline struct {
	queue    []replica.Ready
	inflight int // Readies at the head of queue covered by the write in progress
	merged   replica.Persist
	done     []replica.Ready // reused by Done
}

// Push queues rd behind every Ready not yet released. It reports true, and
// queues nothing, when rd has nothing to persist and nothing is queued: the
// caller may release it at once.
func (p *Pipeline) Push(rd replica.Ready) bool {
	if atOnce(&rd, len(p.queue) > 0) {
		return true
	}
	p.queue = append(p.queue, rd)
	return false
}

// atOnce reports whether rd may be released without waiting for storage:
// only when it has nothing to persist and no Ready before it (pending)
// still waits for its write or sync, since its messages may depend on
// what those persist.
func atOnce(rd *replica.Ready, pending bool) bool {
	return !pending && rd.Persist.Empty()
}

// Busy reports whether Readies wait to be written or released.
func (p *Pipeline) Busy() bool { return len(p.queue) > 0 }

// Writing reports whether a write taken by Next awaits Done.
func (p *Pipeline) Writing() bool { return p.inflight > 0 }

// Next returns the next write: the Persist of the longest run of queued
// Readies that one storage write may cover. The caller must Write it, Sync,
// and then call Done. ok is false while a write is in progress or nothing
// is queued. The returned Persist is valid until the next call to Next.
//
// A run never crosses a Ready that truncates: storage splits such a
// Persist into several transactions in the contract's order (State,
// Truncate, Entries), and a later Ready's State must not overtake them. A
// snapshot may only end a run, so that it is written after the run's
// entries.
func (p *Pipeline) Next() (w *replica.Persist, ok bool) {
	if p.inflight > 0 || len(p.queue) == 0 {
		return nil, false
	}
	end := 1
	for end < len(p.queue) && end < MaxMerge && !p.queue[0].Persist.Truncate &&
		!p.queue[end].Persist.Truncate && p.queue[end-1].Persist.Snapshot == nil {
		end++
	}
	p.inflight = end
	if end == 1 {
		return &p.queue[0].Persist, true
	}
	merge(&p.merged, p.queue[:end])
	return &p.merged, true
}

// Done ends the write that Next returned, which is now synced, and returns
// the Readies it covered, in order, for the caller to release. The slice is
// valid until the next call to Done.
func (p *Pipeline) Done() []replica.Ready {
	n := p.inflight
	p.inflight = 0
	clear(p.done)
	p.done = append(p.done[:0], p.queue[:n]...)
	rest := copy(p.queue, p.queue[n:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	return p.done
}

// Start begins the next write: it takes the next run (see Next) and writes
// it to st. It reports false when a write is in progress or nothing is
// queued. The caller then syncs, now or later, with Finish.
func (p *Pipeline) Start(st replica.Storage) (bool, error) {
	w, ok := p.Next()
	if !ok {
		return false, nil
	}
	if err := st.Write(w); err != nil {
		return true, fmt.Errorf("write: %w", err)
	}
	return true, nil
}

// Finish ends the write that Start began: it syncs st and only then
// releases, in order, the Readies the write covered. After a failed sync
// nothing is released: the caller must stop and restart from storage.
// release may stop early by returning false (the node stopped), which
// leaves the rest unreleased.
func (p *Pipeline) Finish(st replica.Storage, release func(*replica.Ready) bool) error {
	if err := st.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	rds := p.Done()
	for i := range rds {
		if !release(&rds[i]) {
			return nil
		}
	}
	return nil
}

// merge combines the Persists of consecutive Readies into w, whose Entries
// buffer is reused.
func merge(w *replica.Persist, rds []replica.Ready) {
	*w = replica.Persist{Entries: w.Entries[:0]}
	w.Truncate, w.TruncateAfter = rds[0].Persist.Truncate, rds[0].Persist.TruncateAfter
	for i := range rds {
		q := &rds[i].Persist
		if q.State != nil {
			w.State = q.State
		}
		w.Entries = append(w.Entries, q.Entries...)
		if q.Snapshot != nil {
			w.Snapshot = q.Snapshot
		}
	}
}
