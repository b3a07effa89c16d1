package sim

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

var (
	flagSeed  = flag.Int64("seed", 0, "run the seeded scenario tests with this seed instead of their own")
	flagSeeds = flag.Int("seeds", 0, "seeds in the random sweep (default: $CHAOS_SIM_SEEDS, else 200)")
)

// protocols are the cores every scenario runs against: all registered.
func protocols(t *testing.T) []string {
	ps := Protocols()
	if len(ps) == 0 {
		t.Fatal("no replication protocol is registered")
	}
	return ps
}

// forEachProtocol runs fn as a subtest per protocol with the scenario's
// seed, and on failure names the seed and the command that replays it.
func forEachProtocol(t *testing.T, seed int64, fn func(t *testing.T, proto string, seed int64)) {
	if *flagSeed != 0 {
		seed = *flagSeed
	}
	for _, p := range protocols(t) {
		t.Run(p, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("seed %d; replay: go test ./kvnode/sim -run '^%s$' -seed %d -v", seed, t.Name(), seed)
				}
			})
			fn(t, p, seed)
		})
	}
}

func newKVCluster(t *testing.T, proto string, seed int64, n int, mod func(*ClusterConfig)) *Cluster {
	t.Helper()
	cfg := ClusterConfig{Seed: seed, Replicas: n, Protocol: proto, NewStateMachine: newKV}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func putOp(k, v string) []byte    { return kv.Op{Kind: kv.Put, Key: k, Value: v}.Encode() }
func getOp(k string) []byte       { return kv.Op{Kind: kv.Get, Key: k}.Encode() }
func appendOp(k, v string) []byte { return kv.Op{Kind: kv.Append, Key: k, Value: v}.Encode() }

// patient is a client that never gives up within a scenario.
var patient = ClientConfig{Deadline: time.Hour}

// mustDo runs op to completion and returns the store's reply.
func mustDo(t *testing.T, cl *Client, op []byte, limit time.Duration) kv.Reply {
	t.Helper()
	o, ok, err := cl.Do(op, limit)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || o.Result != client.OK {
		t.Fatalf("at %v: op %x did not complete within %v", cl.home.Now(), op, limit)
	}
	rep, err := kv.DecodeReply(o.Value)
	if err != nil || rep.Err != "" {
		t.Fatalf("bad reply %x: %v %q", o.Value, err, rep.Err)
	}
	return rep
}

func waitLeader(t *testing.T, c *Cluster) replica.NodeID {
	t.Helper()
	var l replica.NodeID
	if !c.RunUntil(func() bool { l = c.Leader(); return l != 0 }, 10*time.Second) {
		t.Fatalf("no leader after %v", c.Now())
	}
	return l
}

func checkReplicas(t *testing.T, c *Cluster) {
	t.Helper()
	for _, p := range c.CompareReplicas() {
		t.Error(p)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestOneCommandCommits(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("replicas=%d", n), func(t *testing.T) {
			forEachProtocol(t, 1, func(t *testing.T, proto string, seed int64) {
				c := newKVCluster(t, proto, seed, n, nil)
				cl := c.NewClient(patient)
				if rep := mustDo(t, cl, putOp("x", "1"), 10*time.Second); !rep.Ok {
					t.Fatalf("put: %+v", rep)
				}
				if rep := mustDo(t, cl, getOp("x"), 10*time.Second); !rep.Found || rep.Value != "1" {
					t.Fatalf("get after put: %+v", rep)
				}
				// Every replica learns and applies the put; the get, served
				// by read index, takes no log entry.
				if !c.RunUntil(func() bool {
					for _, id := range c.Peers() {
						if st, _ := c.Status(id); st.Applied < 1 {
							return false
						}
					}
					return true
				}, 5*time.Second) {
					t.Fatal("not every replica applied the put")
				}
				c.RunFor(time.Second)
				for _, id := range c.Peers() {
					if st, _ := c.Status(id); st.Applied != 1 {
						t.Errorf("node %d applied %d entries, want the put's alone", id, st.Applied)
					}
				}
				checkReplicas(t, c)
			})
		})
	}
}

// minority/majority partition with the leader on the minority side.
func TestMajorityPartition(t *testing.T) {
	forEachProtocol(t, 2, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 5, nil)
		cl := c.NewClient(patient)
		mustDo(t, cl, putOp("warm", "up"), 10*time.Second)
		l := waitLeader(t, c)
		var minority, majority []replica.NodeID
		minority = append(minority, l)
		for _, id := range c.Peers() {
			if id == l {
				continue
			}
			if len(minority) < 2 {
				minority = append(minority, id)
			} else {
				majority = append(majority, id)
			}
		}
		c.RunFor(100 * time.Millisecond) // let the warm-up settle everywhere
		before := map[replica.NodeID]uint64{}
		for _, id := range minority {
			st, _ := c.Status(id)
			before[id] = st.Applied
		}
		c.Partition(minority, majority)
		minCl, majCl := c.NewClient(patient), c.NewClient(patient)
		minCl.CutFrom(majority...)
		majCl.CutFrom(minority...)
		minDone := false
		var minOut client.Outcome
		if err := minCl.Invoke(putOp("m", "minority"), func(o client.Outcome) { minDone, minOut = true, o }); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if rep := mustDo(t, majCl, putOp("k", strconv.Itoa(i)), 5*time.Second); !rep.Ok {
				t.Fatalf("majority put %d: %+v", i, rep)
			}
		}
		c.RunFor(2 * time.Second)
		if minDone {
			t.Fatalf("a request sent to the minority completed during the partition: %+v", minOut)
		}
		for _, id := range minority {
			if st, _ := c.Status(id); st.Applied != before[id] {
				t.Fatalf("minority node %d applied %d -> %d while partitioned", id, before[id], st.Applied)
			}
		}
		c.Heal()
		minCl.CutFrom()
		if !c.RunUntil(func() bool { return minDone }, 10*time.Second) {
			t.Fatalf("the minority's request did not finish within 10s of the heal")
		}
		if rep := mustDo(t, majCl, getOp("m"), 5*time.Second); rep.Value != "minority" {
			t.Fatalf("after heal m = %+v", rep)
		}
		if rep := mustDo(t, majCl, getOp("k"), 5*time.Second); rep.Value != "19" {
			t.Fatalf("after heal k = %+v", rep)
		}
		c.RunFor(time.Second)
		checkReplicas(t, c)
	})
}

// Node 3 is the only member of both majorities {1,2,3} and {3,4,5}: what
// was chosen in the first must be known in the second.
func TestReplicaCarriesChosenValuesBetweenMajorities(t *testing.T) {
	forEachProtocol(t, 3, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 5, nil)
		c.Partition([]replica.NodeID{1, 2, 3}, []replica.NodeID{4, 5})
		a := c.NewClient(patient)
		a.CutFrom(4, 5)
		for i := 0; i < 10; i++ {
			mustDo(t, a, putOp(fmt.Sprintf("k%d", i%3), fmt.Sprintf("a%d", i)), 10*time.Second)
		}
		mustDo(t, a, appendOp("log", "x"), 10*time.Second)
		c.Partition([]replica.NodeID{3, 4, 5}, []replica.NodeID{1, 2})
		b := c.NewClient(patient)
		b.CutFrom(1, 2)
		want := map[string]string{"k0": "a9", "k1": "a7", "k2": "a8"}
		for k, v := range want {
			if rep := mustDo(t, b, getOp(k), 10*time.Second); rep.Value != v {
				t.Fatalf("second majority reads %s = %q, want %q", k, rep.Value, v)
			}
		}
		if rep := mustDo(t, b, appendOp("log", "y"), 10*time.Second); rep.Value != "xy" {
			t.Fatalf("append in the second majority gives %q, want %q", rep.Value, "xy")
		}
		checkReplicas(t, c)
	})
}

// A new random majority every 2s for 30s. The bound: each partition leaves
// some majority connected for a full 2s window, which is far more than an
// election (at most 2*ElectionTicks = 200ms, plus a phase-1 round trip)
// and a client's search for the leader (each wrong node costs at most one
// 300ms attempt). An op may straddle a re-partition and lose its window,
// so it must finish within two windows: 4s.
func TestConstantRepartitioning(t *testing.T) {
	const window, total, bound = 2 * time.Second, 30 * time.Second, 4 * time.Second
	forEachProtocol(t, 4, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 5, nil)
		var repartition func()
		repartition = func() {
			ids := c.Peers()
			c.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			c.Partition(ids[:3], ids[3:])
			if c.Now()+window < total {
				c.At(window, repartition)
			}
		}
		repartition()
		var maxWait time.Duration
		done := 0
		for i := 0; i < 5; i++ {
			cl := c.NewClient(patient)
			var loop func(n int)
			loop = func(n int) {
				if c.Now() >= total {
					return
				}
				start := c.Now()
				op := putOp(fmt.Sprintf("k%d", n%3), fmt.Sprintf("%d-%d", i, n))
				if n%2 == 1 {
					op = getOp(fmt.Sprintf("k%d", n%3))
				}
				_ = cl.Invoke(op, func(o client.Outcome) {
					maxWait = max(maxWait, c.Now()-start)
					done++
					loop(n + 1)
				})
			}
			loop(0)
		}
		c.RunFor(total + bound)
		t.Logf("%d ops completed, max wait %v (bound %v)", done, maxWait, bound)
		if maxWait > bound {
			t.Fatalf("a client waited %v, above the %v bound", maxWait, bound)
		}
		if done < 100 {
			t.Fatalf("only %d ops completed in %v", done, total)
		}
		c.Heal()
		c.RunFor(2 * time.Second)
		checkReplicas(t, c)
	})
}

var lossyNet = Network{MinDelay: 100 * time.Microsecond, MaxDelay: 10 * time.Millisecond, TailProb: 0.05, TailDelay: 50 * time.Millisecond, Loss: 0.2, Dup: 0.2}

func runOK(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid.String() != "true" {
		t.Fatalf("run seed %d: %s: %s %v", cfg.Seed, res.Valid, res.Check.Summary, res.Problems)
	}
	return res
}

// 80% delivery with duplicates and reordering.
func TestLossyDuplicatingNetwork(t *testing.T) {
	forEachProtocol(t, 5, func(t *testing.T, proto string, seed int64) {
		for s := seed; s < seed+3; s++ {
			res := runOK(t, Config{Seed: s, Protocol: proto, Net: lossyNet, Ops: 500})
			if res.Net.Duplicated == 0 || res.Net.Dropped == 0 || res.Ok < 200 {
				t.Fatalf("seed %d: the network did not misbehave or nothing got done: %+v, %d ok", s, res.Net, res.Ok)
			}
		}
	})
}

// Concurrent appends of unique tokens to one key over the lossy network,
// which drops and duplicates requests and answers while clients retry on
// short attempts: the final value holds every acknowledged token exactly
// once and no token twice. Exactly-once is the sessions' promise, so the
// test drives the store's append directly rather than a workload.
func TestConcurrentAppendsExactlyOnce(t *testing.T) {
	forEachProtocol(t, 6, func(t *testing.T, proto string, seed int64) {
		for s := seed; s < seed+3; s++ {
			c, err := NewCluster(ClusterConfig{Seed: s, Replicas: 5, Protocol: proto, Net: lossyNet,
				NewStateMachine: func() replica.StateMachine { return kv.NewStore() }})
			if err != nil {
				t.Fatal(err)
			}
			acked := map[string]bool{}
			invoked, active := 0, 0
			var run func(cl *Client)
			run = func(cl *Client) {
				if invoked == 400 {
					active--
					return
				}
				invoked++
				tok := strconv.Itoa(invoked)
				err := cl.Invoke(kv.Op{Kind: kv.Append, Key: "a", Value: tok + " "}.Encode(), func(o client.Outcome) {
					acked[tok] = o.Result == client.OK
					run(cl)
				})
				if err != nil {
					t.Fatalf("seed %d: %v", s, err)
				}
			}
			for range 10 {
				cl := c.NewClient(ClientConfig{Attempt: 50 * time.Millisecond})
				active++
				c.At(0, func() { run(cl) })
			}
			var final *client.Outcome
			c.RunUntil(func() bool { return active == 0 }, time.Hour)
			err = c.NewClient(ClientConfig{Deadline: time.Minute}).Invoke(kv.Op{Kind: kv.Get, Key: "a"}.Encode(), func(o client.Outcome) { final = &o })
			if err != nil {
				t.Fatal(err)
			}
			c.RunUntil(func() bool { return final != nil }, time.Hour)
			if final == nil || final.Result != client.OK {
				t.Fatalf("seed %d: the final read did not complete: %+v", s, final)
			}
			rep, err := kv.DecodeReply(final.Value)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, tok := range splitTokens(rep.Value) {
				if seen[tok]++; seen[tok] == 2 {
					t.Fatalf("seed %d: token %s appended twice: %q", s, tok, rep.Value)
				}
				if _, ok := acked[tok]; !ok {
					t.Fatalf("seed %d: token %s was never appended", s, tok)
				}
			}
			n := 0
			for tok, ok := range acked {
				if ok && seen[tok] == 0 {
					t.Fatalf("seed %d: acknowledged token %s is missing", s, tok)
				}
				if ok {
					n++
				}
			}
			if n < 200 {
				t.Fatalf("seed %d: only %d appends acknowledged", s, n)
			}
		}
	})
}

func splitTokens(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
			}
			start = -1
		} else if start < 0 {
			start = i
		}
	}
	return out
}

// Crash and restart of minorities at random times, and now and then of
// every replica at once.
func TestCrashRestart(t *testing.T) {
	forEachProtocol(t, 7, func(t *testing.T, proto string, seed int64) {
		for s := seed; s < seed+4; s++ {
			for _, keys := range []int{5, 1} {
				runOK(t, Config{Seed: s, Protocol: proto, Keys: keys, Nemesis: []nemesis.Kind{nemesis.Kill}, Ops: 500, SnapshotEvery: 50,
					Schedule: NemesisSchedule{Interval: 400 * time.Millisecond, Flap: 0.5}})
			}
		}
	})
}

// Every replica crashes at once, right after writes were acknowledged:
// nothing acknowledged is lost.
func TestCrashAllAtOnceLosesNothing(t *testing.T) {
	forEachProtocol(t, 8, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 5, func(cc *ClusterConfig) { cc.SnapshotEvery = 7 })
		cl := c.NewClient(patient)
		want := ""
		for round := 0; round < 3; round++ {
			for i := 0; i < 20; i++ {
				tok := fmt.Sprintf("%d.%d ", round, i)
				mustDo(t, cl, appendOp("log", tok), 10*time.Second)
				want += tok
			}
			for _, id := range c.Peers() {
				c.Crash(id)
			}
			c.RunFor(50 * time.Millisecond)
			for _, id := range c.Peers() {
				if err := c.Restart(id); err != nil {
					t.Fatal(err)
				}
			}
			if rep := mustDo(t, cl, getOp("log"), 10*time.Second); rep.Value != want {
				t.Fatalf("round %d: after crashing every replica log = %q, want %q", round, rep.Value, want)
			}
		}
		c.RunFor(time.Second)
		checkReplicas(t, c)
	})
}

// Slot s+1 is chosen while slot s is not: the leader's accepts for s are
// lost, those for s+1 reach a majority, then the leader dies. The next
// leader must fill s (with a no-op, as nobody else has its value) and go
// on; without that, s+1 could never be applied.
func TestGapIsFilled(t *testing.T) {
	forEachProtocol(t, 9, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 5, nil)
		warm := c.NewClient(patient)
		mustDo(t, warm, putOp("warm", "up"), 10*time.Second)
		c.RunFor(200 * time.Millisecond)
		l := waitLeader(t, c)
		// Two clients that know the leader: each ran an op it answered.
		a, b := c.NewClient(patient), c.NewClient(patient)
		mustDo(t, a, getOp("warm"), 10*time.Second)
		mustDo(t, b, getOp("warm"), 10*time.Second)
		c.RunFor(200 * time.Millisecond) // every replica applies them
		if a.r.Leader(0) != l || b.r.Leader(0) != l {
			t.Fatalf("the clients believe %d and %d lead, not %d", a.r.Leader(0), b.r.Leader(0), l)
		}
		mute := false
		c.Filter = func(m replica.Message) bool { return !(mute && m.Source() == l) }
		lst, _ := c.Status(l)
		base := map[replica.NodeID]replica.Status{}
		for _, id := range c.Peers() {
			base[id], _ = c.Status(id)
		}

		var aDone, bDone bool
		mute = true
		_ = a.Invoke(putOp("a", "1"), func(client.Outcome) { aDone = true })
		if !c.RunUntil(func() bool { st, _ := c.Status(l); return st.LogLen > lst.LogLen }, 50*time.Millisecond) {
			t.Fatal("the leader did not accept the first request")
		}
		c.RunFor(time.Millisecond) // the leader's accepts for it are all lost
		mute = false
		_ = b.Invoke(putOp("b", "2"), func(client.Outcome) { bDone = true })
		accepted := func() int {
			n := 0
			for _, id := range c.Peers() {
				if st, _ := c.Status(id); id != l && st.LogLen > base[id].LogLen {
					n++
				}
			}
			return n
		}
		if !c.RunUntil(func() bool { return accepted() >= 2 }, 50*time.Millisecond) {
			if proto != "paxos" {
				// Cores whose backups only accept in log order (VR)
				// cannot reach this state at all.
				t.Skipf("%s: backups did not accept past the gap", proto)
			}
			t.Fatal("the second request was not accepted by a majority")
		}
		c.Crash(l)
		for _, id := range c.Peers() {
			if st, ok := c.Status(id); ok {
				t.Logf("after the leader (%d) died: node %d applied %d (was %d), holds %d slots (was %d)", l, id, st.Applied, base[id].Applied, st.LogLen, base[id].LogLen)
				if st.Applied > base[id].Applied {
					t.Fatalf("precondition lost: node %d applied past the gap before the leader died", id)
				}
			}
		}
		if !c.RunUntil(func() bool { return aDone && bDone }, 10*time.Second) {
			t.Fatalf("stalled: a done=%v b done=%v", aDone, bDone)
		}
		if rep := mustDo(t, warm, getOp("b"), 5*time.Second); rep.Value != "2" {
			t.Fatalf("b = %+v", rep)
		}
		if rep := mustDo(t, warm, getOp("a"), 5*time.Second); rep.Value != "1" {
			t.Fatalf("a = %+v", rep)
		}
		if err := c.Restart(l); err != nil {
			t.Fatal(err)
		}
		c.RunFor(time.Second)
		checkReplicas(t, c)
	})
}

// In steady state one agreement costs a bounded number of messages: for
// Multi-Paxos accept + accepted to and from each of the N-1 others, and
// the commit news (piggybacked or separate), so about 3(N-1), plus
// heartbeats. Asserted: at most 4N per command with one client, which also
// absorbs the heartbeats of the measured interval.
func TestMessagesPerAgreement(t *testing.T) {
	forEachProtocol(t, 10, func(t *testing.T, proto string, seed int64) {
		for _, n := range []int{3, 5} {
			c := newKVCluster(t, proto, seed, n, nil)
			cl := c.NewClient(patient)
			mustDo(t, cl, putOp("warm", "up"), 10*time.Second)
			c.RunFor(500 * time.Millisecond)
			before := c.Stats().Sent
			const cmds = 500
			for i := 0; i < cmds; i++ {
				mustDo(t, cl, putOp("k", strconv.Itoa(i)), time.Second)
			}
			per := float64(c.Stats().Sent-before) / cmds
			t.Logf("N=%d: %.2f messages per command (bound %d), %v simulated", n, per, 4*n, c.Now())
			if per > float64(4*n) {
				t.Fatalf("N=%d: %.2f messages per command, above 4N = %d", n, per, 4*n)
			}
		}
	})
}

// After many commands with a snapshot every K entries, no replica's log
// (in memory or on disk) holds much more than K entries.
func TestLogBoundedBySnapshots(t *testing.T) {
	const k = 200
	total := 100000
	if testing.Short() {
		total = 10000
	}
	forEachProtocol(t, 11, func(t *testing.T, proto string, seed int64) {
		c := newKVCluster(t, proto, seed, 3, func(cc *ClusterConfig) { cc.SnapshotEvery = k })
		done := 0
		for i := 0; i < 20; i++ {
			cl := c.NewClient(patient)
			var loop func(n int)
			loop = func(n int) {
				if done >= total {
					return
				}
				_ = cl.Invoke(putOp(fmt.Sprintf("k%d", n%7), strconv.Itoa(n)), func(client.Outcome) {
					done++
					loop(n + 1)
				})
			}
			loop(i * 1000000)
		}
		if !c.RunUntil(func() bool { return done >= total }, time.Hour) {
			t.Fatalf("only %d of %d commands done", done, total)
		}
		c.RunFor(time.Second)
		for _, id := range c.Peers() {
			st, _ := c.Status(id)
			d := c.DiskEntries(id)
			t.Logf("node %d: applied %d, log %d entries, disk %d entries, snapshot at %d", id, st.Applied, st.LogLen, d, st.SnapshotIndex)
			if st.LogLen > 2*k || d > 2*k {
				t.Errorf("node %d holds %d entries in memory and %d on disk after %d commands, snapshot every %d", id, st.LogLen, d, total, k)
			}
			if st.SnapshotIndex == 0 {
				t.Errorf("node %d never took a snapshot", id)
			}
		}
		checkReplicas(t, c)
	})
}

func TestSameSeedSameHistory(t *testing.T) {
	forEachProtocol(t, 12, func(t *testing.T, proto string, seed int64) {
		cfg := Config{Seed: seed, Protocol: proto, Nemesis: []nemesis.Kind{"partition", "kill", "loss", "dup", "delay"}, Ops: 500}
		a, b := runOK(t, cfg), runOK(t, cfg)
		if string(a.HistoryJSONL()) != string(b.HistoryJSONL()) {
			t.Fatal("the same seed gave two different histories")
		}
		cfg.Seed++
		if d := runOK(t, cfg); string(d.HistoryJSONL()) == string(a.HistoryJSONL()) {
			t.Fatal("different seeds gave the same history")
		}
	})
}

func sweepSeeds(t *testing.T) int {
	if *flagSeeds > 0 {
		return *flagSeeds
	}
	if s := os.Getenv("CHAOS_SIM_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("CHAOS_SIM_SEEDS=%q is not a seed count", s)
		}
		return n
	}
	if testing.Short() {
		return 20
	}
	return 200
}
