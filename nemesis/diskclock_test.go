package nemesis

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
)

func TestPlanLoseUnsyncedAndClocks(t *testing.T) {
	nodes := nodeNames(5)
	p := Params{LossPercent: 10, Tear: true, ClockSkew: 2 * time.Second, StrobePeriod: 5 * time.Millisecond}
	sawNeg, sawPos := false, false
	for seed := range uint64(200) {
		f, err := Plan(Step{Kind: LoseUnsynced, Seed: seed}, nodes, nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Nodes) == 0 || len(f.Nodes) > 2 || !f.Tear || f.Seed != seed {
			t.Fatalf("seed %d: lose-unsynced fault %+v: want a torn loss of a minority", seed, f)
		}
		for _, k := range []Kind{ClockBump, ClockStrobe} {
			f, err := Plan(Step{Kind: k, Seed: seed}, nodes, nil, p)
			if err != nil {
				t.Fatal(err)
			}
			abs := max(f.Offset, -f.Offset)
			if len(f.Nodes) != 1 || abs < time.Millisecond || abs > p.ClockSkew {
				t.Fatalf("seed %d: %s fault %+v: want one node shifted by 1ms..%v", seed, k, f, p.ClockSkew)
			}
			if (k == ClockStrobe) != (f.Period == p.StrobePeriod) {
				t.Fatalf("%s: period %v", k, f.Period)
			}
			sawNeg, sawPos = sawNeg || f.Offset < 0, sawPos || f.Offset > 0
			if v := f.Value(); v["offset_ms"] != float64(f.Offset)/1e6 {
				t.Fatalf("%s value %v", k, v)
			}
		}
	}
	if !sawNeg || !sawPos {
		t.Error("clock shifts never went both ways in 200 seeds")
	}
	if _, err := Plan(Step{Kind: ClockBump}, nodes, nil, Params{}); err == nil {
		t.Error("a clock fault without a skew bound was planned")
	}
	if _, err := Plan(Step{Kind: ClockStrobe}, nodes, nil, Params{ClockSkew: time.Second}); err == nil {
		t.Error("a strobe without a period was planned")
	}
}

// diskClockTarget records lose-unsynced and clock calls.
type diskClockTarget struct {
	policyTarget
	mu      sync.Mutex
	lost    []string
	started []string
	offsets map[string][]time.Duration
	failSet error
}

func (d *diskClockTarget) LoseUnsynced(_ context.Context, node string, tear *rand.Rand) (Lost, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lost = append(d.lost, node)
	l := Lost{Files: 1, Changes: 3}
	if tear != nil {
		l.TornFile, l.TornKept, l.TornLen = "log.db", tear.IntN(10), 10
	}
	return l, nil
}

func (d *diskClockTarget) Start(_ context.Context, node string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started = append(d.started, node)
	return nil
}

func (d *diskClockTarget) SetClockOffset(_ context.Context, node string, off time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failSet != nil && off != 0 {
		return d.failSet
	}
	d.offsets[node] = append(d.offsets[node], off)
	return nil
}

func newDiskClock(t *testing.T, kinds ...Kind) (*Nemesis, *diskClockTarget, *[]history.Op) {
	t.Helper()
	ft := &diskClockTarget{policyTarget: policyTarget{nodes: nodeNames(3)}, offsets: map[string][]time.Duration{}}
	var ops []history.Op
	var mu sync.Mutex
	n, err := New(ft, Config{Kinds: kinds, TearWrites: true, StrobePeriod: time.Millisecond}, func(op history.Op) {
		mu.Lock()
		defer mu.Unlock()
		ops = append(ops, op)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, ft, &ops
}

func TestLoseUnsyncedKillsLosesAndRestarts(t *testing.T) {
	n, ft, ops := newDiskClock(t, LoseUnsynced)
	ctx := context.Background()
	f := Fault{Kind: LoseUnsynced, Nodes: []string{"n1", "n3"}, Tear: true, Seed: 7}
	if err := n.Start(ctx, f); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ft.lost, ",") != "n1,n3" {
		t.Fatalf("lost %v", ft.lost)
	}
	done := (*ops)[1]
	lost, _ := done.Value.(map[string]any)["lost"].(map[string]any)
	if done.F != "start-lose-unsynced" || len(lost) != 2 || lost["n1"].(map[string]any)["torn"] == nil {
		t.Fatalf("completion %+v does not say what each node lost", done)
	}
	if _, ok := (*ops)[0].Value.(map[string]any)["lost"]; ok {
		t.Fatal("the invoke already claims what was lost")
	}
	if r := n.Kills(); r.PeakDown != 2 {
		t.Fatalf("peak down %d after losing two nodes", r.PeakDown)
	}
	if err := n.HealAll(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ft.started, ",") != "n1,n3" || (*ops)[len(*ops)-1].F != "stop-lose-unsynced" {
		t.Fatalf("heal started %v, last op %+v", ft.started, (*ops)[len(*ops)-1])
	}
}

func TestClockBumpAndStrobeResetOnStopAndHeal(t *testing.T) {
	n, ft, ops := newDiskClock(t, ClockBump, ClockStrobe)
	ctx := context.Background()
	bump := Fault{Kind: ClockBump, Nodes: []string{"n2"}, Offset: -1500 * time.Millisecond}
	if err := n.Start(ctx, bump); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(ctx, bump); err != nil {
		t.Fatal(err)
	}
	if got := ft.offsets["n2"]; len(got) != 2 || got[0] != bump.Offset || got[1] != 0 {
		t.Fatalf("bump set offsets %v, want %v then 0", got, bump.Offset)
	}
	strobeF := Fault{Kind: ClockStrobe, Nodes: []string{"n3"}, Offset: 200 * time.Millisecond, Period: time.Millisecond}
	if err := n.Start(ctx, strobeF); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	// HealAll, not Stop: a shutdown in the middle of a strobe must stop
	// it and set the clock back.
	if err := n.HealAll(ctx); err != nil {
		t.Fatal(err)
	}
	ft.mu.Lock()
	got := append([]time.Duration(nil), ft.offsets["n3"]...)
	ft.mu.Unlock()
	if len(got) < 4 || got[len(got)-1] != 0 {
		t.Fatalf("strobe set %v: want several flips, ending at 0", got)
	}
	for _, o := range got[:len(got)-1] {
		if o != strobeF.Offset && o != -strobeF.Offset {
			t.Fatalf("strobe set %v, outside ±%v", o, strobeF.Offset)
		}
	}
	time.Sleep(5 * time.Millisecond)
	ft.mu.Lock()
	after := len(ft.offsets["n3"])
	ft.mu.Unlock()
	if after != len(got) {
		t.Fatal("the strobe kept flipping after the heal")
	}
	last := (*ops)[len(*ops)-1]
	if last.F != "stop-clock-strobe" || last.Value.(map[string]any)["flips"] == nil {
		t.Fatalf("heal recorded %+v", last)
	}
	if err := n.HealAll(ctx); err != nil || (*ops)[len(*ops)-1].F != "stop-clock-strobe" || len(*ops) != 8 {
		t.Fatalf("a second heal did something: %v, %d ops", err, len(*ops))
	}
}

func TestClockFaultFailureIsReported(t *testing.T) {
	n, ft, _ := newDiskClock(t, ClockBump)
	ft.failSet = errors.New("admin endpoint down")
	err := n.Start(context.Background(), Fault{Kind: ClockBump, Nodes: []string{"n1"}, Offset: time.Second})
	if err == nil || !strings.Contains(err.Error(), "admin endpoint down") {
		t.Fatalf("Start = %v", err)
	}
}

func TestNewRefusesTargetsWithoutDisksOrClocks(t *testing.T) {
	ft := &policyTarget{nodes: nodeNames(3)}
	for _, k := range []Kind{LoseUnsynced, ClockBump, ClockStrobe} {
		if _, err := New(ft, Config{Kinds: []Kind{k}}, func(history.Op) {}); err == nil {
			t.Errorf("%s accepted for a target that cannot do it", k)
		}
	}
}
