package workloads

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/linear"
	"github.com/chaoskv/chaos/history"
)

// RegisterOptions tunes the register workload. Zero values take defaults.
type RegisterOptions struct {
	// Keys is how many keys are in use at once (default 4).
	Keys int
	// OpsPerKey is how many operations a key receives before it is retired
	// and a fresh key takes its place (default 100). Bounding each key's
	// history keeps the per-key linearizability search small, as Jepsen's
	// independent keys do.
	OpsPerKey int
	// Reads is how many of every ten operations are reads (default 4);
	// the rest are half writes, half cas.
	Reads int
	// KeyPrefix is prepended to the key number to form the SUT's key
	// (default "r").
	KeyPrefix string
}

func (o RegisterOptions) withDefaults() RegisterOptions {
	if o.Keys <= 0 {
		o.Keys = 4
	}
	if o.OpsPerKey <= 0 {
		o.OpsPerKey = 100
	}
	if o.Reads <= 0 {
		o.Reads = 4
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "r"
	}
	return o
}

// Register is the single-key read/write/compare-and-set workload, checked
// per key against the cas-register model. Values are [key, v] for read and
// write and [key, [old, new]] for cas; every written value is unique.
type Register struct {
	opts RegisterOptions
}

// NewRegister returns the register workload.
func NewRegister(opts RegisterOptions) *Register {
	return &Register{opts: opts.withDefaults()}
}

// Name returns "register".
func (*Register) Name() string { return "register" }

// Checker returns the linearizability checker with the cas-register model.
func (*Register) Checker() checker.Checker { return linear.New("cas-register") }

// NewGenerator returns a generator whose sequence depends only on seed.
func (r *Register) NewGenerator(seed int64) Generator {
	g := &registerGen{
		opts: r.opts,
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x5265676973746572)),
	}
	for range r.opts.Keys {
		g.addKey()
	}
	return g
}

// NewClient opens a KV session for process p.
func (r *Register) NewClient(ctx context.Context, sut SUT, _ history.Process) (Client, error) {
	kv, err := sut.OpenKV(ctx)
	if err != nil {
		return nil, fmt.Errorf("register client: %w", err)
	}
	return &registerClient{kv: kv, codec: r.Codec()}, nil
}

type activeKey struct {
	id        int64
	remaining int
	recent    []int64 // the last few values invoked for writing, newest last
}

type registerGen struct {
	opts   RegisterOptions
	rng    *rand.Rand
	active []*activeKey
	nextID int64
	value  int64
}

func (g *registerGen) addKey() {
	g.active = append(g.active, &activeKey{id: g.nextID, remaining: g.opts.OpsPerKey})
	g.nextID++
}

// recentValues bounds how many past values a cas may name as its expected
// value: the newest is the likeliest current value, older ones make some
// cas operations fail legitimately.
const recentValues = 3

func (g *registerGen) Next() Invocation {
	i := g.rng.IntN(len(g.active))
	k := g.active[i]
	k.remaining--
	if k.remaining <= 0 {
		g.active[i] = g.active[len(g.active)-1]
		g.active = g.active[:len(g.active)-1]
		g.addKey()
	}
	x := g.rng.IntN(10)
	write := x < g.opts.Reads+(10-g.opts.Reads+1)/2
	switch {
	case x < g.opts.Reads:
		return Invocation{F: "read", Value: []any{k.id, nil}}
	case write || len(k.recent) == 0: // nothing written yet, so no cas could succeed
		v := g.fresh(k)
		return Invocation{F: "write", Value: []any{k.id, v}}
	default:
		old := k.recent[len(k.recent)-1]
		if g.rng.IntN(4) == 0 {
			old = k.recent[g.rng.IntN(len(k.recent))]
		}
		v := g.fresh(k)
		return Invocation{F: "cas", Value: []any{k.id, []any{old, v}}}
	}
}

func (g *registerGen) fresh(k *activeKey) int64 {
	g.value++
	k.recent = append(k.recent, g.value)
	if len(k.recent) > recentValues {
		k.recent = k.recent[1:]
	}
	return g.value
}

func (g *registerGen) FinalReads() []Invocation {
	out := make([]Invocation, 0, g.nextID)
	for id := range g.nextID {
		out = append(out, Invocation{F: "read", Value: []any{id, nil}})
	}
	return out
}

// KVOpKind is the kind of a single-key operation.
type KVOpKind uint8

// Single-key operation kinds, as KV offers them.
const (
	KVGet KVOpKind = iota + 1
	KVPut
	KVCAS
)

// KVOp is one single-key operation a codec asks its world to perform.
type KVOp struct {
	Kind  KVOpKind
	Key   string
	Value string // KVPut, KVCAS: the new value
	Old   string // KVCAS: the expected current value
}

// KVResult is the world's report of how a KVOp ended. Err nil means it
// happened; an Err marked with Definite means it certainly did not; any
// other Err is an unknown outcome.
type KVResult struct {
	Value   string // KVGet: the value, if Found
	Found   bool   // KVGet: the key has a value
	Swapped bool   // KVCAS: the value matched Old and was replaced
	Err     error
}

// RegisterCodec translates between register invocations and single-key
// operations. It is pure: whoever holds one performs the KVOp however its
// world does I/O and hands the KVResult back.
type RegisterCodec struct {
	prefix string
}

// Codec returns the workload's codec.
func (r *Register) Codec() RegisterCodec { return RegisterCodec{prefix: r.opts.KeyPrefix} }

// Op returns the operation that performs inv. An error means inv is
// malformed and nothing may be sent; Complete with the error marked
// Definite reports it.
func (c RegisterCodec) Op(inv Invocation) (KVOp, error) {
	key, arg, err := splitKeyed(inv.Value)
	if err != nil {
		return KVOp{}, err
	}
	skey := c.prefix + strconv.FormatInt(key, 10)
	switch inv.F {
	case "read":
		return KVOp{Kind: KVGet, Key: skey}, nil
	case "write":
		v, ok := toInt(arg)
		if !ok {
			return KVOp{}, fmt.Errorf("write value %v is not an integer", arg)
		}
		return KVOp{Kind: KVPut, Key: skey, Value: strconv.FormatInt(v, 10)}, nil
	case "cas":
		pair, ok := arg.([]any)
		if !ok || len(pair) != 2 {
			return KVOp{}, fmt.Errorf("cas value %v is not [old, new]", arg)
		}
		old, ok1 := toInt(pair[0])
		nw, ok2 := toInt(pair[1])
		if !ok1 || !ok2 {
			return KVOp{}, fmt.Errorf("cas value %v is not [old, new] integers", arg)
		}
		return KVOp{Kind: KVCAS, Key: skey, Old: strconv.FormatInt(old, 10), Value: strconv.FormatInt(nw, 10)}, nil
	default:
		return KVOp{}, fmt.Errorf("register: unknown f %q", inv.F)
	}
}

// Complete turns the result of inv's operation into its completion.
func (c RegisterCodec) Complete(inv Invocation, res KVResult) Completion {
	if res.Err != nil {
		if inv.F == "read" {
			// A read changes nothing, so an unanswered read can be dropped
			// from the history: fail is safe even when the outcome is unknown.
			return Completion{Type: history.Fail, Value: inv.Value, Error: res.Err.Error()}
		}
		return Completion{Type: outcome(res.Err), Value: inv.Value, Error: res.Err.Error()}
	}
	switch inv.F {
	case "read":
		key, _, err := splitKeyed(inv.Value)
		if err != nil {
			return Completion{Type: history.Fail, Value: inv.Value, Error: err.Error()}
		}
		var out any
		if res.Found {
			out = decodeValue(res.Value)
		}
		return Completion{Type: history.Ok, Value: []any{key, out}}
	case "cas":
		if !res.Swapped {
			return Completion{Type: history.Fail, Value: inv.Value, Error: "cas mismatch"}
		}
	}
	return Completion{Type: history.Ok, Value: inv.Value}
}

// registerClient is the blocking world's I/O for the codec: one KV call
// per invocation.
type registerClient struct {
	kv    KV
	codec RegisterCodec
}

func (c *registerClient) Close() error { return c.kv.Close() }

func (c *registerClient) Invoke(ctx context.Context, inv Invocation) Completion {
	op, err := c.codec.Op(inv)
	if err != nil {
		// Never sent, so certainly not applied.
		return c.codec.Complete(inv, KVResult{Err: Definite(err)})
	}
	var res KVResult
	switch op.Kind {
	case KVGet:
		res.Value, res.Found, res.Err = c.kv.Get(ctx, op.Key)
	case KVPut:
		res.Err = c.kv.Put(ctx, op.Key, op.Value)
	case KVCAS:
		res.Swapped, res.Err = c.kv.CAS(ctx, op.Key, op.Old, op.Value)
	}
	return c.codec.Complete(inv, res)
}

// outcome classifies a write's error: fail only when the SUT said for
// certain that nothing was applied.
func outcome(err error) history.Type {
	if IsDefinite(err) {
		return history.Fail
	}
	return history.Info
}

// decodeValue turns a stored value back into the integer that was written.
// Anything else is reported as the raw string, which the checker will flag
// as a value nobody wrote rather than having it silently dropped.
func decodeValue(s string) any {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v
	}
	return s
}

func splitKeyed(v any) (int64, any, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return 0, nil, errors.New("register: value is not [key, v]")
	}
	k, ok := toInt(pair[0])
	if !ok {
		return 0, nil, fmt.Errorf("register: key %v is not an integer", pair[0])
	}
	return k, pair[1], nil
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		if x == float64(int64(x)) {
			return int64(x), true
		}
	}
	return 0, false
}
