package nemesis

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPlanSimulatorKinds: Plan decides every simulator kind completely and
// within its documented bounds, for many seeds.
func TestPlanSimulatorKinds(t *testing.T) {
	nodes := nodeNames(5)
	p := Params{DupPercent: DefaultDupPercent}
	for seed := range uint64(200) {
		for _, tc := range []struct {
			kind  Kind
			check func(f Fault) string
		}{
			{Clock, func(f Fault) string {
				if len(f.Nodes) < 1 || len(f.Nodes) > 3 || len(f.Rates) != len(f.Nodes) || !slices.IsSorted(f.Nodes) {
					return "victims"
				}
				for _, r := range f.Rates {
					if r != RateFactor && r != 1/RateFactor {
						return "rate"
					}
				}
				return ""
			}},
			{Dup, func(f Fault) string {
				if f.Percent != DefaultDupPercent {
					return "percent"
				}
				return ""
			}},
			{PartitionSwizzle, func(f Fault) string {
				a, b := slices.Sorted(slices.Values(f.Nodes)), slices.Sorted(slices.Values(f.Order))
				if !slices.Equal(a, nodes) || !slices.Equal(b, nodes) || f.Period < 20*time.Millisecond || f.Period > 100*time.Millisecond {
					return "orders or period"
				}
				return ""
			}},
			{CrashMoment, func(f Fault) string {
				if f.Seed != seed {
					return "seed"
				}
				return ""
			}},
			{Disk, func(f Fault) string {
				if len(f.Nodes) != 1 || f.Count < 1 || f.Count > 2 {
					return "victim or count"
				}
				return ""
			}},
			{Delay, func(f Fault) string { return "" }},
		} {
			f, err := Plan(Step{Kind: tc.kind, Seed: seed}, nodes, nil, p)
			if err != nil {
				t.Fatalf("%s seed %d: %v", tc.kind, seed, err)
			}
			if f.Kind != tc.kind {
				t.Fatalf("%s planned as %s", tc.kind, f.Kind)
			}
			if why := tc.check(f); why != "" {
				t.Fatalf("%s seed %d: bad %s in %+v", tc.kind, seed, why, f)
			}
			if v := f.Value(); v["kind"] != string(tc.kind) {
				t.Fatalf("%s: value %v", tc.kind, v)
			}
		}
	}
	for _, k := range []Kind{Reconfig, Membership} {
		if _, err := Plan(Step{Kind: k}, nodes, nil, p); err == nil || !strings.Contains(err.Error(), "not by Plan") {
			t.Errorf("Plan(%s) = %v, want a pointer to its own planner", k, err)
		}
	}
	if _, err := Plan(Step{Kind: Dup}, nodes, nil, Params{}); err == nil {
		t.Error("dup without a percentage planned")
	}
}

// TestKillMinorityOrAll: a minority most of the time, every node about
// one time in five.
func TestKillMinorityOrAll(t *testing.T) {
	nodes := nodeNames(5)
	all := 0
	for seed := range uint64(1000) {
		f, err := Plan(Step{Kind: Kill, Seed: seed}, nodes, nil, Params{Kill: KillMinorityOrAll})
		if err != nil {
			t.Fatal(err)
		}
		switch n := len(f.Nodes); {
		case n == 5:
			all++
		case n < 1 || n > 2:
			t.Fatalf("seed %d: %v is neither a minority nor every node", seed, f.Nodes)
		}
	}
	if all < 150 || all > 250 {
		t.Fatalf("every node went down %d times in 1000, want about 200", all)
	}
}

// TestPauseFreezesALeaderHalfTheTime: given the leaders, pause freezes one
// of them in about half its faults; without them it never favours one.
func TestPauseFreezesALeaderHalfTheTime(t *testing.T) {
	nodes := nodeNames(5)
	with := 0
	for seed := range uint64(1000) {
		f, err := Plan(Step{Kind: Pause, Seed: seed}, nodes, []string{"n4"}, Params{})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Nodes) < 1 || len(f.Nodes) > 2 || !slices.IsSorted(f.Nodes) {
			t.Fatalf("seed %d: victims %v", seed, f.Nodes)
		}
		if slices.Contains(f.Nodes, "n4") {
			with++
		}
	}
	// Half the time by choice, plus a random minority's own chance.
	if with < 550 || with > 800 {
		t.Fatalf("the leader was frozen %d times in 1000", with)
	}
}

// TestRhythm: flaps shorten about the asked share of steps, within their
// bounds; aim draws half the steps from the aimed kinds; neither changes
// a schedule that asks for neither.
func TestRhythm(t *testing.T) {
	kinds := []Kind{Partition, PartitionOne, PartitionBridge, PartitionLeader}
	s, err := NewScheduleWith(kinds, Rhythm{Interval: 640 * time.Millisecond, Flap: 0.5, Aim: true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	short, leader := 0, 0
	for range 2000 {
		st := s.Next()
		if st.Hold < 320*time.Millisecond {
			short++
			if st.Hold < 10*time.Millisecond || st.Quiet >= 320*time.Millisecond {
				t.Fatalf("a flap of %v after %v", st.Hold, st.Quiet)
			}
		}
		if st.Kind == PartitionLeader {
			leader++
		}
	}
	// Aimed: 1/2 + 1/2 * 1/4 of the steps.
	if short < 850 || short > 1150 || leader < 1100 || leader > 1400 {
		t.Fatalf("%d short steps and %d partition-leader steps in 2000", short, leader)
	}
	a, _ := NewSchedule(kinds, time.Second, 5)
	b, _ := NewScheduleWith(kinds, Rhythm{Interval: time.Second}, 5)
	for range 100 {
		if x, y := a.Next(), b.Next(); x != y {
			t.Fatalf("the zero rhythm changed the schedule: %+v vs %+v", x, y)
		}
	}
	if _, err := NewScheduleWith(kinds, Rhythm{Interval: time.Second, Flap: 1.5}, 1); err == nil {
		t.Fatal("a flap probability of 1.5 accepted")
	}
}
