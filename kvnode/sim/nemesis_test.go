package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads"
)

// TestEveryWorkloadEveryKind runs every workload under every fault kind
// the simulator supports, alone, for a few short seeds: every history must
// be valid, and the kind must have struck (its nemesis ops, without an
// error, are in some seed's history). A kind a workload's world cannot
// host is refused with the reason nemesis.Sim.Needs gives, never run
// without it.
func TestEveryWorkloadEveryKind(t *testing.T) {
	seeds := int64(2)
	if testing.Short() {
		seeds = 1
	}
	for _, w := range workloads.Names() {
		for _, k := range nemesis.Kinds() {
			if nemesis.Sim.Supported(k) != nil {
				continue
			}
			t.Run(w+"/"+string(k), func(t *testing.T) {
				if err := CheckNemesis(w, []nemesis.Kind{k}); err != nil {
					if nemesis.Sim.Needs(k) == "" || !strings.Contains(err.Error(), nemesis.Sim.Needs(k)) {
						t.Fatalf("refused without naming what %s needs: %v", k, err)
					}
					if _, err := Run(Config{Seed: 1, Workload: w, Nemesis: []nemesis.Kind{k}, Ops: 10}); err == nil {
						t.Fatalf("CheckNemesis refuses %s for %s, Run took it", k, w)
					}
					return
				}
				struck := 0
				for s := int64(1); s <= seeds; s++ {
					cfg := Config{Seed: s, Workload: w, Nemesis: []nemesis.Kind{k}, Ops: 100, Keys: 3,
						Schedule: NemesisSchedule{Interval: 300 * time.Millisecond}}
					res, err := Run(cfg)
					if err != nil {
						t.Fatalf("seed %d: %v\n  replay: %s", s, err, replayCommand(cfg))
					}
					if res.Valid != checker.Valid {
						t.Fatalf("seed %d: %s: %s %v\n  replay: %s", s, res.Valid, res.Check.Summary, res.Problems, replayCommand(cfg))
					}
					struck += struckOps(res.History, k)
				}
				if struck == 0 {
					t.Fatalf("%s never struck in %d seeds of %s", k, seeds, w)
				}
				t.Logf("%s struck %d times in %d seeds", k, struck, seeds)
			})
		}
	}
}

// struckOps counts the completed nemesis ops that started (or, for an
// event, performed) a fault of kind k without an error.
func struckOps(h []history.Op, k nemesis.Kind) int {
	f := nemesis.StartF(k)
	if k == nemesis.Reconfig || k == nemesis.Membership {
		f = string(k)
	}
	n := 0
	for _, op := range h {
		if op.Process != history.NemesisProcess || op.Type != history.Info || op.F != f || op.Error != "" {
			continue
		}
		if v, ok := op.Value.(map[string]any); ok && (v["kind"] == nil || v["kind"] == string(k)) {
			n++
		}
	}
	return n
}

// TestNemesisRefusals: kinds a world cannot host are refused by name.
func TestNemesisRefusals(t *testing.T) {
	for _, tt := range []struct {
		workload string
		kinds    []nemesis.Kind
		want     string
	}{
		{"register", []nemesis.Kind{nemesis.Partition, nemesis.Reconfig}, "reconfig needs a sharded cluster"},
		{"list-append", []nemesis.Kind{nemesis.Membership}, "membership needs spare nodes"},
		{"bank", []nemesis.Kind{"bogus"}, `unknown fault kind "bogus"`},
	} {
		err := CheckNemesis(tt.workload, tt.kinds)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckNemesis(%s, %v) = %v, want an error saying %q", tt.workload, tt.kinds, err, tt.want)
		}
	}
	for _, w := range workloads.Names() {
		if err := CheckNemesis(w, nemesis.Sim.All()); err != nil {
			t.Errorf("%s refuses all: %v", w, err)
		}
	}
}
