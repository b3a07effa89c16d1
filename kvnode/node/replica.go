package node

import (
	"errors"
	"fmt"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// Host is what a Replica needs from the shell that runs it.
type Host[W any] interface {
	// Send puts a released peer message on its way: frame is its wire
	// frame (nil when the Replica has no codec and m travels as a value),
	// reused after Send returns; err says the codec could not encode m.
	Send(m replica.Message, frame []byte, err error)
	// Answer sends a client its answer.
	Answer(to W, r wire.Response)
	// Readied sees every Ready as the core hands it over, Releasing every
	// Ready about to be released (its Persist durable); Released says
	// whether the replica still runs after one was released (false stops
	// it: the simulator crashes nodes at chosen moments).
	Readied(rd *replica.Ready)
	Releasing(rd *replica.Ready)
	Released(rd *replica.Ready) bool
}

// Replica is one replica of a group as a kvnode process runs it, fed
// events one at a time: a peer message, a client request, a tick, a disk
// write done. It owns the core, the Pipeline that persists each Ready
// before releasing what depends on it, and the Requests table that answers
// clients; it emits through its Host and the Storage the shell passes. No
// goroutines, clock or I/O inside.
type Replica[W any] struct {
	ID    replica.NodeID
	Group replica.GroupID
	Core  replica.Replicator
	// Codec encodes released messages into peer frames; nil passes them
	// as values.
	Codec replica.Codec
	Host  Host[W]
	// MaxBatch is how many client requests a leader holds back while a
	// write is in progress, to propose them together when it completes
	// (they could not be durable any sooner, and together they make one
	// log entry instead of many); 0 proposes every request at once.
	MaxBatch int
	// SM is the state machine the core applies to. When it is a Querier
	// and the core a replica.ReadIndexer, read-only requests are served
	// by read index, without a log entry; nil puts every request through
	// the log. When it is a Deferrer, the requests it defers wait here
	// for their answers.
	SM replica.StateMachine

	pl      Pipeline
	reqs    Requests[W]
	writing bool
	stopped bool
	buf     []byte
}

// Stopped reports whether the Host stopped the replica.
func (r *Replica[W]) Stopped() bool { return r.stopped }

// Writing reports whether a storage write is in progress.
func (r *Replica[W]) Writing() bool { return r.writing }

// Tick advances the core's clock one tick. Events (Tick, Step, Request,
// Submit) only feed the core; Flush then takes what they produced.
func (r *Replica[W]) Tick() { r.Core.Tick() }

// Step hands the core a peer message. One that claims to come from this
// node is dropped: the core's messages to itself never travel (release
// hands them back), so such a message is forged or corrupt, and taking it
// would let it stand for an acknowledgement of an unsynced write.
func (r *Replica[W]) Step(m replica.Message) {
	if m.Source() == r.ID {
		return
	}
	r.Core.Step(m)
}

// Request takes a client request (wire id id, from to).
func (r *Replica[W]) Request(id uint64, req replica.Request, to W) {
	if _, sm, ok := r.reader(); ok && sm.ReadOnly(req.Op) {
		r.reqs.AddRead(id, req, to)
		return
	}
	r.reqs.Add(id, req, to)
}

// reader returns the core and state machine that serve reads by read
// index; ok is false when either cannot.
func (r *Replica[W]) reader() (ri replica.ReadIndexer, sm Querier, ok bool) {
	if ri, ok = r.Core.(replica.ReadIndexer); !ok {
		return nil, nil, false
	}
	sm, ok = r.SM.(Querier)
	return ri, sm, ok
}

// Submit proposes req with no one waiting for the answer (a runtime's own
// session); a replica that does not lead drops it.
func (r *Replica[W]) Submit(req replica.Request) { _ = r.Core.Propose(req) }

// Flush runs after one or more events: it starts the read-only requests'
// reads by read index, proposes the batched client requests (unless a
// leader holds them back for the write in progress), sends each of the
// core's Readies' Early messages, answers their results and reads at once
// when the core is a replica.EarlyAnswerer, puts the rest through the
// pipeline, releasing at once those with nothing to persist behind nothing
// pending, and answers waiting clients unknown when the replica no longer
// leads. It returns how many requests it proposed.
func (r *Replica[W]) Flush() int {
	if r.stopped {
		return 0
	}
	if ri, _, ok := r.reader(); ok {
		r.reqs.StartReads(ri, r.Host.Answer)
	}
	n := 0
	if b := r.reqs.Batched(); b > 0 && (!r.writing || b >= r.MaxBatch || r.Core.Status().Leader != r.ID) {
		n = r.reqs.Propose(r.Core, r.Host.Answer)
	}
	ea, early := r.Core.(replica.EarlyAnswerer)
	early = early && ea.AnswersEarly()
	for !r.stopped && r.Core.HasReady() {
		rd := r.Core.Ready()
		r.Host.Readied(&rd)
		r.send(rd.Early)
		if early && (r.pl.Busy() || !rd.Persist.Empty()) {
			r.answerEarly(&rd)
			if r.stopped || (rd.Persist.Empty() && len(rd.Messages) == 0) {
				continue // nothing left that waits for storage
			}
		}
		if r.pl.Push(rd) {
			r.release(&rd)
		}
	}
	if !r.stopped && r.reqs.Waiting() > 0 {
		r.reqs.Observe(r.ID, r.Core.Status().Leader, r.Host.Answer)
	}
	return n
}

// Close stops the replica: every request still waiting or batched is
// answered unknown (why).
func (r *Replica[W]) Close(why string) {
	r.stopped = true
	r.reqs.Fail(why, r.Core.Status().Leader, r.Host.Answer)
}

// StartWrite starts the next storage write unless one is in progress; the
// shell calls WriteDone when it completes. It reports whether a write
// started.
func (r *Replica[W]) StartWrite(st replica.Storage) (bool, error) {
	if r.stopped || r.writing {
		return false, nil
	}
	started, err := r.pl.Start(st)
	if err != nil {
		return false, fmt.Errorf("disk %w", err)
	}
	r.writing = started
	return started, nil
}

// WriteDone syncs the write in progress and releases the Readies it
// covered. An error means the replica must stop: its storage may have
// lost what it acknowledged writing.
func (r *Replica[W]) WriteDone(st replica.Storage) error {
	r.writing = false
	return r.pl.Finish(st, func(rd *replica.Ready) bool {
		r.release(rd)
		return !r.stopped
	})
}

// release sends a durable Ready's messages, hands the core back the
// acknowledgements it addressed to itself, and answers its clients.
func (r *Replica[W]) release(rd *replica.Ready) {
	r.Host.Releasing(rd)
	r.send(rd.Messages)
	d, _ := r.SM.(Deferrer)
	r.reqs.Release(rd.Results, d, r.Host.Answer)
	if len(rd.Reads) > 0 {
		_, sm, _ := r.reader()
		r.reqs.ReleaseReads(rd.Reads, sm, r.Core.Status().Leader, r.Host.Answer)
	}
	if !r.Host.Released(rd) {
		r.stopped = true
	}
}

// answerEarly releases rd's Results and Reads ahead of its Persist and of
// every Ready still queued, leaving the rest of rd to the pipeline. Only
// for a core that is a replica.EarlyAnswerer: its answers never rest on a
// write of this replica that is not yet durable (a result is of a
// committed entry, and its commit counted this replica's copy only once
// durable; a confirmed read rests on its round's acknowledgements and is
// answered from that same committed state). Holding them would only make
// clients wait for the writes of later proposals.
func (r *Replica[W]) answerEarly(rd *replica.Ready) {
	if len(rd.Results) == 0 && len(rd.Reads) == 0 {
		return
	}
	ans := replica.Ready{Results: rd.Results, Reads: rd.Reads}
	rd.Results, rd.Reads = nil, nil
	r.release(&ans)
}

// send puts msgs on their way, in order; one addressed to this node goes
// back to the core.
func (r *Replica[W]) send(msgs []replica.Message) {
	for _, m := range msgs {
		if m.Dest() == r.ID {
			r.Core.Step(m)
			continue
		}
		if r.Codec == nil {
			r.Host.Send(m, nil, nil)
			continue
		}
		var encErr error
		b, err := wire.AppendFrame(r.buf[:0], wire.KindPeer, func(b []byte) []byte {
			b = wire.AppendPeer(b, uint32(r.Group))
			b, encErr = r.Codec.AppendMessage(b, m)
			return b
		})
		if err == nil {
			err = encErr
		}
		if err != nil {
			r.Host.Send(m, nil, err)
			continue
		}
		r.buf = b
		r.Host.Send(m, b, nil)
	}
}

// ErrNoMembership refuses a membership change to a core that does not
// implement replica.Reconfigurer.
var ErrNoMembership = errors.New("this replication protocol does not support membership changes")

// ChangeMembers proposes members as the group's next configuration (see
// replica.Reconfigurer); Flush then takes what it produced.
func (r *Replica[W]) ChangeMembers(members []replica.NodeID) error {
	rc, ok := r.Core.(replica.Reconfigurer)
	if !ok {
		return fmt.Errorf("group %d: %w", r.Group, ErrNoMembership)
	}
	if err := rc.ChangeMembers(members); err != nil {
		return fmt.Errorf("group %d: %w", r.Group, err)
	}
	return nil
}
