package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/workloads/memkv"
)

// A run's results say how many nodes the kill fault had down at once, and
// carry a note exactly when that was more than a minority.
func TestKillPolicyReported(t *testing.T) {
	for _, policy := range []nemesis.KillPolicy{nemesis.KillMinority, nemesis.KillAny} {
		t.Run(string(policy), func(t *testing.T) {
			b := &fakeBackend{sut: newMem(memkv.Options{})}
			cfg := baseConfig(t, b)
			cfg.TimeLimit = 600 * time.Millisecond
			cfg.Nemesis = nemesis.Config{Kinds: []nemesis.Kind{nemesis.Kill}, Interval: 5 * time.Millisecond, KillPolicy: policy}
			out, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := out.Summary.Stats["kills"].(nemesis.KillReport)
			if !ok {
				t.Fatalf("stats carry no kill report: %v", out.Summary.Stats)
			}
			if k.Policy != policy || k.Nodes != 5 || k.PeakDown < 1 {
				t.Fatalf("kill report %+v", k)
			}
			noted := false
			for _, n := range out.Summary.Notes {
				noted = noted || strings.Contains(n, "more than a minority")
			}
			if noted != k.BeyondMinority {
				t.Fatalf("note present = %v, beyond a minority = %v (%+v)", noted, k.BeyondMinority, k)
			}
			if policy == nemesis.KillMinority && k.BeyondMinority {
				t.Fatalf("minority policy had %d of 5 down", k.PeakDown)
			}
			if policy == nemesis.KillAny && !k.BeyondMinority {
				t.Logf("the any policy happened to stay within a minority (peak %d)", k.PeakDown)
			}
		})
	}
}
