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
// rather than container/heap to avoid interface conversions on the hot
// path, and the heap orders small pointer-free keys while the events stay
// put in slots: sifting 64-byte events that hold pointers cost a write
// barrier per move, a tenth of a sweep's time.
type agenda struct {
	keys  []agendaKey
	slots []event // an event per key; free slots are zero
	free  []int32 // indices of free slots
	seq   uint64
}

// agendaKey is an event's place in the heap: its order and its slot.
type agendaKey struct {
	at   int64
	seq  uint64
	slot int32
}

func (a *agenda) len() int { return len(a.keys) }

func (a *agenda) less(i, j int) bool {
	if a.keys[i].at != a.keys[j].at {
		return a.keys[i].at < a.keys[j].at
	}
	return a.keys[i].seq < a.keys[j].seq
}

func (a *agenda) push(e event) {
	a.seq++
	e.seq = a.seq
	var slot int32
	if n := len(a.free); n > 0 {
		slot = a.free[n-1]
		a.free = a.free[:n-1]
		a.slots[slot] = e
	} else {
		slot = int32(len(a.slots))
		a.slots = append(a.slots, e)
	}
	a.keys = append(a.keys, agendaKey{at: e.at, seq: e.seq, slot: slot})
	i := len(a.keys) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a.keys[i], a.keys[p] = a.keys[p], a.keys[i]
		i = p
	}
}

func (a *agenda) peekTime() int64 { return a.keys[0].at }

func (a *agenda) pop() event {
	top := a.keys[0]
	e := a.slots[top.slot]
	a.slots[top.slot] = event{} // drop its references for the collector
	a.free = append(a.free, top.slot)
	n := len(a.keys) - 1
	a.keys[0] = a.keys[n]
	a.keys = a.keys[:n]
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
		a.keys[i], a.keys[m] = a.keys[m], a.keys[i]
		i = m
	}
	return e
}

// frame is an encoded protocol message in flight: what a socket would carry.
type frame struct{ b []byte }

// Source and Dest are never asked of a frame: the event says who sent it
// and to whom, and decoding checks that the message agrees.
func (*frame) Source() replica.NodeID { return 0 }
func (*frame) Dest() replica.NodeID   { return 0 }
