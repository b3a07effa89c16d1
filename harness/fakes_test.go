package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
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

func (b *fakeBackend) Setup(ctx context.Context) (workloads.SUT, error) {
	b.record("setup")
	if b.blockSetup {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b.setupErr != nil {
		return nil, b.setupErr
	}
	return b.sut, nil
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

func (b *fakeBackend) Heal(context.Context) error { b.record("heal"); return nil }

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

// fakeNemesis starts and stops a pretend partition every period.
type fakeNemesis struct {
	period time.Duration
	mu     sync.Mutex
	active bool
	healed int
}

func (n *fakeNemesis) Run(ctx context.Context, record func(history.Op)) error {
	t := time.NewTicker(n.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n.mu.Lock()
		f := "start-partition"
		if n.active {
			f = "stop-partition"
		}
		n.active = !n.active
		n.mu.Unlock()
		record(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: f})
		record(history.Op{Type: history.Info, Process: history.NemesisProcess, F: f, Value: "done"})
	}
}

func (n *fakeNemesis) Heal(_ context.Context, record func(history.Op)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.healed++
	if n.active {
		record(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: "stop-partition"})
		record(history.Op{Type: history.Info, Process: history.NemesisProcess, F: "stop-partition"})
		n.active = false
	}
	return nil
}

func (n *fakeNemesis) Active() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.active {
		return []string{"partition"}
	}
	return nil
}

// fixedCheck returns a checker that answers v after verifying the history
// it was handed is exactly what the recorder produced.
func fixedCheck(v checker.Validity, got *[]history.Op) CheckFunc {
	return func(_ context.Context, spec workloads.CheckSpec, ops []history.Op, _ string) (checker.Result, error) {
		if got != nil {
			*got = ops
		}
		if spec.Checker != "linear" {
			return checker.Result{}, fmt.Errorf("unexpected checker %q", spec.Checker)
		}
		return checker.Result{Checker: "fixed", Valid: v, Summary: "fixed verdict " + v.String()}, nil
	}
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
