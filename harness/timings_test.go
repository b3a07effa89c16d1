package harness

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads/memkv"
)

// TestTimingsInTestJSON checks the phase durations test.json records
// against a backend whose setup and teardown take known minimum times.
func TestTimingsInTestJSON(t *testing.T) {
	const setupDelay, closeDelay = 80 * time.Millisecond, 120 * time.Millisecond
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	b.onHealthy = func(n int) {
		if n == 1 {
			time.Sleep(setupDelay)
		}
	}
	b.onClose = func() { time.Sleep(closeDelay) }
	began := time.Now()
	out, err := Run(context.Background(), baseConfig(t, b))
	if err != nil {
		t.Fatal(err)
	}
	total := results.Seconds(time.Since(began))
	test, err := results.ReadTest(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tm := test.Timings
	if tm == nil {
		t.Fatal("test.json has no timings")
	}
	switch {
	case tm.Setup < setupDelay.Seconds():
		t.Errorf("setup %.3fs, but becoming healthy alone took %v", tm.Setup, setupDelay)
	case tm.FirstOp < tm.Setup:
		t.Errorf("first op at %.3fs, before setup ended at %.3fs", tm.FirstOp, tm.Setup)
	case tm.FirstOp > tm.Setup+1:
		t.Errorf("first op at %.3fs, more than a second after setup ended at %.3fs", tm.FirstOp, tm.Setup)
	case tm.Teardown < closeDelay.Seconds():
		t.Errorf("teardown %.3fs, but Close alone took %v", tm.Teardown, closeDelay)
	case tm.Setup+tm.Teardown > total:
		t.Errorf("setup %.3fs + teardown %.3fs exceed the whole run's %.3fs", tm.Setup, tm.Teardown, total)
	}
}

// TestTimingsWhenSetupFails checks that a run that never got a cluster
// records its teardown but no setup or first op.
func TestTimingsWhenSetupFails(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{}), healthyErr: errors.New("n2 down")}
	b.onClose = func() { time.Sleep(20 * time.Millisecond) }
	out, err := Run(context.Background(), baseConfig(t, b))
	if err == nil {
		t.Fatal("a cluster that never became healthy gave no error")
	}
	test, rerr := results.ReadTest(out.Dir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if tm := test.Timings; tm == nil || tm.Setup != 0 || tm.FirstOp != 0 || tm.Teardown < 0.02 {
		t.Fatalf("timings %+v, want only a teardown of at least 20ms", tm)
	}
}
