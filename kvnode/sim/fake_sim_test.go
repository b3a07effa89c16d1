package sim

import (
	"bytes"
	"testing"

	"github.com/chaoskv/chaos/checker"
)

// The simulator's own machinery, exercised with the fake primary-backup
// core: runs complete, histories replay exactly, and a core that serves
// stale reads is caught.

func TestFakeCoreRunIsLinearizableAndDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Factory: fakeFactory(false), Nemesis: []string{NemesisPartition, NemesisLoss, NemesisDup, NemesisDelay}, Ops: 500, SnapshotEvery: 50}
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Valid != checker.Valid {
		t.Fatalf("seed %d: %s %v", cfg.Seed, a.Check.Summary, a.Problems)
	}
	if a.Ok < 100 {
		t.Fatalf("only %d ok ops of %d", a.Ok, a.Ops)
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.HistoryJSONL(), b.HistoryJSONL()) {
		t.Fatal("same seed, different histories")
	}
	t.Logf("ops=%d ok=%d fail=%d info=%d virtual=%v net=%+v", a.Ops, a.Ok, a.Fail, a.Info, a.Virtual, a.Net)
}

func TestFakeCoreStaleReadsAreCaught(t *testing.T) {
	for _, w := range []string{WorkloadRegister, WorkloadAppend} {
		found := false
		for seed := int64(1); seed <= 20 && !found; seed++ {
			res, err := Run(Config{Seed: seed, Workload: w, Factory: fakeFactory(true), Nemesis: []string{NemesisPartition, NemesisDelay}, Ops: 300})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid == checker.Invalid {
				found = true
				t.Logf("%s seed %d: %s", w, seed, res.Check.Summary)
			}
		}
		if !found {
			t.Fatalf("%s: 20 seeds of a core that serves stale reads from backups all looked linearizable", w)
		}
	}
}
