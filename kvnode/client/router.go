package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// Router is the decision core of a client session, without I/O: it finds
// each group's leader, follows not-leader hints, retries a request with the
// same (client id, seq) across nodes, routes a sharded transaction to the
// group owning its shard (asking the shard controller for the latest
// configuration when it has none or a group answers wrong-group), and
// decides how an op ended: OK, Failed (certainly not applied) or Unknown
// (it may have been applied, now or later).
//
// A Router runs one op at a time and never blocks, sleeps, reads a clock or
// touches a socket. The caller owns the transport and the timers: it starts
// an op with Start and then feeds the Router what happened (Reply, Lost,
// Timeout, Cancel), each time getting back the next Action:
//
//	act := r.Start(now, op)
//	for act.Kind != client.Done {
//		switch act.Kind {
//		case client.Send: // send act.Request to act.Node; arm a timer of act.Timeout
//		case client.Wait: // arm a timer of act.Timeout
//		case client.Await: // nothing new; keep waiting for the answer or the timer
//		}
//		act = <the Router's answer to the next event>
//	}
//	use(act.Outcome)
//
// Time enters only as the now arguments; any monotonic origin will do as
// long as the caller uses one throughout (the simulator passes its virtual
// clock).
//
// A group that serves nothing for a while is presumed down: when a whole
// round of its members has left a sharded op unserved (no answer, refusals,
// no leader) and the group has served this session nothing for DownAfter,
// or when a coordinator aborted a transaction because the group never
// voted, the Router gives up the op (it cannot commit without that group)
// and for a while fails at once, unsent, every sharded op that needs the
// group, so that a worker moves on to ops the live groups can serve
// instead of spending its deadline on the dead one. Failing an unsent op
// is certain: nothing of it can be applied. The presumption lasts DownMin,
// doubling each time it is renewed up to DownMax; after it the next op
// needing the group tries it again, and any answer from the group ends
// the presumption.
//
// The outcome rule: an op is Failed only when every attempt is known not to
// have been applied (it was never sent, every node that saw it refused it
// before ordering it, or a transaction was aborted and not retried); as
// soon as any attempt may have reached a node that could order it (a
// timeout, a connection lost after sending, an unknown status, a
// transaction still in progress), an op that does not end OK ends Unknown.
type Router struct {
	cfg    RouterConfig
	groups map[replica.GroupID]*groupRoute
	seq    uint64 // last seq of the data session (every group but the controller)
	ctlSeq uint64 // last seq of the controller session
	reqID  uint64
	shards shardctl.Config
	busy   bool
	c      call
	health map[replica.GroupID]*groupHealth
}

// groupHealth is what the session saw of a group's service.
type groupHealth struct {
	unserved  time.Time     // when the group first left an attempt unserved since it last served (zero: it served)
	downUntil time.Time     // the group is presumed down until then
	span      time.Duration // the last presumption's length
}

// RouterConfig configures a Router.
type RouterConfig struct {
	// ClientID is the session's client id; it must not be zero.
	ClientID uint64
	// Groups lists, for every group the session may talk to, each node
	// that may be its member: its initial members and its spares, so
	// that the session reaches the group (and follows a leader hint)
	// whatever membership changes made of it.
	Groups map[replica.GroupID][]replica.NodeID
	// Controller is the shard controller's group; zero when the session
	// runs no sharded ops.
	Controller replica.GroupID
	// AttemptTimeout bounds the wait for one node's answer before the
	// Router tries another; default 1s.
	AttemptTimeout time.Duration
	// BackoffMin and BackoffMax pace the retries after every member of a
	// group failed to serve a request in turn: the pause starts at
	// BackoffMin and doubles up to BackoffMax; defaults 2ms and 100ms.
	BackoffMin, BackoffMax time.Duration
	// RetryPause is the pause before asking again after a group said a
	// transaction could not start yet (its shard is arriving, the group
	// is reconfiguring) or is in progress; default 5ms.
	RetryPause time.Duration
	// AbortPause is the longest pause before a transaction the cluster
	// aborted is tried again as a new request; each pause is drawn from
	// [1ms, AbortPause] by the session and seq, so that conflicting
	// clients do not meet again at once; default 20ms.
	AbortPause time.Duration
	// DownAfter is how long a group must have served a sharded op
	// nothing, across a whole round of its members, before the session
	// presumes it down; longer than an election, so that a leader change
	// is not taken for a dead group; default 2s. DownMin and DownMax
	// bound how long a presumption lasts; defaults 1s and 8s.
	DownAfter, DownMin, DownMax time.Duration
}

// ActionKind says what the caller must do next.
type ActionKind uint8

const (
	// Await: nothing new; keep waiting for the outstanding attempt's
	// answer or the timer already armed.
	Await ActionKind = iota
	// Send: send Action.Request to Action.Node and arm a timer of
	// Action.Timeout; report the answer with Reply, a failure to send or a
	// lost connection with Lost, the timer with Timeout.
	Send
	// Wait: arm a timer of Action.Timeout and call Timeout when it fires.
	Wait
	// Done: the op is over; Action.Outcome says how.
	Done
)

var actionNames = [...]string{"await", "send", "wait", "done"}

// String names k.
func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return fmt.Sprintf("action(%d)", uint8(k))
}

// Action is the Router's answer to an event.
type Action struct {
	Kind ActionKind
	// Node and Request (Send): where to send what. Request.Op aliases
	// the op's body.
	Node    replica.NodeID
	Request wire.Request
	// Timeout (Send, Wait): the timer to arm; it never runs past the op's
	// deadline.
	Timeout time.Duration
	// Outcome (Done).
	Outcome Outcome
}

// Result classifies how an op ended.
type Result uint8

const (
	// OK: applied; Outcome.Value holds the state machine's reply.
	OK Result = iota + 1
	// Failed: certainly not applied, now or later.
	Failed
	// Unknown: may or may not have been applied, now or later.
	Unknown
)

var resultNames = [...]string{"", "ok", "failed", "unknown"}

// String names r.
func (r Result) String() string {
	if int(r) < len(resultNames) && r != 0 {
		return resultNames[r]
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Outcome is how an op ended.
type Outcome struct {
	Result Result
	// Value is the state machine's reply (OK). For a sharded op it is the
	// encoded txn.Reply, and Txn holds it decoded.
	Value []byte
	// Txn is a sharded op's decoded reply (OK, or Failed by a failed check).
	Txn txn.Reply
	// Cause says why the op did not end OK.
	Cause error
	// Group and Node are the group and node that answered, or that were
	// tried last.
	Group replica.GroupID
	Node  replica.NodeID
	// Seq is the sequence number of the op's last request.
	Seq uint64
	// Attempts counts the requests sent for the op (controller queries
	// included); Aborts counts a sharded op's aborted attempts.
	Attempts, Aborts int
}

// Err returns the outcome as the package's errors: nil for OK, a
// *FailedError or an *UnknownError naming op otherwise.
func (o Outcome) Err(op string) error {
	switch o.Result {
	case OK:
		return nil
	case Failed:
		return &FailedError{Op: op, Cause: o.Cause}
	default:
		return &UnknownError{Op: op, Cause: o.Cause}
	}
}

// Op is a request for the Router to run.
type Op struct {
	// Group receives the request (ignored when Sharded).
	Group replica.GroupID
	// Sharded routes the op to the group that owns Shard under the latest
	// shard configuration; Body is then a transaction request
	// (txn.EncodeTxnRequest) and the Router reads the group's txn.Reply:
	// wrong-group makes it refresh the configuration, retry (not started
	// yet) or pending (in progress, which a replica normally holds until
	// decided instead of answering) makes it ask again, an abort makes it
	// try again as a new request until the deadline.
	Sharded bool
	Shard   int
	// Shards lists the shards of every key of a sharded op (TxnOp fills
	// it): the Router fails the op at once when it presumes the owner of
	// one of them down. Optional; Shard is always checked.
	Shards []int
	// Body is the request, encoded for the group's state machine.
	Body []byte
	// Deadline ends the op (zero: none; the caller may still Cancel).
	Deadline time.Time
}

// groupRoute is what the session knows of one group.
type groupRoute struct {
	order  []replica.NodeID
	leader replica.NodeID
}

func (g *groupRoute) next(id replica.NodeID) replica.NodeID {
	for i, o := range g.order {
		if o == id {
			return g.order[(i+1)%len(g.order)]
		}
	}
	return g.order[0]
}

func (g *groupRoute) member(id replica.NodeID) bool { return slices.Contains(g.order, id) }

// phase is what the op in progress waits for.
type phase uint8

const (
	phaseAttempt phase = iota + 1 // an attempt of the op itself
	phaseRefresh                  // a controller query for the configuration
	phaseWait                     // a pause
)

// call is the state of the op in progress.
type call struct {
	op       Op
	seq      uint64 // the op's current request number
	maybe    bool   // some attempt of seq may have been applied
	last     error
	attempts int
	aborts   int
	tried    int // attempts without a settling answer, for backoff rounds
	backoff  time.Duration

	phase  phase
	reqID  uint64
	group  replica.GroupID
	node   replica.NodeID
	sentAt time.Time
	waitTo func(*Router, time.Time) Action // what follows a pause

	refreshSeq   uint64
	refreshTries int
}

// NewRouter returns a Router for one session.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.ClientID == 0 {
		return nil, errors.New("client: router: client id 0 is reserved")
	}
	if len(cfg.Groups) == 0 {
		return nil, errors.New("client: router: no groups")
	}
	if cfg.Controller != 0 && len(cfg.Groups[cfg.Controller]) == 0 {
		return nil, fmt.Errorf("client: router: controller group %d has no members", cfg.Controller)
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 2 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(100*time.Millisecond, cfg.BackoffMin)
	}
	if cfg.RetryPause <= 0 {
		cfg.RetryPause = 5 * time.Millisecond
	}
	if cfg.AbortPause < time.Millisecond {
		cfg.AbortPause = 20 * time.Millisecond
	}
	if cfg.DownAfter <= 0 {
		cfg.DownAfter = 2 * time.Second
	}
	if cfg.DownMin <= 0 {
		cfg.DownMin = time.Second
	}
	if cfg.DownMax < cfg.DownMin {
		cfg.DownMax = max(8*time.Second, cfg.DownMin)
	}
	r := &Router{cfg: cfg, groups: map[replica.GroupID]*groupRoute{}, health: map[replica.GroupID]*groupHealth{}}
	for g, members := range cfg.Groups {
		if len(members) == 0 {
			return nil, fmt.Errorf("client: router: group %d has no members", g)
		}
		if slices.Contains(members, 0) {
			return nil, fmt.Errorf("client: router: group %d: node id 0 is reserved", g)
		}
		r.addGroup(g, members)
	}
	return r, nil
}

func (r *Router) addGroup(g replica.GroupID, members []replica.NodeID) {
	order := slices.Clone(members)
	slices.Sort(order)
	order = slices.Compact(order)
	if order[0] == 0 {
		order = order[1:]
		if len(order) == 0 {
			return
		}
	}
	// Spread sessions over the members until they learn the leader.
	r.groups[g] = &groupRoute{order: order, leader: order[int(r.cfg.ClientID%uint64(len(order)))]}
}

// ClientID returns the session's client id.
func (r *Router) ClientID() uint64 { return r.cfg.ClientID }

// Leader returns the node the session believes leads group g (0 if g is
// unknown).
func (r *Router) Leader(g replica.GroupID) replica.NodeID {
	if gr := r.groups[g]; gr != nil {
		return gr.leader
	}
	return 0
}

// Config returns the latest shard configuration the session has seen.
func (r *Router) Config() shardctl.Config { return r.shards.Clone() }

// Busy reports whether an op is in progress.
func (r *Router) Busy() bool { return r.busy }

// NewSession makes the session start over under client id id: the next op
// is request 1 of the new session everywhere. What the Router learned of
// leaders and configurations stays. It is how a caller makes sure an
// abandoned request can never be mistaken for a later one.
func (r *Router) NewSession(id uint64) error {
	if id == 0 {
		return errors.New("client: router: client id 0 is reserved")
	}
	if r.busy {
		return errors.New("client: router: an op is in progress")
	}
	r.cfg.ClientID, r.seq, r.ctlSeq = id, 0, 0
	return nil
}

// Start begins op and returns the first action. Starting an op while
// another is in progress ends the new one Failed at once and leaves the
// one in progress alone.
func (r *Router) Start(now time.Time, op Op) Action {
	if r.busy {
		return Action{Kind: Done, Outcome: Outcome{Result: Failed, Cause: errors.New("an op is already in progress")}}
	}
	switch {
	case op.Sharded && r.cfg.Controller == 0:
		return Action{Kind: Done, Outcome: Outcome{Result: Failed, Cause: errors.New("sharded op without a shard controller")}}
	case op.Sharded && (op.Shard < 0 || op.Shard >= shardctl.NShards):
		return Action{Kind: Done, Outcome: Outcome{Result: Failed, Cause: fmt.Errorf("shard %d out of range [0, %d)", op.Shard, shardctl.NShards)}}
	case !op.Sharded && r.groups[op.Group] == nil:
		return Action{Kind: Done, Outcome: Outcome{Result: Failed, Cause: fmt.Errorf("group %d is unknown", op.Group)}}
	}
	r.busy = true
	r.c = call{op: op, backoff: r.cfg.BackoffMin}
	if !op.Sharded && op.Group == r.cfg.Controller {
		r.ctlSeq++
		r.c.seq = r.ctlSeq
	} else {
		r.seq++
		r.c.seq = r.seq
	}
	return r.proceed(now)
}

// Reply reports node's answer to a request. Answers to anything but the
// outstanding attempt are ignored (Await).
func (r *Router) Reply(now time.Time, node replica.NodeID, resp wire.Response) Action {
	c := &r.c
	if !r.busy || (c.phase != phaseAttempt && c.phase != phaseRefresh) || resp.ID != c.reqID || node != c.node {
		return Action{Kind: Await}
	}
	gr := r.groups[c.group]
	if resp.Status == wire.StatusOK {
		gr.leader = node
		r.served(c.group)
		if c.phase == phaseRefresh {
			return r.refreshed(now, resp.Value)
		}
		if c.op.Sharded {
			return r.txnReply(now, resp.Value)
		}
		return r.finish(OK, resp.Value, nil)
	}
	var err error
	switch resp.Status {
	case wire.StatusNotLeader:
		err = fmt.Errorf("group %d node %d: not leader", c.group, node)
	case wire.StatusUnknown:
		err = fmt.Errorf("group %d node %d: %s", c.group, node, resp.Err)
		if c.phase == phaseAttempt {
			c.maybe = true
		}
	default:
		// A definite refusal (no such group, overloaded), or a status
		// this client does not know: only Definite ones prove nothing
		// was ordered.
		err = fmt.Errorf("group %d node %d: %s: %s", c.group, node, resp.Status, resp.Err)
		if !resp.Status.Definite() && c.phase == phaseAttempt {
			c.maybe = true
		}
	}
	// Follow the node's hint if it names another member, else try the
	// next node.
	if h := replica.NodeID(resp.Leader); h != 0 && h != node && gr.member(h) {
		gr.leader = h
	} else {
		gr.leader = gr.next(node)
	}
	return r.unanswered(now, err)
}

// Lost reports that the outstanding attempt ended without an answer: it
// could not be sent, or the connection failed. delivered says whether any
// of it may have reached the node (false only when certainly nothing was:
// the connection could not be opened, or not one byte was written).
func (r *Router) Lost(now time.Time, node replica.NodeID, err error, delivered bool) Action {
	c := &r.c
	if !r.busy || (c.phase != phaseAttempt && c.phase != phaseRefresh) || node != c.node {
		return Action{Kind: Await}
	}
	if delivered && c.phase == phaseAttempt {
		c.maybe = true
	}
	gr := r.groups[c.group]
	gr.leader = gr.next(node)
	return r.unanswered(now, fmt.Errorf("group %d node %d: %w", c.group, node, err))
}

// Timeout reports that the timer of the last Send or Wait fired. A Send's
// timer means the attempt may have been delivered.
func (r *Router) Timeout(now time.Time) Action {
	c := &r.c
	if !r.busy {
		return Action{Kind: Await}
	}
	switch c.phase {
	case phaseWait:
		next := c.waitTo
		c.waitTo = nil
		return next(r, now)
	case phaseAttempt, phaseRefresh:
		if c.phase == phaseAttempt {
			c.maybe = true
		}
		gr := r.groups[c.group]
		gr.leader = gr.next(c.node)
		return r.unanswered(now, fmt.Errorf("group %d node %d: no answer in time", c.group, c.node))
	}
	return Action{Kind: Await}
}

// Cancel ends the op in progress: the caller gives up (its context ended,
// its deadline passed). sent says whether the last Send was carried out,
// even partly; if it was and no answer settled it, it may have been
// delivered.
func (r *Router) Cancel(now time.Time, cause error, sent bool) Action {
	c := &r.c
	if !r.busy {
		return Action{Kind: Await}
	}
	if c.phase == phaseAttempt && sent {
		c.maybe = true
	}
	return r.giveUp(cause)
}

// proceed sends the op's next attempt, after a refresh when the owner of a
// sharded op's shard is unknown.
func (r *Router) proceed(now time.Time) Action {
	c := &r.c
	if r.expired(now) {
		return r.giveUp(context.DeadlineExceeded)
	}
	g := c.op.Group
	if c.op.Sharded {
		if d, ok := r.presumedDown(now); ok {
			return r.giveUp(fmt.Errorf("group %d is presumed down: it served nothing for %v", d, r.cfg.DownAfter))
		}
		g = r.shards.Shards[c.op.Shard]
		if g == 0 || r.groups[g] == nil {
			if g != 0 {
				c.last = fmt.Errorf("shard %d's owner, group %d, is not in the session's groups", c.op.Shard, g)
			}
			return r.refresh(now)
		}
	}
	return r.send(now, phaseAttempt, g, c.seq, c.op.Body)
}

// refresh asks the controller for the latest configuration.
func (r *Router) refresh(now time.Time) Action {
	c := &r.c
	if r.expired(now) {
		return r.giveUp(context.DeadlineExceeded)
	}
	r.ctlSeq++
	c.refreshSeq, c.refreshTries = r.ctlSeq, 0
	return r.send(now, phaseRefresh, r.cfg.Controller, c.refreshSeq, queryLatest)
}

var queryLatest = shardctl.Op{Kind: shardctl.Query, Num: -1}.Encode()

func (r *Router) send(now time.Time, ph phase, g replica.GroupID, seq uint64, body []byte) Action {
	c := &r.c
	if r.expired(now) {
		return r.giveUp(context.DeadlineExceeded)
	}
	gr := r.groups[g]
	r.reqID++
	c.phase, c.reqID, c.group, c.node, c.sentAt = ph, r.reqID, g, gr.leader, now
	c.attempts++
	if ph == phaseRefresh {
		c.refreshTries++
	}
	return Action{
		Kind:    Send,
		Node:    gr.leader,
		Request: wire.Request{ID: r.reqID, Group: uint32(g), ClientID: r.cfg.ClientID, Seq: seq, Op: body},
		Timeout: r.capped(now, r.cfg.AttemptTimeout),
	}
}

// unanswered moves on after an attempt that settled nothing: the next node
// at once, or a pause after every member failed in turn, so that stale
// hints pointing at each other cannot spin.
func (r *Router) unanswered(now time.Time, err error) Action {
	c := &r.c
	if c.phase == phaseRefresh {
		c.last = fmt.Errorf("refresh configuration: %w", err)
		if c.refreshTries < len(r.groups[r.cfg.Controller].order) {
			return r.send(now, phaseRefresh, r.cfg.Controller, c.refreshSeq, queryLatest)
		}
		// The controller cannot answer now: go on with the configuration
		// at hand after a pause.
		return r.pause(now, r.backoff(), (*Router).proceed)
	}
	c.last = err
	c.tried++
	h := r.healthOf(c.group)
	if h.unserved.IsZero() {
		h.unserved = c.sentAt
	}
	if c.tried%len(r.groups[c.group].order) != 0 {
		return r.proceed(now)
	}
	// A group presumed down before and silent since is presumed down
	// again after one round.
	if c.op.Sharded && (now.Sub(h.unserved) >= r.cfg.DownAfter || h.span > 0) {
		r.markDown(c.group, now)
		return r.proceed(now)
	}
	if c.op.Sharded {
		// No member of the owner answered: it may have lost the shard.
		return r.pause(now, r.backoff(), (*Router).refresh)
	}
	return r.pause(now, r.backoff(), (*Router).proceed)
}

func (r *Router) backoff() time.Duration {
	d := r.c.backoff
	r.c.backoff = min(2*d, r.cfg.BackoffMax)
	return d
}

// refreshed takes the controller's answer and goes on with the op.
func (r *Router) refreshed(now time.Time, v []byte) Action {
	c := &r.c
	rep, err := shardctl.DecodeReply(v)
	switch {
	case err != nil:
		c.last = fmt.Errorf("refresh configuration: %w", err)
	case rep.Err != "":
		c.last = fmt.Errorf("refresh configuration: %s", rep.Err)
	case rep.Config.Num >= r.shards.Num:
		r.shards = rep.Config
		// Groups that joined since the session began become reachable.
		for g, members := range rep.Config.Groups {
			if r.groups[g] == nil && len(members) > 0 {
				r.addGroup(g, members)
			}
		}
	}
	if g := r.shards.Shards[c.op.Shard]; g == 0 || r.groups[g] == nil {
		// No owner yet (no group joined, or one this session cannot
		// reach): ask again after a pause.
		if c.last == nil {
			c.last = fmt.Errorf("shard %d has no owner in configuration %d", c.op.Shard, r.shards.Num)
		}
		return r.pause(now, r.backoff(), (*Router).refresh)
	}
	return r.proceed(now)
}

// txnReply reads a group's answer to a sharded op.
func (r *Router) txnReply(now time.Time, v []byte) Action {
	c := &r.c
	rep, err := txn.DecodeReply(v)
	if err != nil {
		// An answer this client cannot read may report a commit.
		c.maybe = true
		return r.giveUp(fmt.Errorf("group %d: %w", c.group, err))
	}
	switch rep.Status {
	case txn.StatusOK:
		o := r.finish(OK, v, nil)
		o.Outcome.Txn = rep
		return o
	case txn.StatusAborted:
		// This request is settled as not applied; the next attempt is a
		// new one, unless it needs a group that never voted.
		for _, g := range rep.Silent {
			r.markDown(g, now)
		}
		c.aborts++
		r.seq++
		c.seq, c.maybe = r.seq, false
		c.last = fmt.Errorf("group %d: aborted: %s", c.group, rep.Err)
		if _, down := r.presumedDown(now); down {
			return r.proceed(now) // which gives up: trying again cannot help
		}
		return r.pause(now, r.abortPause(), (*Router).proceed)
	case txn.StatusCheckFailed:
		o := r.finish(Failed, nil, fmt.Errorf("group %d: %w", c.group, txn.ErrCheckFailed))
		o.Outcome.Txn = rep
		return o
	case txn.StatusWrongGroup:
		c.last = fmt.Errorf("group %d does not own shard %d", c.group, c.op.Shard)
		return r.refresh(now)
	case txn.StatusRetry, txn.StatusPending:
		// The group could not start it yet, or it is in progress (a
		// replica normally holds a pending transaction until it is
		// decided): it may commit.
		c.maybe = true
		c.last = fmt.Errorf("group %d: %s", c.group, rep.Err)
		return r.pause(now, r.cfg.RetryPause, (*Router).proceed)
	default:
		// The group could not decode the request: nothing was applied.
		return r.finish(Failed, nil, fmt.Errorf("group %d: %s: %s", c.group, rep.Status, rep.Err))
	}
}

// abortPause draws the pause before retrying an aborted transaction from
// the session and seq, so that it is deterministic yet differs between
// conflicting clients.
func (r *Router) abortPause() time.Duration {
	x := r.cfg.ClientID ^ r.c.seq*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	span := uint64(r.cfg.AbortPause / time.Millisecond)
	return time.Duration(1+x%span) * time.Millisecond
}

// healthOf returns what the session saw of group g's service.
func (r *Router) healthOf(g replica.GroupID) *groupHealth {
	h := r.health[g]
	if h == nil {
		h = &groupHealth{}
		r.health[g] = h
	}
	return h
}

// served notes that group g answered: it is not down.
func (r *Router) served(g replica.GroupID) {
	delete(r.health, g)
}

// markDown presumes group g down from now, for twice as long as last time
// (within [DownMin, DownMax]) if it still was or had been.
func (r *Router) markDown(g replica.GroupID, now time.Time) {
	h := r.healthOf(g)
	h.span = min(max(2*h.span, r.cfg.DownMin), r.cfg.DownMax)
	h.downUntil = now.Add(h.span)
	if h.unserved.IsZero() {
		h.unserved = now
	}
}

// presumedDown returns a group the op in progress needs that the session
// presumes down now.
func (r *Router) presumedDown(now time.Time) (replica.GroupID, bool) {
	if len(r.health) == 0 {
		return 0, false
	}
	check := func(s int) (replica.GroupID, bool) {
		if s < 0 || s >= shardctl.NShards {
			return 0, false
		}
		g := r.shards.Shards[s]
		if h := r.health[g]; g != 0 && h != nil && now.Before(h.downUntil) {
			return g, true
		}
		return 0, false
	}
	if g, ok := check(r.c.op.Shard); ok {
		return g, true
	}
	for _, s := range r.c.op.Shards {
		if g, ok := check(s); ok {
			return g, true
		}
	}
	return 0, false
}

func (r *Router) pause(now time.Time, d time.Duration, then func(*Router, time.Time) Action) Action {
	if r.expired(now) {
		return r.giveUp(context.DeadlineExceeded)
	}
	r.c.phase, r.c.waitTo = phaseWait, then
	return Action{Kind: Wait, Timeout: r.capped(now, d)}
}

func (r *Router) expired(now time.Time) bool {
	d := r.c.op.Deadline
	return !d.IsZero() && !now.Before(d)
}

func (r *Router) capped(now time.Time, d time.Duration) time.Duration {
	if dl := r.c.op.Deadline; !dl.IsZero() {
		d = min(d, dl.Sub(now))
	}
	return max(d, 0)
}

// giveUp ends the op without an answer: Unknown if any attempt of its
// current request may have been applied, else Failed.
func (r *Router) giveUp(cause error) Action {
	c := &r.c
	if c.last != nil && cause != nil {
		cause = fmt.Errorf("%w (last: %w)", cause, c.last)
	} else if cause == nil {
		cause = c.last
	}
	if c.maybe {
		return r.finish(Unknown, nil, cause)
	}
	return r.finish(Failed, nil, cause)
}

func (r *Router) finish(res Result, v []byte, cause error) Action {
	c := &r.c
	o := Outcome{Result: res, Value: v, Cause: cause, Group: c.group, Node: c.node, Seq: c.seq, Attempts: c.attempts, Aborts: c.aborts}
	r.busy = false
	r.c = call{}
	return Action{Kind: Done, Outcome: o}
}
