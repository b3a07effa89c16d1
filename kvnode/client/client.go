// Package client is the Go client of a kvnode replica group.
//
// A Client is one session: a client id (random, or given) and a
// monotonically increasing sequence number, so the group applies each
// request exactly once however often it is retried. A Client has at most one
// request outstanding: its methods serialize, and callers that want
// concurrency create one Client per worker (they are cheap: a Client owns at
// most one TCP connection per node, opened lazily).
//
// A request is retried with the same sequence number across nodes, following
// NotLeader hints, until it succeeds or its context ends. The error then
// says what is known:
//
//   - nil: the operation took effect, and the result says how;
//   - an error matching ErrUnknown (a *UnknownError): the request may or may
//     not have taken effect, now or later (a timeout, a connection lost after
//     sending, a leader change while it waited) — Jepsen's "info";
//   - an error matching ErrFailed (a *FailedError): it certainly did not take
//     effect (it was never sent, or every node that saw it refused it before
//     ordering it) — Jepsen's "fail".
package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/wire"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// ErrUnknown is matched by every *UnknownError.
var ErrUnknown = errors.New("outcome unknown")

// ErrFailed is matched by every *FailedError.
var ErrFailed = errors.New("request failed")

// UnknownError says the request may or may not have been applied.
type UnknownError struct {
	Op    string
	Cause error
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("%s: outcome unknown: %v", e.Op, e.Cause)
}

// Unwrap returns the cause.
func (e *UnknownError) Unwrap() error { return e.Cause }

// Is makes errors.Is(err, ErrUnknown) true.
func (e *UnknownError) Is(target error) bool { return target == ErrUnknown }

// FailedError says the request was certainly not applied.
type FailedError struct {
	Op    string
	Cause error
}

func (e *FailedError) Error() string { return fmt.Sprintf("%s: failed: %v", e.Op, e.Cause) }

// Unwrap returns the cause.
func (e *FailedError) Unwrap() error { return e.Cause }

// Is makes errors.Is(err, ErrFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrFailed }

// Config configures a Client.
type Config struct {
	// Nodes maps every member of the group to its client address.
	Nodes map[replica.NodeID]string
	// Group is the replica group to talk to; default 1.
	Group replica.GroupID
	// ClientID is the session's id; zero picks a random one.
	ClientID uint64
	// AttemptTimeout bounds the wait for one node's answer before the
	// client tries another; default 1s.
	AttemptTimeout time.Duration
	// DialTimeout bounds connecting to a node; default 500ms.
	DialTimeout time.Duration
}

// FromCluster builds a Config for group from a cluster file.
func FromCluster(c *config.Cluster, group replica.GroupID) (Config, error) {
	g, ok := c.Group(group)
	if !ok {
		return Config{}, fmt.Errorf("client: group %d is not in the cluster file", group)
	}
	cfg := Config{Nodes: map[replica.NodeID]string{}, Group: group}
	for _, m := range g.Members {
		n, _ := c.Node(m)
		cfg.Nodes[m] = n.ClientAddress()
	}
	return cfg, nil
}

// Client is one session with a replica group. Its methods are safe to call
// from several goroutines, but they run one at a time.
type Client struct {
	cfg    Config
	order  []replica.NodeID
	mu     sync.Mutex
	seq    uint64
	reqID  uint64
	leader replica.NodeID
	conns  map[replica.NodeID]*conn
	buf    []byte
	closed bool
}

type conn struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

// New returns a client; it connects lazily.
func New(cfg Config) (*Client, error) {
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("client: no node addresses")
	}
	for id, a := range cfg.Nodes {
		if id == 0 {
			return nil, errors.New("client: node id 0 is reserved")
		}
		if err := config.CheckAddr(a); err != nil {
			return nil, fmt.Errorf("client: node %d: %w", id, err)
		}
	}
	if cfg.Group == 0 {
		cfg.Group = 1
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 500 * time.Millisecond
	}
	for cfg.ClientID == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("client: random id: %w", err)
		}
		cfg.ClientID = binary.LittleEndian.Uint64(b[:])
	}
	c := &Client{cfg: cfg, conns: map[replica.NodeID]*conn{}}
	for id := range cfg.Nodes {
		c.order = append(c.order, id)
	}
	sort.Slice(c.order, func(i, j int) bool { return c.order[i] < c.order[j] })
	// Spread clients over nodes until they learn the leader.
	c.leader = c.order[int(cfg.ClientID%uint64(len(c.order)))]
	return c, nil
}

// ID returns the session's client id.
func (c *Client) ID() uint64 { return c.cfg.ClientID }

// Leader returns the node the client currently believes leads the group.
func (c *Client) Leader() replica.NodeID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Close closes the client's connections.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for id, cn := range c.conns {
		cn.c.Close()
		delete(c.conns, id)
	}
	return nil
}

// GetResult is the outcome of Get.
type GetResult struct {
	Value string
	Found bool
}

// CasResult is the outcome of Cas.
type CasResult struct {
	Swapped bool
	// Current and Found describe the key when the swap did not happen.
	Current string
	Found   bool
}

// Get reads key.
func (c *Client) Get(ctx context.Context, key string) (GetResult, error) {
	r, err := c.do(ctx, kv.Op{Kind: kv.Get, Key: key})
	if err != nil {
		return GetResult{}, err
	}
	return GetResult{Value: r.Value, Found: r.Found}, nil
}

// Put sets key to value.
func (c *Client) Put(ctx context.Context, key, value string) error {
	_, err := c.do(ctx, kv.Op{Kind: kv.Put, Key: key, Value: value})
	return err
}

// Append appends suffix to key's value and returns the new value.
func (c *Client) Append(ctx context.Context, key, suffix string) (string, error) {
	r, err := c.do(ctx, kv.Op{Kind: kv.Append, Key: key, Value: suffix})
	if err != nil {
		return "", err
	}
	return r.Value, nil
}

// Cas sets key to value if its current value is old. A missing key never
// matches. A swap that did not happen is a result, not an error.
func (c *Client) Cas(ctx context.Context, key, old, value string) (CasResult, error) {
	r, err := c.do(ctx, kv.Op{Kind: kv.Cas, Key: key, Old: old, Value: value})
	if err != nil {
		return CasResult{}, err
	}
	return CasResult{Swapped: r.Ok, Current: r.Value, Found: r.Found}, nil
}

// Txn runs a one-shot transaction of micro-ops (txn.Read, txn.Write,
// txn.Append) atomically and returns one result per op, in order; reads
// see the transaction's own earlier writes. Errors follow the package's
// rules: ErrUnknown when it may or may not have committed, ErrFailed when
// it certainly did not (an invalid transaction fails before anything is
// sent; a failed txn.Check is an ErrFailed wrapping txn.ErrCheckFailed).
// A transaction the system aborted is retried by the client until ctx
// ends, and then reported as ErrFailed.
func (c *Client) Txn(ctx context.Context, ops []txn.MicroOp) ([]txn.MicroResult, error) {
	if err := txn.Validate(ops); err != nil {
		return nil, &FailedError{Op: "txn", Cause: err}
	}
	r, err := c.do(ctx, kv.Op{Kind: kv.Txn, Value: string(txn.Encode(ops))})
	if err != nil {
		return nil, err
	}
	if !r.Ok {
		return nil, &FailedError{Op: "txn", Cause: txn.ErrCheckFailed}
	}
	res, err := txn.DecodeResults([]byte(r.Value))
	if err != nil {
		return nil, &UnknownError{Op: "txn", Cause: err}
	}
	if len(res) != len(ops) {
		return nil, &UnknownError{Op: "txn", Cause: fmt.Errorf("%d results for %d micro-ops", len(res), len(ops))}
	}
	return res, nil
}

// Retry pacing when no node accepts the request.
const (
	retryMin = 2 * time.Millisecond
	retryMax = 100 * time.Millisecond
)

func (c *Client) do(ctx context.Context, op kv.Op) (kv.Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := op.Kind.String()
	c.seq++
	v, err := c.send(ctx, name, c.seq, op.Encode())
	if err != nil {
		return kv.Reply{}, err
	}
	r, derr := kv.DecodeReply(v)
	if derr != nil {
		return kv.Reply{}, &UnknownError{Op: name, Cause: derr}
	}
	if r.Err != "" {
		// The store applied nothing: it could not decode the op.
		return kv.Reply{}, &FailedError{Op: name, Cause: errors.New(r.Err)}
	}
	return r, nil
}

// Raw submits op, already encoded for the group's state machine, as the
// session's next request and returns the state machine's answer
// undecoded. It is for state machines other than the key-value store (the
// shard controller, sharded groups) and for runtimes that forward one
// group's requests to another.
func (c *Client) Raw(ctx context.Context, op []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.send(ctx, "request", c.seq, op)
}

// send runs request seq of the session until a node answers it or ctx
// ends; the caller holds c.mu.
func (c *Client) send(ctx context.Context, name string, seq uint64, op []byte) ([]byte, error) {
	if c.closed {
		return nil, &FailedError{Op: name, Cause: errors.New("client closed")}
	}
	req := wire.Request{Group: uint32(c.cfg.Group), ClientID: c.cfg.ClientID, Seq: seq, Op: op}
	maybeSent := false // some node may have ordered the request
	var last error
	backoff := retryMin
	tried := 0
	for {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
			} else {
				last = fmt.Errorf("%w (last: %w)", err, last)
			}
			if maybeSent {
				return nil, &UnknownError{Op: name, Cause: last}
			}
			return nil, &FailedError{Op: name, Cause: last}
		}
		target := c.leader
		c.reqID++
		req.ID = c.reqID
		resp, sent, err := c.attempt(ctx, target, &req)
		if err != nil && sent {
			maybeSent = true
		}
		if err == nil {
			switch resp.Status {
			case wire.StatusOK:
				return resp.Value, nil
			case wire.StatusNotLeader:
				err = fmt.Errorf("node %d: %s", target, resp.Err)
			case wire.StatusUnknown:
				maybeSent = true
				err = fmt.Errorf("node %d: %s", target, resp.Err)
			default:
				err = fmt.Errorf("node %d: %s: %s", target, resp.Status, resp.Err)
			}
		}
		last = err
		// Follow the node's hint if it names another member, else try the
		// next node. After as many attempts as there are nodes, wait, so
		// that stale hints pointing at each other cannot spin.
		if h := replica.NodeID(resp.Leader); err != nil && h != 0 && h != target && c.cfg.Nodes[h] != "" {
			c.leader = h
		} else {
			c.leader = c.next(target)
		}
		tried++
		if tried%len(c.order) == 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			backoff = min(2*backoff, retryMax)
		}
	}
}

func (c *Client) next(id replica.NodeID) replica.NodeID {
	for i, o := range c.order {
		if o == id {
			return c.order[(i+1)%len(c.order)]
		}
	}
	return c.order[0]
}

// attempt sends req to one node and waits for its answer. sent reports
// whether the node may have received the request.
func (c *Client) attempt(ctx context.Context, id replica.NodeID, req *wire.Request) (wire.Response, bool, error) {
	cn, err := c.dial(ctx, id)
	if err != nil {
		return wire.Response{}, false, err
	}
	deadline := time.Now().Add(c.cfg.AttemptTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cn.c.SetDeadline(deadline)
	// Cancellation without a deadline still interrupts the wait.
	stop := context.AfterFunc(ctx, func() { cn.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.buf, err = wire.AppendFrame(c.buf[:0], wire.KindRequest, req.Append)
	if err != nil {
		return wire.Response{}, false, err
	}
	if n, err := cn.c.Write(c.buf); err != nil {
		c.drop(id)
		// Not one byte left: the node cannot have seen the request.
		return wire.Response{}, n > 0, fmt.Errorf("node %d: send: %w", id, err)
	}
	for {
		k, p, nb, err := wire.ReadFrame(cn.r, cn.buf)
		cn.buf = nb
		if err != nil {
			c.drop(id)
			return wire.Response{}, true, fmt.Errorf("node %d: await reply: %w", id, err)
		}
		if k != wire.KindResponse {
			c.drop(id)
			return wire.Response{}, true, fmt.Errorf("node %d: unexpected frame kind %d", id, k)
		}
		resp, err := wire.DecodeResponse(p)
		if err != nil {
			c.drop(id)
			return wire.Response{}, true, fmt.Errorf("node %d: %w", id, err)
		}
		if resp.ID == req.ID {
			resp.Value = append([]byte(nil), resp.Value...)
			return resp, true, nil
		}
		// An answer to an earlier attempt on this connection: skip it.
	}
}

func (c *Client) dial(ctx context.Context, id replica.NodeID) (*conn, error) {
	if cn := c.conns[id]; cn != nil {
		return cn, nil
	}
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.cfg.Nodes[id])
	if err != nil {
		return nil, fmt.Errorf("node %d: connect: %w", id, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	cn := &conn{c: nc, r: bufio.NewReaderSize(nc, 16<<10)}
	c.conns[id] = cn
	return cn, nil
}

func (c *Client) drop(id replica.NodeID) {
	if cn := c.conns[id]; cn != nil {
		cn.c.Close()
		delete(c.conns, id)
	}
}

// Command runs one operation given as words, as command-line tools take it:
// "get KEY", "put KEY VALUE", "append KEY SUFFIX" or "cas KEY OLD NEW". It
// returns a line describing the result.
func (c *Client) Command(ctx context.Context, args []string) (string, error) {
	want := map[string]int{"get": 2, "put": 3, "append": 3, "cas": 4}
	if len(args) == 0 || want[args[0]] == 0 {
		return "", fmt.Errorf("want one of: get KEY, put KEY VALUE, append KEY SUFFIX, cas KEY OLD NEW")
	}
	if len(args) != want[args[0]] {
		return "", fmt.Errorf("%s takes %d arguments, got %d", args[0], want[args[0]]-1, len(args)-1)
	}
	switch args[0] {
	case "get":
		r, err := c.Get(ctx, args[1])
		if err != nil {
			return "", err
		}
		if !r.Found {
			return "(not found)", nil
		}
		return r.Value, nil
	case "put":
		if err := c.Put(ctx, args[1], args[2]); err != nil {
			return "", err
		}
		return "ok", nil
	case "append":
		return c.Append(ctx, args[1], args[2])
	default:
		r, err := c.Cas(ctx, args[1], args[2], args[3])
		if err != nil {
			return "", err
		}
		if r.Swapped {
			return "ok", nil
		}
		if !r.Found {
			return "not swapped: key not found", nil
		}
		return fmt.Sprintf("not swapped: current value %q", r.Current), nil
	}
}
