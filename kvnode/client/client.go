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
// NotLeader hints, until it succeeds or its context ends. Every routing and
// outcome decision is the Router's, a core without I/O, so that a simulated
// client can run the very same decisions; Client and Sharded only carry its
// actions out over TCP with real timers. The error then says what is known:
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
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
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
	// Nodes maps every node that may be a member of the group (its
	// initial members and its spares) to its client address.
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

// FromCluster builds a Config for group from a cluster file: every node
// that hosts the group, its spares too, since a membership change may have
// made any of them a member.
func FromCluster(c *config.Cluster, group replica.GroupID) (Config, error) {
	g, ok := c.Group(group)
	if !ok {
		return Config{}, fmt.Errorf("client: group %d is not in the cluster file", group)
	}
	cfg := Config{Nodes: map[replica.NodeID]string{}, Group: group}
	for _, m := range g.Hosts() {
		n, _ := c.Node(m)
		cfg.Nodes[m] = n.ClientAddress()
	}
	return cfg, nil
}

// Client is one session with a replica group: a Router over one
// connection per node. Its methods are safe to call from several
// goroutines, but they run one at a time.
type Client struct {
	cfg    Config
	mu     sync.Mutex
	r      *Router
	p      pool
	closed bool
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
		cfg.ClientID = randomID()
	}
	members := make([]replica.NodeID, 0, len(cfg.Nodes))
	for id := range cfg.Nodes {
		members = append(members, id)
	}
	r, err := NewRouter(RouterConfig{
		ClientID:       cfg.ClientID,
		Groups:         map[replica.GroupID][]replica.NodeID{cfg.Group: members},
		AttemptTimeout: cfg.AttemptTimeout,
	})
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, r: r, p: newPool(cfg.Nodes, cfg.DialTimeout)}, nil
}

func randomID() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(fmt.Sprintf("client: random id: %v", err))
	}
	return binary.LittleEndian.Uint64(b[:])
}

// ID returns the session's client id.
func (c *Client) ID() uint64 { return c.cfg.ClientID }

// Leader returns the node the client currently believes leads the group.
func (c *Client) Leader() replica.NodeID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r.Leader(c.cfg.Group)
}

// Close closes the client's connections.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.p.close()
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

func (c *Client) do(ctx context.Context, op kv.Op) (kv.Reply, error) {
	name := op.Kind.String()
	v, err := c.call(ctx, name, op.Encode())
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
	return c.call(ctx, "request", op)
}

// call runs op as the session's next request until the Router settles it
// or ctx ends.
func (c *Client) call(ctx context.Context, name string, op []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &FailedError{Op: name, Cause: errors.New("client closed")}
	}
	dl, _ := ctx.Deadline()
	o := c.p.run(ctx, c.r, c.r.Start(time.Now(), Op{Group: c.cfg.Group, Body: op, Deadline: dl}))
	if o.Result != OK {
		return nil, o.Err(name)
	}
	return o.Value, nil
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
