package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/nemesis"
)

func TestSmaller(t *testing.T) {
	tests := []struct {
		n, lo int
		divs  []int
		want  []int
	}{
		{1000, 1, []int{32, 16, 8, 4, 2}, []int{31, 62, 125, 250, 500, 750}},
		{10, 3, []int{4, 2}, []int{5, 7}},
		{4, 1, []int{32, 2}, []int{2, 3}},
		{1, 1, []int{2}, nil},
	}
	for _, tt := range tests {
		if got := smaller(tt.n, tt.lo, tt.divs...); !slices.Equal(got, tt.want) {
			t.Errorf("smaller(%d, %d, %v) = %v, want %v", tt.n, tt.lo, tt.divs, got, tt.want)
		}
	}
}

func TestFailureKinds(t *testing.T) {
	tests := []struct {
		res  Result
		want []string
	}{
		{Result{Valid: checker.Valid, Check: checker.Result{Valid: checker.Valid}}, nil},
		{Result{Valid: checker.Invalid, Check: checker.Result{Valid: checker.Invalid, Checker: "linearizable", AnomalyTypes: []string{"nonlinearizable"}},
			Problems: []string{"final read of key 1 did not complete"}}, []string{"nonlinearizable", "final-read-incomplete"}},
		{Result{Valid: checker.Invalid, Check: checker.Result{Valid: checker.Invalid, Summary: "stopped at a safety violation"},
			Problems: []string{"safety violation at step 9 (1s), node 2: two values chosen"}}, []string{"safety-violation"}},
		{Result{Valid: checker.Invalid, Check: checker.Result{Valid: checker.Valid}, Problems: []string{"replicas diverged: ..."}}, []string{"replicas-diverged"}},
		{Result{Valid: checker.Unknown, Check: checker.Result{Valid: checker.Unknown}}, []string{"unknown"}},
	}
	for i, tt := range tests {
		if got := tt.res.Failure(); !slices.Equal(got, tt.want) {
			t.Errorf("case %d: Failure() = %v, want %v", i, got, tt.want)
		}
	}
}

// TestShrink shrinks a failing seed of two deliberately broken variants
// to a run of under a tenth of its operations that fails the same way,
// and replays it: the fake core that answers reads from backups (it needs
// no faults at all), and paxos on a disk whose fsync does nothing (it
// needs a power loss).
func TestShrink(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		needsKind nemesis.Kind // a fault kind the shrunk run must keep
	}{
		{"stale reads", Config{Factory: fakeFactory(true), Nemesis: []nemesis.Kind{nemesis.Partition, nemesis.Delay, nemesis.Kill, nemesis.Pause}}, ""},
		{"lying disk", Config{Protocol: "paxos", Replicas: 3, syncLies: true, Nemesis: []nemesis.Kind{nemesis.Partition, nemesis.Delay, nemesis.LoseUnsynced, nemesis.Pause}}, nemesis.LoseUnsynced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			for seed := int64(1); ; seed++ {
				cfg = tt.cfg
				cfg.Seed, cfg.Ops = seed, 1000
				res, err := Run(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if res.Valid == checker.Invalid {
					break
				}
				if seed == 40 {
					t.Fatal("40 seeds of a broken core all passed")
				}
			}
			start := time.Now()
			tried := 0
			s, err := Shrink(cfg, ShrinkOptions{Tried: func(Config, *Result, bool) { tried++ }})
			if err != nil {
				t.Fatal(err)
			}
			if tried != s.Runs-1 {
				t.Errorf("Tried saw %d candidates, Runs says %d runs", tried, s.Runs)
			}
			if s.Config.Ops*10 >= s.Original.Ops {
				t.Errorf("seed %d shrank from %d to %d ops, want under a tenth", cfg.Seed, s.Original.Ops, s.Config.Ops)
			}
			if s.Result.Faults > s.First.Faults || s.Result.Virtual >= s.First.Virtual {
				t.Errorf("the shrunk run is not smaller: faults %d -> %d, simulated %v -> %v", s.First.Faults, s.Result.Faults, s.First.Virtual, s.Result.Virtual)
			}
			if tt.needsKind != "" && (!slices.Contains(s.Config.Nemesis, tt.needsKind) || s.Result.Faults == 0) {
				t.Errorf("the shrunk run dropped the fault it needs: %v, %d faults", s.Config.Nemesis, s.Result.Faults)
			}
			replay, err := Run(s.Config)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(replay.Failure(), s.Failure) || string(replay.HistoryJSONL()) != string(s.Result.HistoryJSONL()) {
				t.Errorf("replaying the shrunk config: failure %v, want %q and the same history", replay.Failure(), s.Failure)
			}
			t.Logf("seed %d fails as %s: ops %d -> %d, clients %d -> %d, keys %d -> %d, replicas %d -> %d, faults %d -> %d (kinds %v -> %v, max %d, cap %v), simulated %v -> %v; %d runs in %v",
				cfg.Seed, s.Failure, s.Original.Ops, s.Config.Ops, s.Original.Clients, s.Config.Clients, s.Original.Keys, s.Config.Keys, s.Original.Replicas, s.Config.Replicas,
				s.First.Faults, s.Result.Faults, s.Original.Nemesis, s.Config.Nemesis, s.Config.Schedule.MaxFaults, s.Config.Schedule.FaultCap,
				s.First.Virtual, s.Result.Virtual, s.Runs, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestShrinkRefusesValidRun(t *testing.T) {
	if _, err := Shrink(Config{Seed: 1, Factory: fakeFactory(false), Ops: 50}, ShrinkOptions{}); err == nil {
		t.Fatal("Shrink of a valid run succeeded")
	}
}
