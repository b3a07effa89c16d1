package sim

import (
	"fmt"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// ClientConfig sets a client's patience.
type ClientConfig struct {
	// Attempt is how long one attempt waits for a reply before the client
	// tries another node (default 300ms).
	Attempt time.Duration
	// Deadline is how long an op may take in all before its outcome is
	// declared unknown (default 1s).
	Deadline time.Duration
	// Backoff is the pause before retrying after a node said it cannot
	// serve the request and named no leader (default 10ms).
	Backoff time.Duration
}

// Outcome is how a client op ended.
type Outcome struct {
	// Unknown is true when the deadline passed without a reply: the op may
	// or may not take effect, now or later.
	Unknown bool
	// Value is the state machine's reply (when not Unknown).
	Value []byte
	// Node is the node that answered, or that was tried last.
	Node replica.NodeID
	// Attempts counts the requests sent.
	Attempts int
}

// Client is a simulated client with one outstanding request at a time. It
// sends to the node it believes leads (learned from NotLeaderError hints),
// otherwise round-robin; on an attempt timeout it retries the same
// (ClientID, Seq) elsewhere, so the state machine's session table makes the
// retries exactly-once. When an op's outcome becomes unknown the client
// starts a new session, so the abandoned request can never be confused with
// a later one.
type Client struct {
	c        *Cluster
	idx      int32
	cfg      ClientConfig
	cut      []bool // cut[i]: this client and node i cannot reach each other
	clientID uint64
	seq      uint64
	leader   int // believed leader's index, -1 when unknown
	rr       int // next node to try when the leader is unknown

	pending   bool
	op        []byte
	done      func(Outcome)
	opGen     uint64 // counts ops, for deadline events
	gen       uint64 // counts attempts, for attempt timers
	awaiting  bool   // an attempt was sent and its reply has not come
	lastNode  int
	attempts  int
	redirects int
}

// nextSession hands out session IDs, unique within the cluster; they start
// high so that they never look like small test constants.
func (c *Cluster) nextSession() uint64 {
	c.sessions++
	return 1<<32 + c.sessions
}

// NewClient adds a client with its own session.
func (c *Cluster) NewClient(cfg ClientConfig) *Client {
	if cfg.Attempt == 0 {
		cfg.Attempt = 300 * time.Millisecond
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = time.Second
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 10 * time.Millisecond
	}
	cl := &Client{c: c, idx: int32(len(c.clients)), cfg: cfg, cut: make([]bool, len(c.nodes)), leader: -1, rr: c.rng.Intn(len(c.nodes))}
	cl.clientID = c.nextSession()
	c.clients = append(c.clients, cl)
	return cl
}

// Session returns the client's current session ID.
func (cl *Client) Session() uint64 { return cl.clientID }

// Busy reports whether an op is outstanding.
func (cl *Client) Busy() bool { return cl.pending }

// CutFrom makes the client and the given nodes unable to reach each other;
// with no arguments it reconnects the client to every node.
func (cl *Client) CutFrom(ids ...replica.NodeID) {
	clear(cl.cut)
	for _, id := range ids {
		cl.cut[cl.c.mustIndex(id)] = true
	}
}

// Invoke starts an op (the state machine's encoding); done runs when it
// completes. It is an error to invoke while an op is outstanding.
func (cl *Client) Invoke(op []byte, done func(Outcome)) error {
	if cl.pending {
		return fmt.Errorf("client %d: an op is already outstanding", cl.idx)
	}
	cl.pending, cl.op, cl.done = true, op, done
	cl.seq++
	cl.opGen++
	cl.attempts, cl.redirects = 0, 0
	cl.c.agenda.push(event{at: cl.c.now + int64(cl.cfg.Deadline), kind: evDeadline, who: cl.idx, gen: cl.opGen})
	cl.send()
	return nil
}

// target picks the node for the next attempt.
func (cl *Client) target() int {
	n := len(cl.c.nodes)
	if cl.leader >= 0 && !cl.cut[cl.leader] {
		return cl.leader
	}
	for k := 0; k < n; k++ {
		i := (cl.rr + k) % n
		if !cl.cut[i] {
			cl.rr = i
			return i
		}
	}
	return cl.rr // every node is cut off: the attempt will time out
}

func (cl *Client) send() {
	i := cl.target()
	cl.lastNode = i
	cl.attempts++
	cl.gen++
	cl.awaiting = true
	cl.c.transmit(event{kind: evRequest, who: int32(i), pkt: &packet{client: cl.idx, clientID: cl.clientID, seq: cl.seq, op: cl.op}})
	cl.c.agenda.push(event{at: cl.c.now + int64(cl.cfg.Attempt), kind: evAttempt, who: cl.idx, gen: cl.gen})
}

// retryAfter sends the next attempt after d, cancelling the current timer.
func (cl *Client) retryAfter(d time.Duration) {
	cl.gen++
	cl.awaiting = false
	cl.c.agenda.push(event{at: cl.c.now + int64(d), kind: evAttempt, who: cl.idx, gen: cl.gen})
}

func (cl *Client) attemptTimer(gen uint64) {
	if !cl.pending || gen != cl.gen {
		return
	}
	if cl.awaiting {
		// No reply in time: the node may be down, cut off, or a
		// deposed leader. Try the next one.
		cl.leader = -1
		cl.rr = (cl.lastNode + 1) % len(cl.c.nodes)
	}
	cl.send()
}

func (cl *Client) reply(p *packet) {
	if !cl.pending || p.clientID != cl.clientID || p.seq != cl.seq || cl.cut[p.from] {
		return
	}
	switch {
	case p.notLeader:
		h := int(p.hint) - 1
		cl.redirects++
		if p.hint != 0 && h >= 0 && h < len(cl.c.nodes) && h != int(p.from) {
			cl.leader = h
			// Hints can chase each other while leadership moves; slow
			// down after a few so a loop cannot spin in zero time.
			if cl.redirects <= len(cl.c.nodes) {
				cl.send()
				return
			}
		} else {
			cl.leader = -1
			cl.rr = (int(p.from) + 1) % len(cl.c.nodes)
		}
		cl.retryAfter(cl.cfg.Backoff)
	case p.err != "":
		cl.leader = -1
		cl.rr = (int(p.from) + 1) % len(cl.c.nodes)
		cl.retryAfter(cl.cfg.Backoff)
	default:
		cl.leader = int(p.from)
		cl.finish(Outcome{Value: p.value, Node: replica.NodeID(p.from + 1), Attempts: cl.attempts})
	}
}

func (cl *Client) deadline(opGen uint64) {
	if !cl.pending || opGen != cl.opGen {
		return
	}
	cl.clientID = cl.c.nextSession()
	cl.seq = 0
	cl.leader = -1
	cl.finish(Outcome{Unknown: true, Node: replica.NodeID(cl.lastNode + 1), Attempts: cl.attempts})
}

func (cl *Client) finish(o Outcome) {
	cl.pending, cl.awaiting = false, false
	cl.gen++ // cancels the attempt timer
	done := cl.done
	cl.done, cl.op = nil, nil
	done(o)
}

// Do runs the simulation until op completes or limit passes and returns its
// outcome; ok is false if it did not complete within limit.
func (cl *Client) Do(op []byte, limit time.Duration) (o Outcome, ok bool, err error) {
	finished := false
	if err := cl.Invoke(op, func(out Outcome) { o, finished = out, true }); err != nil {
		return Outcome{}, false, err
	}
	cl.c.RunUntil(func() bool { return finished }, limit)
	return o, finished, nil
}
