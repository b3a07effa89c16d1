// Package memkv is an in-memory, linearizable key-value store that stands in
// for the system under test: every operation takes effect atomically under
// one lock. It can inject the two kinds of client-visible failure, a definite
// refusal and an unknown outcome, so harness and workload tests exercise
// fail and info paths against a store whose true state is known.
package memkv

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"

	"github.com/chaoskv/chaos/workloads"
)

// ErrRefused is the definite failure memkv injects: nothing was applied.
var ErrRefused = errors.New("memkv: request refused")

// ErrLost is the unknown-outcome failure memkv injects: the operation may or
// may not have been applied.
var ErrLost = errors.New("memkv: response lost")

// Options configures injected failures; probabilities are in [0, 1].
type Options struct {
	// RefuseRate is the probability that a write or cas is refused
	// (definite failure, not applied).
	RefuseRate float64
	// LoseRate is the probability that a write or cas returns ErrLost; the
	// operation is applied with probability one half.
	LoseRate float64
	// Seed seeds the failure injection.
	Seed uint64
}

// Store is the shared state. It implements workloads.SUT.
type Store struct {
	mu    sync.Mutex
	data  map[string]string
	opts  Options
	rng   *rand.Rand
	opens int
}

// New returns an empty store.
func New(opts Options) *Store {
	return &Store{data: map[string]string{}, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 1))}
}

// OpenKV opens a session; sessions share the store's state.
func (s *Store) OpenKV(ctx context.Context) (workloads.KV, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.opens++
	s.mu.Unlock()
	return &session{s: s}, nil
}

// Opens reports how many sessions were opened.
func (s *Store) Opens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens
}

// Value returns the current value of key.
func (s *Store) Value(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// fault decides, under s.mu, whether a mutation is refused, lost (and
// whether it still applies), or goes through.
func (s *Store) fault() (err error, apply bool) {
	r := s.rng.Float64()
	switch {
	case r < s.opts.RefuseRate:
		return workloads.Definite(ErrRefused), false
	case r < s.opts.RefuseRate+s.opts.LoseRate:
		return ErrLost, s.rng.IntN(2) == 0
	}
	return nil, true
}

type session struct {
	s      *Store
	closed bool
}

var errClosed = workloads.Definite(errors.New("memkv: session closed"))

func (c *session) Get(ctx context.Context, key string) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	if c.closed {
		return "", false, errClosed
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	v, ok := c.s.data[key]
	return v, ok, nil
}

func (c *session) Put(ctx context.Context, key, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closed {
		return errClosed
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	err, apply := c.s.fault()
	if apply {
		c.s.data[key] = value
	}
	return err
}

func (c *session) CAS(ctx context.Context, key, old, new string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if c.closed {
		return false, errClosed
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	err, apply := c.s.fault()
	cur, ok := c.s.data[key]
	if !ok || cur != old {
		return false, err
	}
	if apply {
		c.s.data[key] = new
	}
	return err == nil, err
}

func (c *session) Close() error {
	c.closed = true
	return nil
}
