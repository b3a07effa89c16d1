// Package memtxn is an in-memory transactional key-value store that stands
// in for the system under test in transactional workload tests. Every
// transaction runs atomically under one lock, so the store is strictly
// serializable, unless told to misbehave: it can serve stale reads, lose
// acknowledged writes, apply transactions partially, and report the two
// kinds of client-visible failure (a definite refusal, an unknown outcome).
// Tests use the misbehaviours to prove that checkers catch them.
package memtxn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/chaoskv/chaos/workloads"
)

// ErrRefused is the definite failure memtxn injects: nothing was applied.
var ErrRefused = errors.New("memtxn: transaction refused")

// ErrLost is the unknown-outcome failure memtxn injects: the transaction
// may or may not have been applied.
var ErrLost = errors.New("memtxn: response lost")

// ErrCheckFailed is the definite failure of a transaction whose check
// micro-op did not match: nothing was applied.
var ErrCheckFailed = errors.New("memtxn: check failed")

// ErrClosed is returned by a closed session's Txn; it is definite.
var ErrClosed = errors.New("memtxn: session closed")

// Options configures injected failures and misbehaviour; rates are
// probabilities in [0, 1].
type Options struct {
	// RefuseRate is the probability that a transaction is refused
	// (definite failure, nothing applied).
	RefuseRate float64
	// LoseRate is the probability that a transaction returns ErrLost; it
	// is applied with probability one half.
	LoseRate float64
	// StaleReadRate is the probability that a read returns the key's
	// previous version instead of its current one.
	StaleReadRate float64
	// LostWriteRate is the probability that a write or append is
	// acknowledged but never applied.
	LostWriteRate float64
	// TornRate is the probability that a transaction with several writes
	// applies only its first, yet reports success.
	TornRate float64
	// Seed seeds every random choice.
	Seed uint64
}

// Validate reports the first rate outside [0, 1].
func (o Options) Validate() error {
	for name, r := range map[string]float64{"RefuseRate": o.RefuseRate, "LoseRate": o.LoseRate,
		"StaleReadRate": o.StaleReadRate, "LostWriteRate": o.LostWriteRate, "TornRate": o.TornRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("memtxn: %s %v is outside [0, 1]", name, r)
		}
	}
	return nil
}

// version is one value of a key: a register value or a list.
type version struct {
	value string
	list  []string
}

// Store is the shared state. It implements workloads.TxnSUT.
type Store struct {
	mu   sync.Mutex
	opts Options
	rng  *rand.Rand
	// versions holds each key's values, oldest first; the last is current.
	versions map[string][]version
	txns     int
}

// New returns an empty store, or an error for bad options.
func New(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Store{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 2)), versions: map[string][]version{}}, nil
}

// OpenTxn opens a session; sessions share the store's state.
func (s *Store) OpenTxn(ctx context.Context) (workloads.TxnKV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &session{s: s}, nil
}

// OpenKV refuses: the store holds transactional data only.
func (s *Store) OpenKV(context.Context) (workloads.KV, error) {
	return nil, errors.New("memtxn: single-key sessions are not supported")
}

// Txns reports how many transactions were applied, fully or not.
func (s *Store) Txns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txns
}

// List returns the current list of key.
func (s *Store) List(key string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.versions[key]
	if len(vs) == 0 {
		return nil
	}
	return slices.Clone(vs[len(vs)-1].list)
}

func (s *Store) chance(p float64) bool { return p > 0 && s.rng.Float64() < p }

// run executes ops under s.mu and reports whether to return ErrLost.
func (s *Store) run(ops []workloads.MicroOp) ([]workloads.MicroResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chance(s.opts.RefuseRate) {
		return nil, workloads.Definite(ErrRefused)
	}
	lost := s.chance(s.opts.LoseRate)
	apply := !lost || s.rng.IntN(2) == 0
	torn := s.chance(s.opts.TornRate)
	// The transaction's own view: its writes are visible to its later
	// reads even when they are never installed.
	local := map[string]version{}
	// staged is what the transaction will install: its view minus the
	// writes it loses.
	staged := map[string]version{}
	view := func(m map[string]version, k string) (version, bool) {
		if v, ok := m[k]; ok {
			return v, true
		}
		vs := s.versions[k]
		if len(vs) == 0 {
			return version{}, false
		}
		return vs[len(vs)-1], true
	}
	next := func(v version, o workloads.MicroOp) version {
		if o.F == workloads.MicroAppend {
			return version{list: append(slices.Clone(v.list), o.Value), value: v.value + o.Value + "\x1f"}
		}
		return version{value: o.Value}
	}
	var order []string
	writes := 0
	res := make([]workloads.MicroResult, len(ops))
	for i, o := range ops {
		switch o.F {
		case workloads.MicroRead:
			v, found := view(local, o.Key)
			if _, mine := local[o.Key]; !mine && s.chance(s.opts.StaleReadRate) {
				vs := s.versions[o.Key]
				if len(vs) >= 2 {
					v, found = vs[len(vs)-2], true
				} else {
					v, found = version{}, false
				}
			}
			res[i] = workloads.MicroResult{Value: v.value, Found: found}
			if found {
				res[i].List = slices.Clone(v.list)
				if res[i].List == nil {
					res[i].List = []string{}
				}
			}
		case workloads.MicroCheck:
			// Checks see the current state, never a stale one, as a
			// guard must.
			if v, _ := view(local, o.Key); v.value != o.Value {
				return nil, workloads.Definite(fmt.Errorf("%w: key %s holds %q, not %q", ErrCheckFailed, o.Key, v.value, o.Value))
			}
			res[i] = workloads.MicroResult{Value: o.Value, Found: true}
		case workloads.MicroWrite, workloads.MicroAppend:
			v, _ := view(local, o.Key)
			local[o.Key] = next(v, o)
			res[i] = workloads.MicroResult{Value: o.Value}
			writes++
			if (torn && writes > 1) || s.chance(s.opts.LostWriteRate) {
				continue
			}
			sv, _ := view(staged, o.Key)
			if _, ok := staged[o.Key]; !ok {
				order = append(order, o.Key)
			}
			staged[o.Key] = next(sv, o)
		default:
			return nil, workloads.Definite(fmt.Errorf("memtxn: op %d has unknown function %q", i, o.F))
		}
	}
	if apply {
		s.txns++
		for _, k := range order {
			s.versions[k] = append(s.versions[k], staged[k])
		}
	}
	if lost {
		return nil, ErrLost
	}
	return res, nil
}

type session struct {
	s      *Store
	mu     sync.Mutex
	closed bool
}

func (c *session) Txn(ctx context.Context, ops []workloads.MicroOp) ([]workloads.MicroResult, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, workloads.Definite(ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, workloads.Definite(err)
	}
	if len(ops) == 0 {
		return nil, workloads.Definite(errors.New("memtxn: empty transaction"))
	}
	return c.s.run(ops)
}

func (c *session) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}
