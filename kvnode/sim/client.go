package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// ClientConfig sets a client's patience.
type ClientConfig struct {
	// Attempt is how long one attempt waits for a reply before the client
	// tries another node (default 300ms).
	Attempt time.Duration
	// Deadline is how long an op may take in all before the client gives
	// up on it (default 1s).
	Deadline time.Duration
	// Backoff is the first pause before trying a group's members again
	// after each failed to serve a request in turn (default 10ms).
	Backoff time.Duration
}

func (cc *ClientConfig) defaults() {
	if cc.Attempt == 0 {
		cc.Attempt = 300 * time.Millisecond
	}
	if cc.Deadline == 0 {
		cc.Deadline = time.Second
	}
	if cc.Backoff == 0 {
		cc.Backoff = 10 * time.Millisecond
	}
}

// Client is a simulated client session with one op at a time: a
// client.Router, the real client's decision core, whose actions it carries
// out on the simulated network (requests and answers cross it as wire
// frames, through the real codec) and on virtual time. Whatever the Router
// decides (leader discovery, redirects, same-seq retries, shard routing,
// failed versus unknown) is the real client's decision. When an op's
// outcome is unknown the client starts a new session, so the abandoned
// request can never be confused with a later one.
type Client struct {
	home   *Cluster // its agenda runs the client's timers
	idx    int32    // index in home.clients
	cfg    ClientConfig
	r      *client.Router
	groups map[replica.GroupID]*Cluster
	newID  func() uint64
	cut    []bool // cut[n]: this client and node n cannot reach each other

	done  func(client.Outcome)
	timer uint64 // generation of the armed timer; older timers are stale
	buf   []byte
}

// nextSession hands out session IDs, unique within the cluster; they start
// high so that they never look like small test constants.
func (c *Cluster) nextSession() uint64 {
	c.sessions++
	return 1<<32 + c.sessions
}

// NewClient adds a client of the cluster's group with its own session.
func (c *Cluster) NewClient(cfg ClientConfig) *Client {
	cl, err := newClient(c, cfg, map[replica.GroupID]*Cluster{c.cfg.Group: c}, 0, c.nextSession)
	if err != nil {
		panic(fmt.Sprintf("sim: client: %v", err)) // the cluster's own members are always valid
	}
	return cl
}

// newClient builds a client whose timers run on home's agenda and that
// reaches the given groups; ctl is the shard controller's group (0: no
// sharded ops); newID hands out session ids.
func newClient(home *Cluster, cfg ClientConfig, groups map[replica.GroupID]*Cluster, ctl replica.GroupID, newID func() uint64) (*Client, error) {
	cfg.defaults()
	members := map[replica.GroupID][]replica.NodeID{}
	top := replica.NodeID(0)
	for g, c := range groups {
		members[g] = c.ids
		for _, id := range c.ids {
			top = max(top, id)
		}
	}
	r, err := client.NewRouter(client.RouterConfig{
		ClientID: newID(), Groups: members, Controller: ctl,
		AttemptTimeout: cfg.Attempt, BackoffMin: cfg.Backoff,
	})
	if err != nil {
		return nil, err
	}
	cl := &Client{home: home, idx: int32(len(home.clients)), cfg: cfg, r: r, groups: groups, newID: newID, cut: make([]bool, top+1)}
	home.clients = append(home.clients, cl)
	return cl, nil
}

// Session returns the client's current session ID.
func (cl *Client) Session() uint64 { return cl.r.ClientID() }

// Busy reports whether an op is outstanding.
func (cl *Client) Busy() bool { return cl.r.Busy() }

// CutFrom makes the client and the given nodes unable to reach each other;
// with no arguments it reconnects the client to every node.
func (cl *Client) CutFrom(ids ...replica.NodeID) {
	clear(cl.cut)
	for _, id := range ids {
		if int(id) < len(cl.cut) {
			cl.cut[id] = true
		}
	}
}

func (cl *Client) cutFrom(id replica.NodeID) bool { return int(id) < len(cl.cut) && cl.cut[id] }

func (cl *Client) now() time.Time { return time.Unix(0, cl.home.now) }

// Invoke starts an op (the state machine's encoding) on the client's
// group, with the client's deadline; done runs when it completes. It is an
// error to invoke while an op is outstanding.
func (cl *Client) Invoke(op []byte, done func(client.Outcome)) error {
	var g replica.GroupID
	for g = range cl.groups {
		break
	}
	if len(cl.groups) != 1 {
		return fmt.Errorf("client %d: Invoke needs a client of one group, not %d", cl.idx, len(cl.groups))
	}
	return cl.Run(client.Op{Group: g, Body: op}, done)
}

// Run starts op; a zero Deadline means the client's. done runs when it
// completes. It is an error to run an op while one is outstanding.
func (cl *Client) Run(op client.Op, done func(client.Outcome)) error {
	if cl.r.Busy() {
		return fmt.Errorf("client %d: an op is already outstanding", cl.idx)
	}
	if op.Deadline.IsZero() {
		op.Deadline = cl.now().Add(cl.cfg.Deadline)
	}
	cl.done = done
	cl.act(cl.r.Start(cl.now(), op))
	return nil
}

// act carries out the Router's action.
func (cl *Client) act(a client.Action) {
	switch a.Kind {
	case client.Send:
		cl.send(a.Node, &a.Request)
		cl.arm(a.Timeout)
	case client.Wait:
		cl.arm(a.Timeout)
	case client.Done:
		cl.timer++ // cancels the armed timer
		if a.Outcome.Result == client.Unknown {
			// Never idle (the op just ended): this cannot fail.
			_ = cl.r.NewSession(cl.newID())
		}
		done := cl.done
		cl.done = nil
		done(a.Outcome)
	}
}

func (cl *Client) arm(d time.Duration) {
	cl.timer++
	cl.home.agenda.push(event{at: cl.home.now + int64(d), kind: evTimer, who: cl.idx, gen: cl.timer})
}

// send frames req as a client connection does and puts it on the network
// towards node id of req's group.
func (cl *Client) send(id replica.NodeID, req *wire.Request) {
	c := cl.groups[replica.GroupID(req.Group)]
	i := -1
	if c != nil {
		i = c.localIndex(id)
	}
	if i < 0 {
		cl.home.fail(fmt.Errorf("client %d: the router sent to node %d of group %d, not a member", cl.idx, id, req.Group))
		return
	}
	b, err := wire.AppendFrame(cl.buf[:0], wire.KindRequest, req.Append)
	if err != nil {
		cl.home.fail(fmt.Errorf("client %d: frame a request: %w", cl.idx, err))
		return
	}
	cl.buf = b
	c.transmit(event{kind: evRequest, who: int32(i), pkt: &packet{cl: cl, to: id, b: append([]byte(nil), b...)}})
}

// timerFired runs the Router's reaction to the armed timer.
func (cl *Client) timerFired(gen uint64) {
	if gen != cl.timer || !cl.r.Busy() {
		return
	}
	cl.act(cl.r.Timeout(cl.now()))
}

// reply takes a node's answer (a response frame) or a refused connection.
func (cl *Client) reply(c *Cluster, p *packet) {
	if !cl.r.Busy() || cl.cutFrom(p.to) {
		return
	}
	if p.refused {
		cl.act(cl.r.Lost(cl.now(), p.to, errRefused, false))
		return
	}
	payload, err := wire.OneFrame(p.b, wire.KindResponse)
	var resp wire.Response
	if err == nil {
		resp, err = wire.DecodeResponse(payload)
	}
	if err != nil {
		c.oracle.violate(c.localIndex(p.to), "an answer to client %d did not survive the wire: %v", cl.idx, err)
		return
	}
	cl.act(cl.r.Reply(cl.now(), p.to, resp))
}

// errRefused is what a client sees when it sends to a node that is down.
var errRefused = errors.New("connection refused")

// Do runs the simulation until op completes or limit passes and returns its
// outcome; ok is false if it did not complete within limit.
func (cl *Client) Do(op []byte, limit time.Duration) (o client.Outcome, ok bool, err error) {
	finished := false
	if err := cl.Invoke(op, func(out client.Outcome) { o, finished = out, true }); err != nil {
		return client.Outcome{}, false, err
	}
	cl.home.RunUntil(func() bool { return finished }, limit)
	return o, finished, nil
}
