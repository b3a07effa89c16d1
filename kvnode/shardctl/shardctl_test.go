package shardctl

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

type driver struct {
	t   *testing.T
	c   *Controller
	seq uint64
}

func (d *driver) do(op Op) Reply {
	d.t.Helper()
	d.seq++
	out := d.c.Apply(d.seq, replica.Request{ClientID: 1, Seq: d.seq, Op: op.Encode()})
	r, err := DecodeReply(out)
	if err != nil {
		d.t.Fatalf("decode reply: %v", err)
	}
	return r
}

func members(gs ...replica.GroupID) map[replica.GroupID][]replica.NodeID {
	m := map[replica.GroupID][]replica.NodeID{}
	for _, g := range gs {
		m[g] = []replica.NodeID{replica.NodeID(g), replica.NodeID(g + 1)}
	}
	return m
}

// minMoves is the fewest shards any balanced assignment over the groups of
// next must move away from prev's owners, computed independently of
// rebalance: each group can keep at most its target, and only
// NShards%n groups may have the higher target.
func minMoves(prev Config, gids []replica.GroupID) int {
	n := len(gids)
	if n == 0 {
		return 0
	}
	q, r := NShards/n, NShards%n
	kept, big := 0, 0
	for _, g := range gids {
		c := len(prev.ShardsOf(g))
		kept += min(c, q)
		if c > q {
			big++
		}
	}
	kept += min(r, big)
	return NShards - kept
}

func moves(a, b Config) int {
	n := 0
	for s := range a.Shards {
		if a.Shards[s] != b.Shards[s] {
			n++
		}
	}
	return n
}

func checkBalanced(t *testing.T, c Config) {
	t.Helper()
	gids := c.GroupIDs()
	if len(gids) == 0 {
		for s, g := range c.Shards {
			if g != 0 {
				t.Fatalf("config %d: no groups but shard %d owned by %d", c.Num, s, g)
			}
		}
		return
	}
	lo, hi := NShards, 0
	for _, g := range gids {
		n := len(c.ShardsOf(g))
		lo, hi = min(lo, n), max(hi, n)
	}
	if hi-lo > 1 {
		t.Fatalf("config %d unbalanced: %v", c.Num, c.Shards)
	}
	for s, g := range c.Shards {
		if _, ok := c.Groups[g]; !ok {
			t.Fatalf("config %d: shard %d owned by non-member %d", c.Num, s, g)
		}
	}
}

func TestJoinLeaveBalancesWithFewestMoves(t *testing.T) {
	steps := []struct {
		op        Op
		wantMoves int
		wantErr   bool
	}{
		{Op{Kind: Join, Groups: members(1)}, 16, false},
		{Op{Kind: Join, Groups: members(2)}, 8, false},
		{Op{Kind: Join, Groups: members(3)}, 5, false},
		{Op{Kind: Join, Groups: members(3)}, 0, true},
		{Op{Kind: Join, Groups: members(4, 5)}, 6, false},
		{Op{Kind: Leave, GIDs: []replica.GroupID{1}}, 4, false},
		{Op{Kind: Leave, GIDs: []replica.GroupID{9}}, 0, true},
		{Op{Kind: Leave, GIDs: []replica.GroupID{2, 3, 4}}, 12, false},
		{Op{Kind: Leave, GIDs: []replica.GroupID{5}}, 16, false},
		{Op{Kind: Join, Groups: map[replica.GroupID][]replica.NodeID{0: {1}}}, 0, true},
	}
	d := &driver{t: t, c: New()}
	for i, st := range steps {
		prev := d.c.Latest()
		r := d.do(st.op)
		if (r.Err != "") != st.wantErr {
			t.Fatalf("step %d: err %q, want error %v", i, r.Err, st.wantErr)
		}
		if st.wantErr {
			if got := d.c.Latest(); !reflect.DeepEqual(got, prev) {
				t.Fatalf("step %d: a refused op changed the configuration", i)
			}
			continue
		}
		if r.Config.Num != prev.Num+1 {
			t.Fatalf("step %d: config %d after %d", i, r.Config.Num, prev.Num)
		}
		checkBalanced(t, r.Config)
		if m := moves(prev, r.Config); m != st.wantMoves {
			t.Fatalf("step %d: %d moves, want %d (%v -> %v)", i, m, st.wantMoves, prev.Shards, r.Config.Shards)
		}
	}
}

func TestRandomOpsStayBalancedAndMinimal(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	d := &driver{t: t, c: New()}
	for i := 0; i < 2000; i++ {
		prev := d.c.Latest()
		gids := prev.GroupIDs()
		var op Op
		switch x := rng.Intn(10); {
		case x < 4 || len(gids) == 0:
			op = Op{Kind: Join, Groups: members(replica.GroupID(1 + rng.Intn(20)))}
		case x < 8:
			op = Op{Kind: Leave, GIDs: []replica.GroupID{gids[rng.Intn(len(gids))]}}
		default:
			op = Op{Kind: Move, Shard: rng.Intn(NShards), GID: gids[rng.Intn(len(gids))]}
		}
		r := d.do(op)
		if r.Err != "" {
			continue
		}
		if op.Kind == Move {
			if r.Config.Shards[op.Shard] != op.GID || moves(prev, r.Config) > 1 {
				t.Fatalf("op %d: move %+v gave %v", i, op, r.Config.Shards)
			}
			continue
		}
		if len(r.Config.Groups) == 0 {
			checkBalanced(t, r.Config)
			continue
		}
		if want := minMoves(prev, r.Config.GroupIDs()); moves(prev, r.Config) != want {
			t.Fatalf("op %d (%+v): %d moves, want the minimum %d\n%v -> %v", i, op, moves(prev, r.Config), want, prev.Shards, r.Config.Shards)
		}
		checkBalanced(t, r.Config)
	}
}

func TestQueryAndExactlyOnce(t *testing.T) {
	d := &driver{t: t, c: New()}
	d.do(Op{Kind: Join, Groups: members(1)})
	d.do(Op{Kind: Join, Groups: members(2)})
	for num, want := range map[int64]uint64{0: 0, 1: 1, -1: 2, 99: 2} {
		if r := d.do(Op{Kind: Query, Num: num}); r.Config.Num != want {
			t.Errorf("Query(%d) = config %d, want %d", num, r.Config.Num, want)
		}
	}
	join := replica.Request{ClientID: 7, Seq: 1, Op: Op{Kind: Join, Groups: members(3)}.Encode()}
	first := d.c.Apply(100, join)
	if again := d.c.Apply(101, join); !bytes.Equal(first, again) || d.c.Latest().Num != 3 {
		t.Fatalf("a retried join was applied again: latest %d", d.c.Latest().Num)
	}
}

// TestQueryWithoutTheLog: a Query is read-only and Query answers it as
// Apply would, changing nothing; every other op, and bytes that do not
// decode, must go through the log.
func TestQueryWithoutTheLog(t *testing.T) {
	d := &driver{t: t, c: New()}
	d.do(Op{Kind: Join, Groups: members(1)})
	d.do(Op{Kind: Join, Groups: members(2)})
	cases := []struct {
		name     string
		op       []byte
		readOnly bool
	}{
		{"query latest", Op{Kind: Query, Num: -1}.Encode(), true},
		{"query 1", Op{Kind: Query, Num: 1}.Encode(), true},
		{"join", Op{Kind: Join, Groups: members(3)}.Encode(), false},
		{"move", Op{Kind: Move, Shard: 1, GID: 2}.Encode(), false},
		{"garbage", []byte{0xff, 0x01}, false},
	}
	for i, c := range cases {
		if got := d.c.ReadOnly(c.op); got != c.readOnly {
			t.Errorf("%s: ReadOnly = %v, want %v", c.name, got, c.readOnly)
		}
		r, err := DecodeReply(d.c.Query(c.op))
		if err != nil {
			t.Fatalf("%s: decode the query's reply: %v", c.name, err)
		}
		if c.readOnly {
			want, _ := DecodeReply(d.c.Apply(0, replica.Request{ClientID: 9, Seq: uint64(i + 1), Op: c.op}))
			if r.Err != "" || !reflect.DeepEqual(r, want) {
				t.Errorf("%s: Query = %+v, Apply = %+v", c.name, r, want)
			}
		} else if r.Err == "" {
			t.Errorf("%s: Query answered an op that must go through the log: %+v", c.name, r)
		}
	}
	if d.c.Latest().Num != 2 {
		t.Fatalf("queries changed the configuration: latest %d", d.c.Latest().Num)
	}
}

func TestSnapshotRoundTripIsDeterministic(t *testing.T) {
	build := func() *Controller {
		d := &driver{t: t, c: New()}
		d.do(Op{Kind: Join, Groups: members(3, 1, 2)})
		d.do(Op{Kind: Move, Shard: 0, GID: 3})
		d.do(Op{Kind: Leave, GIDs: []replica.GroupID{2}})
		return d.c
	}
	a, _ := build().Snapshot()
	b, _ := build().Snapshot()
	if !bytes.Equal(a, b) {
		t.Fatal("same ops gave different snapshots")
	}
	c := New()
	if err := c.Restore(a); err != nil {
		t.Fatal(err)
	}
	again, _ := c.Snapshot()
	if !bytes.Equal(a, again) {
		t.Fatal("restore+snapshot changed the bytes")
	}
	if err := c.Restore(a[:len(a)-3]); err == nil {
		t.Fatal("truncated snapshot restored")
	}
}

func TestShardOfIsStableAndSpread(t *testing.T) {
	if ShardOf("k") != ShardOf("k") {
		t.Fatal("ShardOf not deterministic")
	}
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		s := ShardOf(string(rune('a'+i%26)) + string(rune('0'+i/26)))
		if s < 0 || s >= NShards {
			t.Fatalf("shard %d out of range", s)
		}
		seen[s] = true
	}
	if len(seen) != NShards {
		t.Fatalf("200 keys hit only %d of %d shards", len(seen), NShards)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty": {}, "kind 9": {9}, "move shard too big": {3, 16, 1}, "trailing": append(Op{Kind: Query, Num: 1}.Encode(), 0),
		"unsorted groups": {1, 2, 5, 1, 1, 3, 1, 1},
	} {
		if _, err := DecodeOp(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeOp(f *testing.F) {
	f.Add(Op{Kind: Join, Groups: members(1, 2)}.Encode())
	f.Add(Op{Kind: Leave, GIDs: []replica.GroupID{3}}.Encode())
	f.Add(Op{Kind: Move, Shard: 3, GID: 2}.Encode())
	f.Add(Op{Kind: Query, Num: -1}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := DecodeOp(b)
		if err != nil {
			return
		}
		again, err := DecodeOp(op.Encode())
		if err != nil || !reflect.DeepEqual(again, op) {
			t.Fatalf("re-decode %+v: %+v %v", op, again, err)
		}
		New().Apply(1, replica.Request{ClientID: 1, Seq: 1, Op: b}) // must not panic
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(Reply{Err: "x"}.Encode())
	c := New()
	c.apply(Op{Kind: Join, Groups: members(1, 2)})
	f.Add(Reply{Config: c.Latest()}.Encode())
	snap, _ := c.Snapshot()
	f.Add(snap)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeReply(b); err == nil {
			if again, err := DecodeReply(r.Encode()); err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("re-decode %+v: %+v %v", r, again, err)
			}
		}
		_ = New().Restore(b)
	})
}
