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
	return &registerClient{kv: kv, prefix: r.opts.KeyPrefix}, nil
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
	choice := g.rng.IntN(3)
	if choice == 2 && len(k.recent) == 0 {
		choice = 1 // nothing written yet, so no cas could succeed
	}
	switch choice {
	case 0:
		return Invocation{F: "read", Value: []any{k.id, nil}}
	case 1:
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

type registerClient struct {
	kv     KV
	prefix string
}

func (c *registerClient) Close() error { return c.kv.Close() }

func (c *registerClient) Invoke(ctx context.Context, inv Invocation) Completion {
	key, arg, err := splitKeyed(inv.Value)
	if err != nil {
		// Never sent, so certainly not applied.
		return Completion{Type: history.Fail, Value: inv.Value, Error: err.Error()}
	}
	skey := c.prefix + strconv.FormatInt(key, 10)
	switch inv.F {
	case "read":
		v, found, err := c.kv.Get(ctx, skey)
		if err != nil {
			// A read changes nothing, so an unanswered read can be dropped
			// from the history: fail is safe even when the outcome is unknown.
			return Completion{Type: history.Fail, Value: inv.Value, Error: err.Error()}
		}
		var out any
		if found {
			out = decodeValue(v)
		}
		return Completion{Type: history.Ok, Value: []any{key, out}}
	case "write":
		v, ok := toInt(arg)
		if !ok {
			return Completion{Type: history.Fail, Value: inv.Value, Error: fmt.Sprintf("write value %v is not an integer", arg)}
		}
		if err := c.kv.Put(ctx, skey, strconv.FormatInt(v, 10)); err != nil {
			return Completion{Type: outcome(err), Value: inv.Value, Error: err.Error()}
		}
		return Completion{Type: history.Ok, Value: inv.Value}
	case "cas":
		pair, ok := arg.([]any)
		if !ok || len(pair) != 2 {
			return Completion{Type: history.Fail, Value: inv.Value, Error: fmt.Sprintf("cas value %v is not [old, new]", arg)}
		}
		old, ok1 := toInt(pair[0])
		nw, ok2 := toInt(pair[1])
		if !ok1 || !ok2 {
			return Completion{Type: history.Fail, Value: inv.Value, Error: fmt.Sprintf("cas value %v is not [old, new] integers", arg)}
		}
		swapped, err := c.kv.CAS(ctx, skey, strconv.FormatInt(old, 10), strconv.FormatInt(nw, 10))
		if err != nil {
			return Completion{Type: outcome(err), Value: inv.Value, Error: err.Error()}
		}
		if !swapped {
			return Completion{Type: history.Fail, Value: inv.Value, Error: "cas mismatch"}
		}
		return Completion{Type: history.Ok, Value: inv.Value}
	default:
		return Completion{Type: history.Fail, Value: inv.Value, Error: fmt.Sprintf("register: unknown f %q", inv.F)}
	}
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
