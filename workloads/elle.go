package workloads

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/history"
)

// ElleOptions tunes the list-append and rw-register workloads. Zero values
// take defaults.
type ElleOptions struct {
	// Keys is how many keys are in use at once (default 5). A small set
	// makes transactions collide, which is what exposes anomalies.
	Keys int
	// MinOps and MaxOps bound the micro-ops per transaction (default 1
	// and 4).
	MinOps, MaxOps int
	// WritesPerKey is how many appends or writes a key receives before it
	// is retired and a fresh key takes its place (default 32), keeping
	// lists short and the checker's work per key bounded.
	WritesPerKey int
	// KeyPrefix is prepended to the key number to form the SUT's key
	// (default "la" for list-append, "rw" for rw-register).
	KeyPrefix string
	// ConsistencyModels are the models the checker holds the history to
	// (default strict-serializable).
	ConsistencyModels []string
	// FinalReadKeys is how many keys one final read transaction covers
	// (default 8).
	FinalReadKeys int
}

func (o ElleOptions) withDefaults(prefix string) ElleOptions {
	if o.Keys <= 0 {
		o.Keys = 5
	}
	if o.MinOps <= 0 {
		o.MinOps = 1
	}
	if o.MaxOps < o.MinOps {
		o.MaxOps = max(4, o.MinOps)
	}
	if o.WritesPerKey <= 0 {
		o.WritesPerKey = 32
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = prefix
	}
	if o.FinalReadKeys <= 0 {
		o.FinalReadKeys = 8
	}
	return o
}

// Elle is a transactional workload checked by Elle: list-append (appends
// of unique elements to lists, reads of whole lists) or rw-register
// (writes of unique values, reads of single values). Every invocation has
// f "txn" and a value that is a list of [f, key, value] micro-ops with
// integer keys and values: ["append", 3, 7], ["w", 3, 7], ["r", 3, nil].
// Completions fill in the reads: a list ([1, 2, 3], [] for a missing key)
// in list-append, a value or nil in rw-register.
type Elle struct {
	name  string
	write string // the mutating micro-op: MicroAppend or MicroWrite
	opts  ElleOptions
}

// NewListAppend returns the list-append workload.
func NewListAppend(opts ElleOptions) *Elle {
	return &Elle{name: "list-append", write: MicroAppend, opts: opts.withDefaults("la")}
}

// NewRWRegister returns the rw-register workload.
func NewRWRegister(opts ElleOptions) *Elle {
	return &Elle{name: "rw-register", write: MicroWrite, opts: opts.withDefaults("rw")}
}

// Name returns "list-append" or "rw-register".
func (e *Elle) Name() string { return e.name }

// Checker returns Elle's checker for this workload with the configured
// consistency models.
func (e *Elle) Checker() checker.Checker {
	return elle.New(e.name, slices.Clone(e.opts.ConsistencyModels))
}

// NewGenerator returns a generator whose sequence depends only on seed.
func (e *Elle) NewGenerator(seed int64) Generator {
	g := &elleGen{
		opts:  e.opts,
		write: e.write,
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x456c6c6547656e)),
	}
	for range e.opts.Keys {
		g.addKey()
	}
	return g
}

// NewClient opens a transactional session for process p.
func (e *Elle) NewClient(ctx context.Context, sut SUT, _ history.Process) (Client, error) {
	kv, err := openTxn(ctx, e.name, sut)
	if err != nil {
		return nil, err
	}
	return &txnClient{kv: kv, codec: e.Codec()}, nil
}

type elleKey struct {
	id      int64
	written int   // writes invoked so far
	next    int64 // the next value to write, unique within the key
}

type elleGen struct {
	opts   ElleOptions
	write  string
	rng    *rand.Rand
	active []*elleKey
	nextID int64
}

func (g *elleGen) addKey() {
	g.active = append(g.active, &elleKey{id: g.nextID, next: 1})
	g.nextID++
}

func (g *elleGen) Next() Invocation {
	n := g.opts.MinOps + g.rng.IntN(g.opts.MaxOps-g.opts.MinOps+1)
	mops := make([]any, 0, n)
	for range n {
		i := g.rng.IntN(len(g.active))
		k := g.active[i]
		if g.rng.IntN(2) == 0 {
			mops = append(mops, []any{MicroRead, k.id, nil})
			continue
		}
		mops = append(mops, []any{g.write, k.id, k.next})
		k.next++
		k.written++
		if k.written >= g.opts.WritesPerKey {
			// Retire it; this transaction's later micro-ops may not touch
			// it again, which is fine: its value stays unique.
			g.active[i] = g.active[len(g.active)-1]
			g.active = g.active[:len(g.active)-1]
			g.addKey()
		}
	}
	return Invocation{F: "txn", Value: mops}
}

// FinalReads reads every key ever used, FinalReadKeys keys per transaction.
func (g *elleGen) FinalReads() []Invocation {
	var out []Invocation
	for lo := int64(0); lo < g.nextID; lo += int64(g.opts.FinalReadKeys) {
		hi := min(lo+int64(g.opts.FinalReadKeys), g.nextID)
		mops := make([]any, 0, hi-lo)
		for id := lo; id < hi; id++ {
			mops = append(mops, []any{MicroRead, id, nil})
		}
		out = append(out, Invocation{F: "txn", Value: mops})
	}
	return out
}

// parsedMop is one micro-op of an invocation, checked.
type parsedMop struct {
	f     string
	key   int64
	value int64
}

// parseMops checks an invocation's micro-ops; write is the mutating f the
// workload allows besides reads.
func parseMops(v any, write string) ([]parsedMop, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("txn value %v is not a non-empty list of micro-ops", v)
	}
	out := make([]parsedMop, 0, len(list))
	for i, m := range list {
		parts, ok := m.([]any)
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("micro-op %d: %v is not [f, key, value]", i, m)
		}
		f, _ := parts[0].(string)
		if f != MicroRead && f != write {
			return nil, fmt.Errorf("micro-op %d: f %v is neither %q nor %q", i, parts[0], MicroRead, write)
		}
		k, ok := toInt(parts[1])
		if !ok {
			return nil, fmt.Errorf("micro-op %d: key %v is not an integer", i, parts[1])
		}
		p := parsedMop{f: f, key: k}
		if f != MicroRead {
			if p.value, ok = toInt(parts[2]); !ok {
				return nil, fmt.Errorf("micro-op %d: value %v is not an integer", i, parts[2])
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Codec returns the workload's TxnCodec: one transaction per invocation.
func (e *Elle) Codec() TxnCodec { return elleCodec{prefix: e.opts.KeyPrefix, write: e.write} }

type elleCodec struct {
	prefix string
	write  string
}

func (s elleCodec) Start(inv Invocation) TxnStep {
	ops, err := s.microOps(inv)
	if err != nil {
		// Never sent, so certainly not applied.
		return doneStep(Completion{Type: history.Fail, Value: inv.Value, Error: err.Error()})
	}
	return txnStep(ops, func(res []MicroResult, err error) TxnStep { return doneStep(s.complete(inv, res, err)) })
}

// microOps returns the micro-ops inv asks for, or an error when inv is
// malformed.
func (s elleCodec) microOps(inv Invocation) ([]MicroOp, error) {
	if inv.F != "txn" {
		return nil, fmt.Errorf("unknown f %q (want txn)", inv.F)
	}
	mops, err := parseMops(inv.Value, s.write)
	if err != nil {
		return nil, err
	}
	ops := make([]MicroOp, len(mops))
	for i, m := range mops {
		ops[i] = MicroOp{F: m.f, Key: keyName(s.prefix, m.key)}
		if m.f != MicroRead {
			ops[i].Value = encodeInt(m.value)
		}
	}
	return ops, nil
}

// complete shapes inv's completion from its transaction's answer.
func (s elleCodec) complete(inv Invocation, res []MicroResult, err error) Completion {
	mops, perr := parseMops(inv.Value, s.write)
	if perr != nil {
		return Completion{Type: history.Fail, Value: inv.Value, Error: perr.Error()}
	}
	readOnly := !slices.ContainsFunc(mops, func(m parsedMop) bool { return m.f != MicroRead })
	if err == nil && len(res) != len(mops) {
		// An answer that cannot be matched to the micro-ops says nothing
		// about whether the transaction committed.
		err = fmt.Errorf("%d results for %d micro-ops", len(res), len(mops))
	}
	if err != nil {
		return Completion{Type: txnOutcome(err, readOnly), Value: inv.Value, Error: err.Error()}
	}
	out := make([]any, len(mops))
	for i, m := range mops {
		switch {
		case m.f != MicroRead:
			out[i] = []any{m.f, m.key, m.value}
		case s.write == MicroAppend:
			l := make([]any, 0, len(res[i].List))
			for _, e := range res[i].List {
				l = append(l, decodeValue(e))
			}
			out[i] = []any{m.f, m.key, l}
		case res[i].Found:
			out[i] = []any{m.f, m.key, decodeValue(res[i].Value)}
		default:
			out[i] = []any{m.f, m.key, nil}
		}
	}
	return Completion{Type: history.Ok, Value: out}
}

// keyName is the SUT key for key number k under prefix.
func keyName(prefix string, k int64) string { return prefix + strconv.FormatInt(k, 10) }
