package nemesis

import (
	"context"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
)

func TestParseKillPolicy(t *testing.T) {
	for in, want := range map[string]KillPolicy{"": KillMinority, "minority": KillMinority, "any": KillAny} {
		if got, err := ParseKillPolicy(in); err != nil || got != want {
			t.Errorf("ParseKillPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKillPolicy("most"); err == nil {
		t.Error("unknown policy accepted")
	}
}

// Under the minority policy a kill never takes a majority; under any, some
// seed takes every node, and every pick is non-empty.
func TestKillPolicyBoundsVictims(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "n5"}
	sawAll := false
	for seed := range uint64(300) {
		for _, killAny := range []bool{false, true} {
			f, err := Plan(Step{Kind: Kill, Seed: seed}, nodes, nil, Params{LossPercent: 10, Kill: map[bool]KillPolicy{true: KillAny, false: KillMinority}[killAny]})
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Nodes) == 0 {
				t.Fatalf("seed %d: no victims", seed)
			}
			if !killAny && len(f.Nodes) > 2 {
				t.Fatalf("seed %d: minority policy killed %v", seed, f.Nodes)
			}
			sawAll = sawAll || len(f.Nodes) == len(nodes)
		}
	}
	if !sawAll {
		t.Error("the any policy never killed every node in 300 seeds")
	}
}

func TestKillsReportPeakDown(t *testing.T) {
	ft := &policyTarget{nodes: []string{"n1", "n2", "n3"}}
	n, err := New(ft, Config{Kinds: []Kind{Kill}, KillPolicy: KillAny, Sleep: func(context.Context, time.Duration) error { return nil }}, func(history.Op) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Start(ctx, Fault{Kind: Kill, Nodes: []string{"n1"}}); err != nil {
		t.Fatal(err)
	}
	if r := n.Kills(); r.PeakDown != 1 || r.BeyondMinority || r.Policy != KillAny || r.Nodes != 3 {
		t.Fatalf("after one kill: %+v", r)
	}
	if err := n.Start(ctx, Fault{Kind: Kill, Nodes: []string{"n2", "n3"}}); err != nil {
		t.Fatal(err)
	}
	if err := n.HealAll(ctx); err != nil {
		t.Fatal(err)
	}
	if r := n.Kills(); r.PeakDown != 3 || !r.BeyondMinority {
		t.Fatalf("after all were down: %+v, want peak 3 beyond a minority", r)
	}
	if _, err := New(ft, Config{Kinds: []Kind{Kill}, KillPolicy: "most"}, func(history.Op) {}); err == nil {
		t.Error("unknown policy accepted by New")
	}
}

// policyTarget accepts every fault.
type policyTarget struct {
	Target
	nodes []string
}

func (p *policyTarget) Nodes() []string                         { return p.nodes }
func (p *policyTarget) Kill(context.Context, string) error      { return nil }
func (p *policyTarget) Start(context.Context, string) error     { return nil }
func (p *policyTarget) Partition(context.Context, Grudge) error { return nil }
