package nemesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
)

var allKindsForTest = []Kind{Partition, PartitionOne, PartitionMajoritiesRing, PartitionBridge,
	PartitionLeader, Pause, Kill, Loss, Latency}

// planned renders the first n faults of a schedule as text.
func planned(t *testing.T, seed int64, n int) []string {
	t.Helper()
	s, err := NewSchedule(allKindsForTest, time.Second, seed)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for range n {
		step := s.Next()
		f, err := Plan(step, nodeNames(5), []string{"n2"}, Params{LossPercent: 20, Latency: LatencySpec{Delay: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%v %v %v", step.Quiet, step.Hold, f.Value()))
	}
	return out
}

func TestScheduleIsDeterministicInSeed(t *testing.T) {
	a, b := planned(t, 42, 200), planned(t, 42, 200)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different schedules")
	}
	if c := planned(t, 43, 200); slices.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same schedule")
	}
}

func TestScheduleCoversKindsAndJitter(t *testing.T) {
	s, err := NewSchedule(allKindsForTest, time.Second, 7)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[Kind]int)
	distinct := make(map[time.Duration]bool)
	for range 1000 {
		st := s.Next()
		seen[st.Kind]++
		for _, d := range []time.Duration{st.Quiet, st.Hold} {
			if d < 500*time.Millisecond || d >= 1500*time.Millisecond {
				t.Fatalf("duration %v outside [interval/2, 3*interval/2)", d)
			}
			distinct[d] = true
		}
	}
	for _, k := range allKindsForTest {
		if seen[k] < 50 {
			t.Errorf("kind %s chosen %d times in 1000 steps; want roughly 111", k, seen[k])
		}
	}
	if len(distinct) < 500 {
		t.Errorf("only %d distinct durations: no jitter", len(distinct))
	}
}

func TestNewScheduleRejectsBadInput(t *testing.T) {
	if _, err := NewSchedule(nil, time.Second, 1); err == nil {
		t.Error("no kinds: want error")
	}
	if _, err := NewSchedule([]Kind{"bogus"}, time.Second, 1); err == nil {
		t.Error("bogus kind: want error")
	}
	if _, err := NewSchedule([]Kind{Kill}, 0, 1); err == nil {
		t.Error("zero interval: want error")
	}
}

func TestPlanVictimsAreMinorities(t *testing.T) {
	nodes := nodeNames(7)
	for seed := range uint64(200) {
		f, err := Plan(Step{Kind: Kill, Seed: seed}, nodes, nil, Params{})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Nodes) < 1 || len(f.Nodes) > 3 {
			t.Fatalf("victims %v: want 1..3 of 7", f.Nodes)
		}
	}
	f, err := Plan(Step{Kind: Pause, Seed: 1}, []string{"n1"}, nil, Params{})
	if err != nil || !slices.Equal(f.Nodes, []string{"n1"}) {
		t.Fatalf("single node victims = %v, %v", f.Nodes, err)
	}
}

func TestPlanErrors(t *testing.T) {
	nodes := nodeNames(3)
	tests := []struct {
		kind    Kind
		leaders []string
		p       Params
		want    string
	}{
		{PartitionLeader, nil, Params{}, "no current leader"},
		{PartitionLeader, []string{"n8"}, Params{}, "unknown node"},
		{Loss, nil, Params{LossPercent: 0}, "1..100"},
		{Loss, nil, Params{LossPercent: 101}, "1..100"},
		{Latency, nil, Params{}, "positive delay"},
		{"bogus", nil, Params{}, "unknown fault kind"},
	}
	for _, tt := range tests {
		_, err := Plan(Step{Kind: tt.kind}, nodes, tt.leaders, tt.p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Plan(%s) error = %v, want %q", tt.kind, err, tt.want)
		}
	}
	if _, err := Plan(Step{Kind: Kill}, nil, nil, Params{}); err == nil {
		t.Error("no nodes: want error")
	}
}

func TestPlanPartitionLeaderIsolatesEachLeader(t *testing.T) {
	f, err := Plan(Step{Kind: PartitionLeader}, nodeNames(6), []string{"n3", "n5"}, Params{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"n3", "n5"} {
		if got := f.Grudge.Hears(l, nodeNames(6)); !slices.Equal(got, []string{l}) {
			t.Errorf("leader %s hears %v, want only itself", l, got)
		}
	}
	if got := f.Grudge.Hears("n1", nodeNames(6)); !slices.Equal(got, []string{"n1", "n2", "n4", "n6"}) {
		t.Errorf("n1 hears %v", got)
	}
}

// fakeTarget records calls and can fail chosen ones.
type fakeTarget struct {
	nodes   []string
	calls   []string
	grudge  Grudge
	loss    int
	latency LatencySpec
	dead    map[string]bool
	frozen  map[string]bool
	failOn  string
}

func newFake(n int) *fakeTarget {
	return &fakeTarget{nodes: nodeNames(n), dead: map[string]bool{}, frozen: map[string]bool{}}
}

func (f *fakeTarget) call(s string) error {
	f.calls = append(f.calls, s)
	if f.failOn != "" && strings.HasPrefix(s, f.failOn) {
		return errors.New("injected failure: " + s)
	}
	return nil
}
func (f *fakeTarget) Nodes() []string { return f.nodes }
func (f *fakeTarget) Partition(_ context.Context, g Grudge) error {
	f.grudge = g
	return f.call(fmt.Sprintf("partition %d", len(g)))
}
func (f *fakeTarget) Loss(_ context.Context, p int) error {
	f.loss = p
	return f.call(fmt.Sprintf("loss %d", p))
}
func (f *fakeTarget) Latency(_ context.Context, l LatencySpec) error {
	f.latency = l
	return f.call(fmt.Sprintf("latency %v", l.Delay))
}
func (f *fakeTarget) Heal(context.Context) error {
	f.grudge, f.loss, f.latency = nil, 0, LatencySpec{}
	return f.call("heal")
}
func (f *fakeTarget) Kill(_ context.Context, n string) error {
	f.dead[n] = true
	return f.call("kill " + n)
}
func (f *fakeTarget) Start(_ context.Context, n string) error {
	if err := f.call("start " + n); err != nil {
		return err
	}
	delete(f.dead, n)
	return nil
}
func (f *fakeTarget) Pause(_ context.Context, n string) error {
	f.frozen[n] = true
	return f.call("pause " + n)
}
func (f *fakeTarget) Resume(_ context.Context, n string) error {
	delete(f.frozen, n)
	return f.call("resume " + n)
}

func (f *fakeTarget) whole() bool {
	return len(f.grudge) == 0 && f.loss == 0 && f.latency.IsZero() && len(f.dead) == 0 && len(f.frozen) == 0
}

// runSteps runs a nemesis until its schedules have slept the given number
// of times in all, and returns the target and the recorded ops.
func runSteps(t *testing.T, kinds []Kind, seed int64, sleeps int) (*fakeTarget, *[]history.Op, *Nemesis) {
	t.Helper()
	ft := newFake(5)
	ops := new([]history.Op)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var count atomic.Int64
	n, err := New(ft, Config{
		Kinds: kinds, Seed: seed, Interval: time.Second, Log: slog.New(slog.DiscardHandler),
		Leaders: func(context.Context) ([]string, error) { return []string{"n1"}, nil },
		Sleep: func(ctx context.Context, d time.Duration) error {
			if count.Add(1) > int64(sleeps) {
				cancel()
				return ctx.Err()
			}
			// Let the other schedules' goroutines interleave.
			time.Sleep(20 * time.Microsecond)
			return ctx.Err()
		},
	}, func(op history.Op) { *ops = append(*ops, op) })
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return ft, ops, n
}

// checkPairs checks that ops are adjacent nemesis invoke/info pairs.
func checkPairs(t *testing.T, ops []history.Op) {
	t.Helper()
	if len(ops) == 0 || len(ops)%2 != 0 {
		t.Fatalf("%d ops: not invoke/info pairs", len(ops))
	}
	for i := 0; i < len(ops); i += 2 {
		inv, done := ops[i], ops[i+1]
		if inv.Type != history.Invoke || done.Type != history.Info || inv.F != done.F ||
			inv.Process != history.NemesisProcess || done.Process != history.NemesisProcess {
			t.Fatalf("ops %d,%d = %+v, %+v: want a nemesis invoke/info pair", i, i+1, inv, done)
		}
	}
}

func TestRunOneClassCompletesCycles(t *testing.T) {
	ft, opsp, n := runSteps(t, []Kind{Partition, PartitionOne, PartitionBridge, PartitionMajoritiesRing}, 5, 40)
	ops := *opsp
	checkPairs(t, ops)
	// 40 sleeps = 20 full cycles; the 41st sleep (a quiet) is cancelled,
	// so every fault started was also stopped.
	if len(ops) != 80 {
		t.Fatalf("%d ops, want 80 (20 cycles of start and stop pairs)", len(ops))
	}
	if !ft.whole() {
		t.Fatalf("after full cycles the target is not whole: %+v", ft)
	}
	calls := len(ft.calls)
	if err := n.HealAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(*opsp) != len(ops) || len(ft.calls) != calls {
		t.Fatalf("HealAll on a whole cluster acted: ops %v, calls %v", (*opsp)[len(ops):], ft.calls[calls:])
	}
}

func TestRunMixesClassesAndHealAllRestores(t *testing.T) {
	ft, opsp, n := runSteps(t, []Kind{Partition, Kill, Pause, Loss}, 5, 400)
	if err := n.HealAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	ops := *opsp
	checkPairs(t, ops)
	fs := make(map[string]bool)
	for _, op := range ops {
		fs[op.F] = true
	}
	for _, f := range []string{"start-partition", "stop-partition", "kill", "start", "pause", "resume", "start-loss", "stop-loss"} {
		if !fs[f] {
			t.Errorf("no %q op in 400 sleeps", f)
		}
	}
	if !ft.whole() {
		t.Fatalf("HealAll left %+v", ft)
	}
}

func TestSchedulesSplitByClass(t *testing.T) {
	scheds, err := Schedules([]Kind{Loss, Partition, Kill, PartitionOne, Pause}, time.Second, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(scheds) != 3 {
		t.Fatalf("%d schedules, want 3 (loss; partitions; pause and kill)", len(scheds))
	}
	want := [][]Kind{{Loss}, {Partition, PartitionOne}, {Kill, Pause}}
	for i, s := range scheds {
		if !slices.Equal(s.kinds, want[i]) {
			t.Errorf("schedule %d has %v, want %v", i, s.kinds, want[i])
		}
	}
	// A class's sequence does not depend on the other classes present.
	alone, err := Schedules([]Kind{Partition, PartitionOne}, time.Second, 9)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if a, b := alone[0].Next(), scheds[1].Next(); a != b {
			t.Fatalf("partition schedule changed when other classes were added: %+v vs %+v", a, b)
		}
	}
	if s, err := Schedules(nil, time.Second, 1); err != nil || len(s) != 0 {
		t.Fatalf("no kinds: %v, %v", s, err)
	}
	if _, err := Schedules([]Kind{"bogus"}, time.Second, 1); err == nil {
		t.Fatal("bogus kind accepted")
	}
}

func TestHealAllUndoesAFaultInProgress(t *testing.T) {
	for _, k := range allKindsForTest {
		for seed := range int64(5) {
			// Two sleeps: quiet, then cancel during the hold.
			ft, ops, n := runSteps(t, []Kind{k}, seed, 1)
			if ft.whole() {
				t.Fatalf("%s: no fault in progress after the first start", k)
			}
			if err := n.HealAll(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !ft.whole() {
				t.Fatalf("%s seed %d: HealAll left %+v", k, seed, ft)
			}
			last := (*ops)[len(*ops)-1]
			if last.Type != history.Info || last.F != StopF(k) {
				t.Fatalf("%s: last op %+v, want info %s", k, last, StopF(k))
			}
		}
	}
}

func TestRunStopsOnTargetFailureAndHealStillWorks(t *testing.T) {
	ft := newFake(5)
	ft.failOn = "kill"
	var ops []history.Op
	n, err := New(ft, Config{Kinds: []Kind{Kill}, Log: slog.New(slog.DiscardHandler), Sleep: func(context.Context, time.Duration) error { return nil }},
		func(op history.Op) { ops = append(ops, op) })
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Run error = %v, want the injected failure", err)
	}
	if last := ops[len(ops)-1]; last.Error == "" || last.Type != history.Info {
		t.Fatalf("failed action recorded as %+v; want an info op with the error", last)
	}
	ft.failOn = ""
	if err := n.HealAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !ft.whole() {
		t.Fatalf("HealAll after a half-done kill left %+v", ft)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	rec := func(history.Op) {}
	if _, err := New(newFake(3), Config{Kinds: []Kind{PartitionLeader}}, rec); err == nil {
		t.Error("partition-leader without Leaders: want error")
	}
	if _, err := New(newFake(3), Config{Kinds: []Kind{Loss}, LossPercent: 150}, rec); err == nil {
		t.Error("loss 150%: want error")
	}
	if _, err := New(nil, Config{}, rec); err == nil {
		t.Error("nil target: want error")
	}
}

func TestFaultValueIsAHistoryValue(t *testing.T) {
	f, err := Plan(Step{Kind: PartitionBridge, Seed: 3}, nodeNames(5), nil, Params{})
	if err != nil {
		t.Fatal(err)
	}
	b := history.AppendValue(nil, f.Value())
	if !strings.Contains(string(b), `"kind":"partition-bridge"`) || !strings.Contains(string(b), `"bridge":"n`) {
		t.Fatalf("value JSON %s lacks kind or bridge", b)
	}
	if !reflect.DeepEqual(f.Value(), f.Value()) {
		t.Fatal("Value is not stable")
	}
}

func TestPartitionLeaderWithoutLeaderIsRecordedAndSkipped(t *testing.T) {
	ft := newFake(3)
	var ops []history.Op
	sleeps := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := New(ft, Config{
		Kinds: []Kind{PartitionLeader}, Log: slog.New(slog.DiscardHandler),
		Leaders: func(context.Context) ([]string, error) { return nil, nil },
		Sleep: func(ctx context.Context, _ time.Duration) error {
			if sleeps++; sleeps > 3 {
				cancel()
				return ctx.Err()
			}
			return nil
		},
	}, func(op history.Op) { ops = append(ops, op) })
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctx); err != nil {
		t.Fatalf("Run stopped on a missing leader: %v", err)
	}
	if len(ops) != 6 || len(ft.calls) != 0 {
		t.Fatalf("ops %v, calls %v: want 3 recorded, unapplied attempts", ops, ft.calls)
	}
	for _, op := range ops {
		if op.Type == history.Info && !strings.Contains(op.Error, "no current leader") {
			t.Fatalf("completion %+v does not say why nothing happened", op)
		}
	}
}

type checkingTarget struct {
	*fakeTarget
	unsupported Kind
}

func (c checkingTarget) Supports(_ context.Context, k Kind) error {
	if k == c.unsupported {
		return errors.New("not here")
	}
	return nil
}

func TestPreflight(t *testing.T) {
	ctx := context.Background()
	ct := checkingTarget{newFake(3), Latency}
	if err := Preflight(ctx, ct, []Kind{Partition, Kill}); err != nil {
		t.Fatal(err)
	}
	if err := Preflight(ctx, ct, []Kind{Partition, Latency}); err == nil || !strings.Contains(err.Error(), "latency") {
		t.Fatalf("Preflight = %v, want an error naming latency", err)
	}
	if err := Preflight(ctx, newFake(3), []Kind{Latency}); err != nil {
		t.Fatalf("a target without Supports passes preflight: %v", err)
	}
}
