package node

import (
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// ShardRuntime carries out a ShardPump's decisions for one shard group,
// without I/O: it hands each delivery a client of the target group from a
// pool of idle ones (a client runs one request at a time, and one slow
// request must not hold up the rest), turns what the pump wants proposed
// into requests under the runtime's own session, and takes each client
// back when its delivery ends. C is the shell's client type; Dial, the
// shell's, makes a new one when none is idle.
//
// A shell calls Tick with the group's view whenever its replica of the
// group applied something or saw the leader change, after every Answered,
// and at the time Wake returns (see ShardPump for why that one timer
// remains); it sends each Send's op through its Via client, reports every
// Send's end with Answered, and submits the returned requests at the
// group's leader. A ShardRuntime is not safe for concurrent use.
type ShardRuntime[C any] struct {
	Pump ShardPump
	// Session is the client id the runtime proposes under; unique among
	// the group's clients.
	Session uint64
	// Dial returns a new client of group to; an error fails the delivery
	// (the outbox repeats it).
	Dial func(to replica.GroupID) (C, error)

	seq  uint64
	idle map[replica.GroupID][]C
}

// Send is a delivery the shell carries out through Via, a client of the
// delivery's target group; its zero Via (and Err) means no client could be
// made: the shell just reports the Send answered with nil.
type Send[C any] struct {
	Delivery
	Via C
	Err error
	ok  bool
}

// Tick looks at the group at time now and returns the deliveries to send
// and the requests to submit at the group's leader.
func (r *ShardRuntime[C]) Tick(now time.Duration, v ShardView) (sends []Send[C], propose []replica.Request) {
	out, ops := r.Pump.Tick(now, v)
	for _, d := range out {
		sends = append(sends, r.acquire(d))
	}
	for _, op := range ops {
		propose = append(propose, r.request(op))
	}
	return sends, propose
}

// Wake returns when the shell must call Tick even if no event comes (ok
// false: only an event needs it).
func (r *ShardRuntime[C]) Wake() (at time.Duration, ok bool) { return r.Pump.Wake() }

// Answered ends s at time now: answer is the target group's reply, or nil
// when the send failed or its outcome is unknown. s's client goes back to
// the pool. It returns the request to submit at the group's leader, if
// any.
func (r *ShardRuntime[C]) Answered(now time.Duration, s Send[C], answer []byte) (replica.Request, bool) {
	if s.ok {
		r.idle[s.To] = append(r.idle[s.To], s.Via)
	}
	op := r.Pump.Answered(now, s.Delivery, answer)
	if op == nil {
		return replica.Request{}, false
	}
	return r.request(op), true
}

// Clients returns the idle clients, for a shell to close when it stops
// (after every Send has been answered).
func (r *ShardRuntime[C]) Clients() []C {
	var all []C
	for _, p := range r.idle {
		all = append(all, p...)
	}
	return all
}

func (r *ShardRuntime[C]) acquire(d Delivery) Send[C] {
	if r.idle == nil {
		r.idle = map[replica.GroupID][]C{}
	}
	if p := r.idle[d.To]; len(p) > 0 {
		c := p[len(p)-1]
		r.idle[d.To] = p[:len(p)-1]
		return Send[C]{Delivery: d, Via: c, ok: true}
	}
	c, err := r.Dial(d.To)
	if err != nil {
		return Send[C]{Delivery: d, Err: err}
	}
	return Send[C]{Delivery: d, Via: c, ok: true}
}

func (r *ShardRuntime[C]) request(op []byte) replica.Request {
	r.seq++
	return replica.Request{ClientID: r.Session, Seq: r.seq, Op: op}
}
