package harness

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

// noopWorkload's client answers ok at once, so a run measures the harness
// alone: pacing, process bookkeeping and the history recorder.
type noopWorkload struct{}

func (noopWorkload) Name() string { return "noop" }
func (noopWorkload) NewGenerator(int64) workloads.Generator {
	return noopGen{}
}
func (noopWorkload) NewClient(context.Context, workloads.SUT, history.Process) (workloads.Client, error) {
	return noopClient{}, nil
}
func (noopWorkload) Checker() checker.Checker { return fixedCheck(checker.Valid, nil) }

type noopGen struct{}

func (noopGen) Next() workloads.Invocation {
	return workloads.Invocation{F: "write", Value: []any{int64(1), int64(2)}}
}
func (noopGen) FinalReads() []workloads.Invocation { return nil }

type noopClient struct{}

func (noopClient) Invoke(_ context.Context, inv workloads.Invocation) workloads.Completion {
	return workloads.Completion{Type: history.Ok, Value: inv.Value}
}
func (noopClient) Close() error { return nil }

// BenchmarkHarnessNoop measures how many ops per second the harness itself
// can drive and record (10 workers, unpaced), so it is never the bottleneck
// of a test against a real cluster.
func BenchmarkHarnessNoop(b *testing.B) {
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer slog.SetDefault(old)
	cfg := Config{
		Name:             "noop",
		Workload:         noopWorkload{},
		Backend:          &fakeBackend{sut: newMem(memkv.Options{})},
		Concurrency:      10,
		TimeLimit:        time.Hour,
		OpLimit:          int64(b.N),
		Store:            b.TempDir(),
		ProgressInterval: time.Hour,
	}
	b.ResetTimer()
	out, err := Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got := out.Summary.Stats["ok"]; got != int64(b.N) {
		b.Fatalf("ok = %v, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
