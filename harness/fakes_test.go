package harness

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

// fakeBackend records the lifecycle calls made on it and serves an
// in-memory store.
type fakeBackend struct {
	mu    sync.Mutex
	calls []string
	sut   workloads.SUT

	setupErr   error
	healthyErr error       // returned by the first WaitHealthy
	onHealthy  func(n int) // called on each WaitHealthy with its ordinal
	onClose    func()      // called by Close
	blockSetup bool        // Setup waits for ctx to end
	healthyN   int
}

func (b *fakeBackend) record(c string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, c)
}

func (b *fakeBackend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *fakeBackend) Setup(ctx context.Context, dir string) (*Cluster, error) {
	b.record("setup")
	if b.blockSetup {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b.setupErr != nil {
		return nil, b.setupErr
	}
	return &Cluster{SUT: b.sut, Target: &fakeTarget{b: b}}, nil
}

func (b *fakeBackend) WaitHealthy(ctx context.Context) error {
	b.record("wait-healthy")
	b.mu.Lock()
	b.healthyN++
	n := b.healthyN
	b.mu.Unlock()
	if b.onHealthy != nil {
		b.onHealthy(n)
	}
	if n == 1 && b.healthyErr != nil {
		return b.healthyErr
	}
	return ctx.Err()
}

func (b *fakeBackend) Collect(_ context.Context, dir string) error {
	b.record("collect")
	return nil
}

func (b *fakeBackend) Close(ctx context.Context) error {
	b.record("close")
	if b.onClose != nil {
		b.onClose()
	}
	return ctx.Err()
}

// fakeTarget records the nemesis's calls in its backend's call list.
type fakeTarget struct{ b *fakeBackend }

func (t *fakeTarget) Nodes() []string { return []string{"n1", "n2", "n3", "n4", "n5"} }
func (t *fakeTarget) Partition(_ context.Context, g nemesis.Grudge) error {
	if len(g) == 0 {
		t.b.record("partition-end")
	} else {
		t.b.record("partition")
	}
	return nil
}
func (t *fakeTarget) Loss(context.Context, int) error { t.b.record("loss"); return nil }
func (t *fakeTarget) Latency(context.Context, nemesis.LatencySpec) error {
	t.b.record("latency")
	return nil
}
func (t *fakeTarget) Heal(context.Context) error           { t.b.record("heal"); return nil }
func (t *fakeTarget) Kill(context.Context, string) error   { t.b.record("kill"); return nil }
func (t *fakeTarget) Start(context.Context, string) error  { t.b.record("start"); return nil }
func (t *fakeTarget) Pause(context.Context, string) error  { t.b.record("pause"); return nil }
func (t *fakeTarget) Resume(context.Context, string) error { t.b.record("resume"); return nil }

// partitions is the nemesis config the tests use: a partition every few
// tens of milliseconds.
func partitions() nemesis.Config {
	return nemesis.Config{Kinds: []nemesis.Kind{nemesis.Partition}, Interval: 30 * time.Millisecond}
}

// fixedChecker answers a fixed verdict, or err, after recording the
// history it was handed, to verify it is exactly what the recorder
// produced.
type fixedChecker struct {
	v   checker.Validity
	err error
	got *[]history.Op
}

func (fixedChecker) Name() string { return "fixed" }

func (c fixedChecker) Check(ops []history.Op, _ checker.Options) (checker.Result, error) {
	if c.got != nil {
		*c.got = ops
	}
	if c.err != nil {
		return checker.Result{}, c.err
	}
	return checker.Result{Checker: "fixed", Valid: c.v, Summary: "fixed verdict " + c.v.String()}, nil
}

// judgedBy is a workload whose histories c judges.
type judgedBy struct {
	workloads.Workload
	c checker.Checker
}

func (w judgedBy) Checker() checker.Checker { return w.c }

// checkWith makes cfg's workload return c as its checker.
func checkWith(cfg *Config, c checker.Checker) {
	if j, ok := cfg.Workload.(judgedBy); ok {
		cfg.Workload = j.Workload
	}
	cfg.Workload = judgedBy{Workload: cfg.Workload, c: c}
}

// fixedCheck returns a checker that answers v and stores the history it
// was handed in got (when not nil).
func fixedCheck(v checker.Validity, got *[]history.Op) checker.Checker {
	return fixedChecker{v: v, got: got}
}

// flakySUT wraps a SUT; while broken is set, every Get fails definitely.
type flakySUT struct {
	inner  workloads.SUT
	mu     sync.Mutex
	broken bool
}

func (s *flakySUT) setBroken(b bool) {
	s.mu.Lock()
	s.broken = b
	s.mu.Unlock()
}

func (s *flakySUT) OpenKV(ctx context.Context) (workloads.KV, error) {
	kv, err := s.inner.OpenKV(ctx)
	if err != nil {
		return nil, err
	}
	return &flakyKV{KV: kv, s: s}, nil
}

type flakyKV struct {
	workloads.KV
	s *flakySUT
}

func (k *flakyKV) Get(ctx context.Context, key string) (string, bool, error) {
	k.s.mu.Lock()
	b := k.s.broken
	k.s.mu.Unlock()
	if b {
		return "", false, workloads.Definite(errors.New("no leader"))
	}
	return k.KV.Get(ctx, key)
}

func newMem(opts memkv.Options) *memkv.Store { return memkv.New(opts) }
