package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// TestTargetedFaults runs each fault aimed at a protocol moment on its own
// and checks that it struck (its nemesis ops are in the history) and that
// the real cores stay valid under it.
func TestTargetedFaults(t *testing.T) {
	cases := []struct {
		kind nemesis.Kind
		want string // in some nemesis op's f and value
	}{
		{nemesis.CrashMoment, "kill [n"},
		{nemesis.CrashMoment, "after-commit]"},
		{nemesis.PartitionLeader, "start-partition"},
		{nemesis.PartitionSwizzle, "start-partition"},
		{nemesis.Disk, "start-disk"},
		{nemesis.LoseUnsynced, "start-lose-unsynced map[kind:lose-unsynced nodes:[n"},
		{nemesis.ClockBump, "start-clock-bump map[kind:clock-bump nodes:[n"},
		{nemesis.ClockStrobe, "stop-clock-strobe map[flips:"},
		{nemesis.Latency, "start-latency"},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind)+"/"+tc.want, func(t *testing.T) {
			forEachProtocol(t, 3, func(t *testing.T, proto string, seed int64) {
				cfg := Config{Seed: seed, Protocol: proto, Nemesis: []nemesis.Kind{tc.kind}, Ops: 1000, SnapshotEvery: 25}
				res, err := Run(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if res.Valid != checker.Valid {
					t.Fatalf("%s: %s %v\n  replay: %s", res.Valid, res.Check.Summary, res.Problems, replayCommand(cfg))
				}
				var seen []string
				hit := 0
				for _, op := range res.History {
					if op.Process != history.NemesisProcess {
						continue
					}
					s := fmt.Sprintf("%s %v", op.F, op.Value)
					seen = append(seen, s)
					if strings.Contains(s, tc.want) {
						hit++
					}
				}
				if hit == 0 {
					t.Fatalf("no nemesis op like %q in %v", tc.want, seen)
				}
				t.Logf("%d of %d nemesis ops like %q; %d ok, %d info", hit, len(seen), tc.want, res.Ok, res.Info)
			})
		})
	}
}

// TestPartitionLeaderChases checks that partition-leader follows
// leadership: within one fault, a leader elected by the others is cut off
// in turn.
func TestPartitionLeaderChases(t *testing.T) {
	forEachProtocol(t, 3, func(t *testing.T, proto string, seed int64) {
		cfg := Config{Seed: seed, Protocol: proto, Nemesis: []nemesis.Kind{nemesis.PartitionLeader}, Ops: 400}
		res, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("%s: %s %v\n  replay: %s", res.Valid, res.Check.Summary, res.Problems, replayCommand(cfg))
		}
		moves, starts := 0, 0
		for _, op := range res.History {
			switch {
			case op.Process != history.NemesisProcess:
			case op.F == "start-partition":
				starts++
				if starts > 1 {
					moves++
				}
			case op.F == "stop-partition":
				starts = 0
			}
		}
		if moves == 0 {
			t.Fatalf("no fault cut off a second leader\n  replay: %s", replayCommand(cfg))
		}
		t.Logf("%d leaders cut off after the first of their fault", moves)
	})
}

// TestCrashMidWriteLosesUnsyncedWrites crashes nodes while their disk
// writes wait for a sync: some of those writes are lost, and no oracle
// objects (what was never synced was never acknowledged).
func TestCrashMidWriteLosesUnsyncedWrites(t *testing.T) {
	forEachProtocol(t, 5, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 3, nil)
		cl := c.NewClient(ClientConfig{Deadline: 5 * time.Second})
		lost, crashes := 0, 0
		for k := 0; k < 200 && lost == 0; k++ {
			done := false
			if err := cl.Invoke(putOp("k", fmt.Sprint(k)), func(client.Outcome) { done = true }); err != nil {
				t.Fatal(err)
			}
			// Crash the first node caught with a write in flight.
			c.RunUntil(func() bool {
				for _, n := range c.nodes {
					if n.up && n.rep.Writing() {
						c.Crash(n.id)
						crashes++
						return true
					}
				}
				return done
			}, 5*time.Second)
			c.RunFor(50 * time.Millisecond)
			for _, id := range c.Peers() {
				if err := c.Restart(id); err != nil {
					t.Fatal(err)
				}
				_, _, l, _ := c.DiskStats(id)
				lost += l
			}
			c.RunUntil(func() bool { return done }, 10*time.Second)
			if err := c.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if lost == 0 {
			t.Fatalf("%d crashes in the middle of a write lost nothing", crashes)
		}
		t.Logf("%d crashes mid-write, %d unsynced writes lost", crashes, lost)
	})
}

// TestLeaderCrashAfterEarlyProposals crashes the leader right after its
// proposals left ahead of its own write of them (Ready.Early), with that
// write not yet synced: the crash loses it while the followers may hold
// the values, and no oracle objects (the leader counted nothing it had not
// synced, so no commit index it sent rested on the lost write).
func TestLeaderCrashAfterEarlyProposals(t *testing.T) {
	forEachProtocol(t, 5, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 3, nil)
		cl := c.NewClient(ClientConfig{Deadline: 5 * time.Second})
		crashes := 0
		for k := 0; k < 300 && crashes < 10; k++ {
			var crashed replica.NodeID
			c.trap = &trap{moment: momentPropose, fire: func(id replica.NodeID) {
				crashed = id
				c.Crash(id)
			}}
			done := false
			if err := cl.Invoke(putOp("k", fmt.Sprint(k)), func(client.Outcome) { done = true }); err != nil {
				t.Fatal(err)
			}
			c.RunUntil(func() bool { return done || crashed != 0 }, 5*time.Second)
			c.trap = nil
			if crashed != 0 {
				if c.Leader() == crashed {
					t.Fatalf("node %d still leads after its crash", crashed)
				}
				crashes++
				c.RunFor(50 * time.Millisecond)
				if err := c.Restart(crashed); err != nil {
					t.Fatal(err)
				}
			}
			c.RunUntil(func() bool { return done }, 10*time.Second)
			if err := c.Err(); err != nil {
				t.Fatal(err)
			}
		}
		lost := 0
		for _, id := range c.Peers() {
			_, _, l, torn := c.DiskStats(id)
			lost += l + torn
		}
		if crashes < 10 || lost == 0 {
			t.Fatalf("%d leader crashes after early proposals lost %d unsynced writes", crashes, lost)
		}
		t.Logf("%d leader crashes after early proposals lost %d unsynced writes", crashes, lost)
	})
}
