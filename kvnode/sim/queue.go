package sim

import "github.com/chaoskv/chaos/kvnode/replica"

// eventKind says what an event does when its time comes.
type eventKind uint8

const (
	evTick    eventKind = iota + 1 // a node's clock advances one tick
	evDeliver                      // a protocol message reaches a node
	evRequest                      // a client request reaches a node
	evReply                        // a node's answer reaches a client
	evTimer                        // a client's timer fires
	evFunc                         // run a scheduled function (nemesis steps, tests)
	evSync                         // a node's disk write is synced (or its sync fails)
)

// event is one entry of the simulation's agenda. Events at the same virtual
// time run in the order they were scheduled (seq), which keeps a run a pure
// function of its seed.
type event struct {
	at   int64
	seq  uint64
	kind eventKind
	who  int32           // node or client index
	gen  uint64          // node incarnation or client timer the event belongs to; the sender's index for evDeliver
	msg  replica.Message // a *frame as it crosses the wire, or a value (no codec)
	pkt  *packet
	fn   func()
}

// agenda is a binary min-heap of events by (at, seq). It is hand-rolled
// rather than container/heap to avoid interface conversions on the hot path.
type agenda struct {
	ev  []event
	seq uint64
}

func (a *agenda) len() int { return len(a.ev) }

func (a *agenda) less(i, j int) bool {
	if a.ev[i].at != a.ev[j].at {
		return a.ev[i].at < a.ev[j].at
	}
	return a.ev[i].seq < a.ev[j].seq
}

func (a *agenda) push(e event) {
	a.seq++
	e.seq = a.seq
	a.ev = append(a.ev, e)
	i := len(a.ev) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a.ev[i], a.ev[p] = a.ev[p], a.ev[i]
		i = p
	}
}

func (a *agenda) peekTime() int64 { return a.ev[0].at }

func (a *agenda) pop() event {
	top := a.ev[0]
	n := len(a.ev) - 1
	a.ev[0] = a.ev[n]
	a.ev[n] = event{}
	a.ev = a.ev[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a.less(r, l) {
			m = r
		}
		if !a.less(m, i) {
			break
		}
		a.ev[i], a.ev[m] = a.ev[m], a.ev[i]
		i = m
	}
	return top
}

// frame is an encoded protocol message in flight: what a socket would carry.
type frame struct{ b []byte }

// Source and Dest are never asked of a frame: the event says who sent it
// and to whom, and decoding checks that the message agrees.
func (*frame) Source() replica.NodeID { return 0 }
func (*frame) Dest() replica.NodeID   { return 0 }
