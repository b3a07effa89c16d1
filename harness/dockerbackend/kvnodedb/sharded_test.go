package kvnodedb

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/nemesis"
)

// ctlAdmin runs admin operations through a real shard controller state
// machine, as the controller group would apply them.
func ctlAdmin(t *testing.T) (AdminFunc, *[]shardctl.Kind) {
	c := shardctl.New()
	var seq uint64
	var kinds []shardctl.Kind
	return func(_ context.Context, op shardctl.Op) (shardctl.Config, error) {
		seq++
		kinds = append(kinds, op.Kind)
		r, err := shardctl.DecodeReply(c.Apply(seq, replica.Request{ClientID: 1, Seq: seq, Op: op.Encode()}))
		if err != nil {
			t.Fatalf("decode reply: %v", err)
		}
		if r.Err != "" {
			return shardctl.Config{}, errors.New(r.Err)
		}
		return r.Config, nil
	}, &kinds
}

func TestReconfigurerAgainstTheController(t *testing.T) {
	ctx := context.Background()
	groups, err := ShardedGroups(5, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	admin, kinds := ctlAdmin(t)
	r := NewReconfigurer(admin, groups[:3])
	if err := r.JoinAll(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := r.Query(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Joined, []uint32{1, 2, 3}) || !slices.Equal(l.All, []uint32{1, 2, 3}) || len(l.Shards) != shardctl.NShards {
		t.Fatalf("after JoinAll: %+v", l)
	}
	for _, g := range l.Shards {
		if g == 0 {
			t.Fatalf("unassigned shard after JoinAll: %v", l.Shards)
		}
	}
	// JoinAll on a complete configuration only queries.
	n := len(*kinds)
	if err := r.JoinAll(ctx); err != nil || len(*kinds) != n+1 {
		t.Fatalf("second JoinAll: %v, ops %v", err, (*kinds)[n:])
	}
	if l, err = r.Leave(ctx, 2); err != nil || slices.Contains(l.Joined, 2) || slices.Contains(l.Shards, 2) {
		t.Fatalf("leave: %+v %v", l, err)
	}
	if l, err = r.Join(ctx, 2); err != nil || !slices.Contains(l.Joined, 2) {
		t.Fatalf("join: %+v %v", l, err)
	}
	num := l.Num
	if l, err = r.Move(ctx, 5, 3); err != nil || l.Shards[5] != 3 || l.Num != num+1 {
		t.Fatalf("move: %+v %v", l, err)
	}
	if _, err := r.Join(ctx, 9); err == nil {
		t.Fatal("join of an unknown group accepted")
	}
	if _, err := r.Move(ctx, shardctl.NShards, 1); err == nil {
		t.Fatal("move of an out-of-range shard accepted")
	}
	// The planner and the controller agree on a run of random actions.
	for seed := range uint64(50) {
		l, err := r.Query(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, err := nemesis.PlanReconfig(seed, l)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		switch a.Op {
		case "join":
			_, err = r.Join(ctx, a.Group)
		case "leave":
			_, err = r.Leave(ctx, a.Group)
		default:
			_, err = r.Move(ctx, a.Shard, a.Group)
		}
		if err != nil {
			t.Fatalf("seed %d: the controller refused %+v: %v", seed, a, err)
		}
	}
}

func TestReconfigTargetSupports(t *testing.T) {
	// Reconfig is answered by the controller side alone, before the
	// node faults are asked.
	tg := reconfigTarget{Reconfigurer: NewReconfigurer(nil, nil)}
	if err := tg.Supports(context.Background(), nemesis.Reconfig); err != nil {
		t.Fatal(err)
	}
}
