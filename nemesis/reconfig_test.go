package nemesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
)

// fakeCtl is a Target with a toy shard controller: joins and leaves
// rebalance round-robin, moves pin a shard. It logs every call.
type fakeCtl struct {
	*fakeTarget
	layout  ShardLayout
	log     []string
	failOps string // an op name ("join", "leave", "move", "query") to fail
}

func newCtl(groups, joined, shards int) *fakeCtl {
	c := &fakeCtl{fakeTarget: newFake(5)}
	for g := 1; g <= groups; g++ {
		c.layout.All = append(c.layout.All, uint32(g))
		if g <= joined {
			c.layout.Joined = append(c.layout.Joined, uint32(g))
		}
	}
	c.layout.Shards = make([]uint32, shards)
	c.rebalance()
	return c
}

func (c *fakeCtl) rebalance() {
	for s := range c.layout.Shards {
		c.layout.Shards[s] = 0
		if len(c.layout.Joined) > 0 {
			c.layout.Shards[s] = c.layout.Joined[s%len(c.layout.Joined)]
		}
	}
}

func (c *fakeCtl) clone() ShardLayout {
	return ShardLayout{Num: c.layout.Num, Shards: slices.Clone(c.layout.Shards), Joined: slices.Clone(c.layout.Joined), All: slices.Clone(c.layout.All)}
}

func (c *fakeCtl) fail(op string) error {
	if c.failOps == op {
		return errors.New("injected " + op + " failure")
	}
	return nil
}

func (c *fakeCtl) Query(context.Context) (ShardLayout, error) {
	return c.clone(), c.fail("query")
}

func (c *fakeCtl) Join(_ context.Context, g uint32) (ShardLayout, error) {
	c.log = append(c.log, fmt.Sprintf("join %d", g))
	if err := c.fail("join"); err != nil {
		return ShardLayout{}, err
	}
	if slices.Contains(c.layout.Joined, g) {
		return ShardLayout{}, fmt.Errorf("group %d already joined", g)
	}
	c.layout.Joined = append(c.layout.Joined, g)
	slices.Sort(c.layout.Joined)
	c.layout.Num++
	c.rebalance()
	return c.clone(), nil
}

func (c *fakeCtl) Leave(_ context.Context, g uint32) (ShardLayout, error) {
	c.log = append(c.log, fmt.Sprintf("leave %d", g))
	if err := c.fail("leave"); err != nil {
		return ShardLayout{}, err
	}
	i := slices.Index(c.layout.Joined, g)
	if i < 0 || len(c.layout.Joined) == 1 {
		return ShardLayout{}, fmt.Errorf("group %d cannot leave %v", g, c.layout.Joined)
	}
	c.layout.Joined = slices.Delete(c.layout.Joined, i, i+1)
	c.layout.Num++
	c.rebalance()
	return c.clone(), nil
}

func (c *fakeCtl) Move(_ context.Context, s int, g uint32) (ShardLayout, error) {
	c.log = append(c.log, fmt.Sprintf("move %d %d", s, g))
	if err := c.fail("move"); err != nil {
		return ShardLayout{}, err
	}
	if !slices.Contains(c.layout.Joined, g) || s < 0 || s >= len(c.layout.Shards) {
		return ShardLayout{}, fmt.Errorf("bad move of shard %d to %d", s, g)
	}
	c.layout.Shards[s] = g
	c.layout.Num++
	return c.clone(), nil
}

func TestPlanReconfig(t *testing.T) {
	three := []uint32{1, 2, 3}
	for _, tc := range []struct {
		name    string
		l       ShardLayout
		allowed []string // ops that may be chosen
		wantErr bool
	}{
		{"no groups", ShardLayout{}, nil, true},
		{"one of one, all shards on it", ShardLayout{Shards: []uint32{1, 1, 1}, Joined: []uint32{1}, All: []uint32{1}}, nil, true},
		{"one of three", ShardLayout{Shards: []uint32{1, 1, 1}, Joined: []uint32{1}, All: three}, []string{"join"}, false},
		{"all joined", ShardLayout{Shards: []uint32{1, 2, 3, 1}, Joined: three, All: three}, []string{"leave", "move"}, false},
		{"two of three", ShardLayout{Shards: []uint32{1, 2, 1, 2}, Joined: []uint32{1, 2}, All: three}, []string{"join", "leave", "move"}, false},
		{"one joined, unassigned shards", ShardLayout{Shards: []uint32{0, 1}, Joined: []uint32{1}, All: []uint32{1}}, []string{"move"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for seed := range uint64(200) {
				a, err := PlanReconfig(seed, tc.l)
				if tc.wantErr {
					if err == nil {
						t.Fatalf("seed %d: planned %+v, want an error", seed, a)
					}
					return
				}
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				if b, _ := PlanReconfig(seed, tc.l); b != a {
					t.Fatalf("seed %d: %+v then %+v", seed, a, b)
				}
				seen[a.Op] = true
				switch a.Op {
				case "join":
					if slices.Contains(tc.l.Joined, a.Group) || !slices.Contains(tc.l.All, a.Group) {
						t.Fatalf("join of %d with %v joined of %v", a.Group, tc.l.Joined, tc.l.All)
					}
				case "leave":
					if !slices.Contains(tc.l.Joined, a.Group) || len(tc.l.Joined) < 2 {
						t.Fatalf("leave of %d from %v", a.Group, tc.l.Joined)
					}
				case "move":
					if !slices.Contains(tc.l.Joined, a.Group) || tc.l.Shards[a.Shard] == a.Group {
						t.Fatalf("move of shard %d (on %d) to %d", a.Shard, tc.l.Shards[a.Shard], a.Group)
					}
				}
			}
			for _, op := range tc.allowed {
				if !seen[op] {
					t.Errorf("op %s never chosen in 200 seeds (saw %v)", op, seen)
				}
			}
			if len(seen) != len(tc.allowed) {
				t.Errorf("saw %v, allowed %v", seen, tc.allowed)
			}
		})
	}
}

func runReconfig(t *testing.T, c *fakeCtl, kinds []Kind, sleeps int) []history.Op {
	t.Helper()
	var ops []history.Op
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var count atomic.Int64
	n, err := New(c, Config{
		Kinds: kinds, Seed: 3, Interval: time.Second, Log: slog.New(slog.DiscardHandler),
		Sleep: func(ctx context.Context, d time.Duration) error {
			if count.Add(1) > int64(sleeps) {
				cancel()
			}
			// Let the other schedules' goroutines interleave.
			time.Sleep(20 * time.Microsecond)
			return ctx.Err()
		},
	}, func(op history.Op) { ops = append(ops, op) })
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return ops
}

func TestReconfigRecordsExactlyWhatItDid(t *testing.T) {
	c := newCtl(4, 2, 16)
	ops := runReconfig(t, c, []Kind{Reconfig}, 60)
	checkPairs(t, ops)
	if len(ops) != 120 {
		t.Fatalf("%d ops for 60 steps, want 120", len(ops))
	}
	if len(c.log) != 60 {
		t.Fatalf("%d controller calls for 60 steps", len(c.log))
	}
	var lastNum int64
	kinds := map[string]int{}
	for i := 0; i < len(ops); i += 2 {
		inv, done := ops[i].Value.(map[string]any), ops[i+1].Value.(map[string]any)
		if ops[i].F != "reconfig" {
			t.Fatalf("f = %q", ops[i].F)
		}
		var call string
		switch inv["op"] {
		case "move":
			call = fmt.Sprintf("move %d %d", inv["shard"], inv["group"])
		default:
			call = fmt.Sprintf("%s %d", inv["op"], inv["group"])
		}
		if call != c.log[i/2] {
			t.Fatalf("step %d recorded %q but the controller got %q", i/2, call, c.log[i/2])
		}
		kinds[inv["op"].(string)]++
		if ops[i+1].Error != "" {
			t.Fatalf("step %d failed: %s", i/2, ops[i+1].Error)
		}
		num := done["config"].(int64)
		if num != lastNum+1 {
			t.Fatalf("step %d made config %d after %d", i/2, num, lastNum)
		}
		lastNum = num
	}
	for _, op := range []string{"join", "leave", "move"} {
		if kinds[op] == 0 {
			t.Errorf("no %s in 60 steps: %v", op, kinds)
		}
	}
}

func TestReconfigFailuresAreRecordedNotFatal(t *testing.T) {
	c := newCtl(3, 3, 8)
	c.failOps = "move"
	ops := runReconfig(t, c, []Kind{Reconfig}, 20)
	checkPairs(t, ops)
	failed := 0
	for i := 1; i < len(ops); i += 2 {
		if ops[i].Error != "" {
			failed++
			if _, ok := ops[i].Value.(map[string]any)["config"]; ok {
				t.Fatalf("failed action recorded a config: %v", ops[i].Value)
			}
		}
	}
	if failed == 0 {
		t.Fatal("no failed move recorded")
	}
	c = newCtl(3, 3, 8)
	c.failOps = "query"
	ops = runReconfig(t, c, []Kind{Reconfig}, 5)
	checkPairs(t, ops)
	if len(c.log) != 0 || len(ops) != 10 || ops[1].Error == "" {
		t.Fatalf("query failures: calls %v, ops %d", c.log, len(ops))
	}
}

func TestReconfigMixesWithPartitions(t *testing.T) {
	c := newCtl(3, 1, 16)
	ops := runReconfig(t, c, []Kind{Partition, Reconfig}, 300)
	checkPairs(t, ops)
	fs := map[string]bool{}
	for _, op := range ops {
		fs[op.F] = true
	}
	if !fs["reconfig"] || !fs["start-partition"] {
		t.Fatalf("fs %v", fs)
	}
}

func TestReconfigNeedsAReconfigurer(t *testing.T) {
	_, err := New(newFake(3), Config{Kinds: []Kind{Reconfig}}, func(history.Op) {})
	if err == nil || !errors.Is(err, errNoReconfigurer) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Plan(Step{Kind: Reconfig}, nodeNames(3), nil, Params{}); err == nil {
		t.Fatal("Plan accepted reconfig")
	}
	if ks, err := ParseKinds("partition,reconfig"); err != nil || !slices.Equal(ks, []Kind{Partition, Reconfig}) {
		t.Fatalf("ParseKinds = %v, %v", ks, err)
	}
}

// stuckCtl is a controller that never answers until its context ends.
type stuckCtl struct{ *fakeCtl }

func (c stuckCtl) Query(ctx context.Context) (ShardLayout, error) {
	<-ctx.Done()
	return ShardLayout{}, ctx.Err()
}

func TestReconfigGivesUpOnAStuckController(t *testing.T) {
	c := stuckCtl{newCtl(3, 3, 8)}
	var ops []history.Op
	n, err := New(c, Config{Kinds: []Kind{Reconfig}, ReconfigTimeout: 200 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}, func(op history.Op) { ops = append(ops, op) })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n.mu.Lock()
	err = n.reconfigure(context.Background(), 1)
	n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("gave up after %v, want about 200ms", d)
	}
	checkPairs(t, ops)
	if ops[1].Error == "" {
		t.Fatal("the timed-out query was recorded without its error")
	}
}
