package nemesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
)

func TestPlanMembership(t *testing.T) {
	three := GroupMembers{Group: 1, Members: []string{"n1", "n2", "n3"}, Hosts: []string{"n1", "n2", "n3", "n4"}, InForce: true}
	four := GroupMembers{Group: 1, Members: []string{"n1", "n2", "n3", "n4"}, Hosts: []string{"n1", "n2", "n3", "n4"}, InForce: true}
	for _, tc := range []struct {
		name    string
		groups  []GroupMembers
		down    []string
		killAny bool
		// allowed lists every change (as Op() on group) the plan may
		// return over many seeds; all of them must come up.
		allowed []string
		none    bool
	}{
		{name: "all healthy: add or replace, never below three", groups: []GroupMembers{three},
			allowed: []string{"add n4", "replace n1 by n4", "replace n2 by n4", "replace n3 by n4"}},
		{name: "four members: remove any, no spare to add", groups: []GroupMembers{four},
			allowed: []string{"remove n1", "remove n2", "remove n3", "remove n4"}},
		{name: "a down spare is not added", groups: []GroupMembers{three}, down: []string{"n4"}, none: true},
		{name: "a down spare is added under kill-any", groups: []GroupMembers{three}, down: []string{"n4"}, killAny: true,
			allowed: []string{"add n4", "replace n1 by n4", "replace n2 by n4", "replace n3 by n4"}},
		// With n1 down, 2 of 3 are healthy; replacing a healthy member
		// by n4 keeps 2 of 3, adding n4 keeps 3 of 4.
		{name: "one member down", groups: []GroupMembers{three}, down: []string{"n1"},
			allowed: []string{"add n4", "replace n1 by n4", "replace n2 by n4", "replace n3 by n4"}},
		// Of four with two down, no majority is healthy now: nothing goes.
		{name: "no healthy majority now", groups: []GroupMembers{four}, down: []string{"n1", "n2"}, none: true},
		{name: "no healthy majority, kill-any", groups: []GroupMembers{four}, down: []string{"n1", "n2"}, killAny: true,
			allowed: []string{"remove n1", "remove n2", "remove n3", "remove n4"}},
		// Of four with n1 down, removing a healthy one leaves 2 of 3.
		{name: "four members, one down", groups: []GroupMembers{four}, down: []string{"n1"},
			allowed: []string{"remove n1", "remove n2", "remove n3", "remove n4"}},
		{name: "a change in progress", groups: []GroupMembers{{Group: 1, Members: three.Members, Hosts: three.Hosts}}, none: true},
		{name: "two hosts only: nothing to remove or add",
			groups: []GroupMembers{{Group: 2, Members: []string{"n1", "n2"}, Hosts: []string{"n1", "n2"}, InForce: true}}, none: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			healthy := func(n string) bool { return !slices.Contains(tc.down, n) }
			seen := map[string]bool{}
			for seed := range uint64(200) {
				c, err := PlanMembership(seed, tc.groups, healthy, tc.killAny)
				if tc.none {
					if !errors.Is(err, ErrNoMemberChange) {
						t.Fatalf("seed %d: %v, %v; want ErrNoMemberChange", seed, c, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				if !slices.IsSorted(c.To) || !slices.Equal(c.From, tc.groups[0].Members) {
					t.Fatalf("seed %d: %+v", seed, c)
				}
				seen[c.Op()] = true
			}
			var got []string
			for op := range seen {
				got = append(got, op)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.allowed) {
				t.Fatalf("changes over 200 seeds: %q, want %q", got, tc.allowed)
			}
		})
	}
}

// TestPlanMembershipAnyOneDown: with three members, two spares and any
// one node down, there is always a change, and every change keeps a
// majority of the new configuration healthy, adds only healthy nodes,
// moves by one member (or replaces one) and keeps at least three.
func TestPlanMembershipAnyOneDown(t *testing.T) {
	hosts := nodeNames(5)
	members := []string{"n1", "n2", "n3"}
	for seed := range uint64(300) {
		down := hosts[seed%5]
		healthy := func(n string) bool { return n != down }
		c, err := PlanMembership(seed, []GroupMembers{{Group: 1, Members: members, Hosts: hosts, InForce: true}}, healthy, false)
		if err != nil {
			t.Fatalf("seed %d, %s down: %v", seed, down, err)
		}
		k, added, gone := 0, 0, 0
		for _, n := range c.To {
			if healthy(n) {
				k++
			}
			if !slices.Contains(members, n) {
				added++
				if !healthy(n) {
					t.Fatalf("seed %d: added %s, which is down", seed, n)
				}
			}
		}
		for _, n := range members {
			if !slices.Contains(c.To, n) {
				gone++
			}
		}
		switch {
		case 2*k <= len(c.To):
			t.Fatalf("seed %d: %v has no healthy majority", seed, c.To)
		case len(c.To) < 3:
			t.Fatalf("seed %d: %v is below the minimum", seed, c.To)
		case added > 1 || gone > 1 || added+gone == 0:
			t.Fatalf("seed %d: %v -> %v is not one step", seed, members, c.To)
		}
	}
}

func TestPlanMembershipIsPure(t *testing.T) {
	g := []GroupMembers{
		{Group: 1, Members: []string{"n1", "n2", "n3"}, Hosts: []string{"n1", "n2", "n3", "n6"}, InForce: true},
		{Group: 2, Members: []string{"n2", "n3", "n4"}, Hosts: []string{"n2", "n3", "n4", "n6"}, InForce: true},
	}
	ok := func(string) bool { return true }
	groups := map[uint32]bool{}
	for seed := range uint64(50) {
		a, err1 := PlanMembership(seed, g, ok, false)
		b, err2 := PlanMembership(seed, g, ok, false)
		if err1 != nil || err2 != nil || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("seed %d: %v %v / %v %v", seed, a, err1, b, err2)
		}
		groups[a.Group] = true
	}
	if !groups[1] || !groups[2] {
		t.Fatalf("changes reached groups %v, want both", groups)
	}
}

// fakeMembers is a Target whose one group changes membership at once.
type fakeMembers struct {
	*fakeTarget
	members []string
	hosts   []string
	refuse  bool
	changes atomic.Int64
	// unsafe counts changes made while the old or the new configuration
	// had no live majority; underDown counts those made with a node down.
	unsafe, underDown int
}

func (f *fakeMembers) Memberships(context.Context) ([]GroupMembers, error) {
	return []GroupMembers{{Group: 1, Members: slices.Clone(f.members), Hosts: f.hosts, InForce: true}}, nil
}

func (f *fakeMembers) ChangeMembers(_ context.Context, g uint32, to []string) error {
	if f.refuse {
		return errors.New("409 Conflict: a change is in progress")
	}
	f.changes.Add(1)
	live := func(ms []string) bool {
		k := 0
		for _, m := range ms {
			if !f.dead[m] && !f.frozen[m] {
				k++
			}
		}
		return 2*k > len(ms)
	}
	if !live(f.members) || !live(to) {
		f.unsafe++
	}
	if len(f.dead) > 0 {
		f.underDown++
	}
	f.members = slices.Clone(to)
	return nil
}

// TestMembershipKeepsAMajorityUnderKills mixes membership with kills and
// pauses: under the minority policy no change leaves the old or the new
// configuration without a live majority; under kill-any such changes
// come up.
func TestMembershipKeepsAMajorityUnderKills(t *testing.T) {
	for _, policy := range []KillPolicy{KillMinority, KillAny} {
		unsafe, underDown, changes := 0, 0, int64(0)
		for seed := range int64(10) {
			f := &fakeMembers{fakeTarget: newFake(5), members: []string{"n1", "n2", "n3"}, hosts: nodeNames(5)}
			ctx, cancel := context.WithCancel(context.Background())
			var count atomic.Int64
			n, err := New(f, Config{Kinds: []Kind{Membership, Kill, Pause}, KillPolicy: policy, Seed: seed, Interval: time.Second,
				Log: slog.New(slog.DiscardHandler),
				Sleep: func(ctx context.Context, d time.Duration) error {
					if count.Add(1) > 300 {
						cancel()
					}
					time.Sleep(20 * time.Microsecond)
					return ctx.Err()
				}}, func(history.Op) {})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Run(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			unsafe, underDown, changes = unsafe+f.unsafe, underDown+f.underDown, changes+f.changes.Load()
		}
		t.Logf("%s: %d changes, %d with a node down, %d without a live majority", policy, changes, underDown, unsafe)
		if underDown == 0 {
			t.Fatalf("%s: no change came while a node was down: the test tests nothing", policy)
		}
		if policy == KillMinority && unsafe > 0 {
			t.Fatalf("minority policy: %d changes without a live majority", unsafe)
		}
		if policy == KillAny && unsafe == 0 {
			t.Fatalf("kill-any: no change without a live majority in %d", changes)
		}
	}
}

func TestMembershipRecordsEachConfiguration(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		f := &fakeMembers{fakeTarget: newFake(5), members: []string{"n1", "n2", "n3"}, hosts: nodeNames(5), refuse: refuse}
		var ops []history.Op
		ctx, cancel := context.WithCancel(context.Background())
		var count atomic.Int64
		n, err := New(f, Config{Kinds: []Kind{Membership, Kill}, Seed: 5, Interval: time.Second, Log: slog.New(slog.DiscardHandler),
			Sleep: func(ctx context.Context, d time.Duration) error {
				if count.Add(1) > 200 {
					cancel()
				}
				time.Sleep(20 * time.Microsecond)
				return ctx.Err()
			}}, func(op history.Op) { ops = append(ops, op) })
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Run(ctx); err != nil {
			t.Fatalf("refuse=%v: Run: %v", refuse, err)
		}
		cancel()
		checkPairs(t, ops)
		from := []string{"n1", "n2", "n3"}
		changes := 0
		for i := 0; i < len(ops); i += 2 {
			if ops[i].F != string(Membership) {
				continue
			}
			v := ops[i+1].Value.(map[string]any)
			if v["op"] == "none" {
				continue
			}
			if refuse {
				if ops[i+1].Error == "" {
					t.Fatalf("refused change recorded without error: %v", ops[i+1])
				}
				continue
			}
			if ops[i+1].Error != "" {
				t.Fatalf("change failed: %v", ops[i+1])
			}
			changes++
			if fmt.Sprint(v["from"]) != fmt.Sprint(from) {
				t.Fatalf("change %d from %v, but the configuration was %v", changes, v["from"], from)
			}
			from = nil
			for _, m := range v["to"].([]any) {
				from = append(from, m.(string))
			}
			if !strings.Contains(v["op"].(string), "n") {
				t.Fatalf("op %q", v["op"])
			}
		}
		if !refuse && (changes == 0 || int64(changes) != f.changes.Load()) {
			t.Fatalf("%d changes recorded, %d made", changes, f.changes.Load())
		}
	}
}

func TestMembershipNeedsAMemberer(t *testing.T) {
	if _, err := New(newFake(3), Config{Kinds: []Kind{Membership}}, func(history.Op) {}); !errors.Is(err, errNoMemberer) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Plan(Step{Kind: Membership}, nodeNames(3), nil, Params{}); err == nil {
		t.Fatal("Plan accepted membership")
	}
}
