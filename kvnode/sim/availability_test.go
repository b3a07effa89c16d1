package sim

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// liveLeader returns the running, unpaused node that leads with every other
// running, unpaused node naming it, or 0. A paused replica still reports
// whatever it believed when it froze, so it gets no say.
func liveLeader(c *Cluster) replica.NodeID {
	var lead replica.NodeID
	for _, id := range c.Peers() {
		if !c.Up(id) || c.Paused(id) {
			continue
		}
		st, _ := c.Status(id)
		if st.Leader == id {
			lead = id
		}
	}
	if lead == 0 {
		return 0
	}
	for _, id := range c.Peers() {
		if !c.Up(id) || c.Paused(id) {
			continue
		}
		if st, _ := c.Status(id); st.Leader != lead {
			return 0
		}
	}
	return lead
}

// stallCase is a three-replica group (leader L, followers F1, F2) split by
// a partition during which one replica is paused; the partition then heals
// with that replica still paused, leaving two replicas that can talk.
type stallCase struct {
	name string
	// sides lists the partition's sides by role: 0 = L, 1 = F1, 2 = F2.
	sides [][]int
	// paused is the role of the replica paused for good; -1 is whichever
	// replica leads when the pause comes (the old leader if none does).
	paused int
	// pauseAt is when, into the partition, it is paused (0: just before
	// the partition starts).
	pauseAt time.Duration
}

var stallCases = []stallCase{
	{"all-isolated/pause-leader", [][]int{{0}, {1}, {2}}, 0, 500 * time.Millisecond},
	{"all-isolated/pause-follower", [][]int{{0}, {1}, {2}}, 1, 500 * time.Millisecond},
	{"all-isolated/pause-leader-first", [][]int{{0}, {1}, {2}}, 0, 0},
	{"leader-alone/pause-leader", [][]int{{0}, {1, 2}}, 0, 500 * time.Millisecond},
	{"leader-alone/pause-follower", [][]int{{0}, {1, 2}}, 1, 500 * time.Millisecond},
	{"follower-alone/pause-leader", [][]int{{0, 1}, {2}}, 0, 500 * time.Millisecond},
	{"follower-alone/pause-leader-first", [][]int{{0, 1}, {2}}, 0, 0},
	{"follower-alone/pause-partner", [][]int{{0, 1}, {2}}, 1, 500 * time.Millisecond},
	{"follower-alone/pause-loner", [][]int{{0, 1}, {2}}, 2, 500 * time.Millisecond},
	{"leader-alone/pause-new-leader", [][]int{{0}, {1, 2}}, -1, 500 * time.Millisecond},
	{"leader-alone/pause-new-leader-late", [][]int{{0}, {1, 2}}, -1, 2 * time.Second},
	{"follower-alone/pause-current-leader-late", [][]int{{0, 1}, {2}}, -1, 2 * time.Second},
}

// stallResult is what one run of a stallCase measured, from the heal.
type stallResult struct {
	leader time.Duration // until the two live replicas agree on a leader
	write  time.Duration // until a write through them commits
}

// runStall plays one stallCase with one seed. The partition lasts long
// enough for isolated replicas to time out and bid many times.
func runStall(t *testing.T, proto string, seed int64, sc stallCase, part time.Duration) stallResult {
	t.Helper()
	c := newKVCluster(t, proto, seed, 3, nil)
	cl := c.NewClient(patient)
	mustDo(t, cl, putOp("warm", "up"), 10*time.Second)
	l := waitLeader(t, c)
	roles := []replica.NodeID{l}
	for _, id := range c.Peers() {
		if id != l {
			roles = append(roles, id)
		}
	}
	sides := make([][]replica.NodeID, len(sc.sides))
	for i, s := range sc.sides {
		for _, r := range s {
			sides[i] = append(sides[i], roles[r])
		}
	}
	// Clients keep writing through it all, at whichever node answers.
	for i := 0; i < 2; i++ {
		lc := c.NewClient(ClientConfig{Attempt: 100 * time.Millisecond, Deadline: 500 * time.Millisecond})
		var loop func()
		loop = func() {
			_ = lc.Invoke(putOp(fmt.Sprint("load", i), "v"), func(client.Outcome) { c.At(5*time.Millisecond, loop) })
		}
		loop()
	}
	var victim replica.NodeID
	pause := func() {
		if sc.paused >= 0 {
			victim = roles[sc.paused]
		} else if victim = c.Leader(); victim == 0 {
			victim = l
		}
		c.Pause(victim)
	}
	if sc.pauseAt == 0 {
		pause()
	}
	c.Partition(sides...)
	if sc.pauseAt > 0 {
		c.RunFor(sc.pauseAt)
		pause()
		c.RunFor(max(0, part-sc.pauseAt))
	} else {
		c.RunFor(part)
	}
	c.Heal()
	healed := c.Now()
	var res stallResult
	if !c.RunUntil(func() bool { return liveLeader(c) != 0 }, 30*time.Second) {
		t.Fatalf("%s: no leader among the live replicas within 30s of the heal", sc.name)
	}
	res.leader = c.Now() - healed
	// A client that cannot reach the paused replica, as one whose
	// connection to it timed out would, retrying quickly.
	w := c.NewClient(ClientConfig{Attempt: 50 * time.Millisecond, Deadline: time.Hour, Backoff: 5 * time.Millisecond})
	w.CutFrom(victim)
	mustDo(t, w, putOp("after", "heal"), 30*time.Second)
	res.write = c.Now() - healed
	c.Resume(victim)
	c.RunFor(time.Second)
	checkReplicas(t, c)
	return res
}

// A group whose majority can talk elects a leader within one election
// timeout of a heal, however the partition went and whichever replica
// stays paused. The bound is the longest randomized election timeout (two
// ElectionTicks of the default 10ms ticks) plus a few message delays; the
// first write gets two client attempts more.
func TestElectionAfterHealWithPausedReplica(t *testing.T) {
	const (
		tick      = 10 * time.Millisecond
		timeout   = 2 * 10 * tick // the longest randomized election timeout
		slack     = 30 * time.Millisecond
		leaderMax = timeout + slack
		writeMax  = leaderMax + 2*50*time.Millisecond
	)
	forEachProtocol(t, 61, func(t *testing.T, proto string, seed int64) {
		for _, sc := range stallCases {
			t.Run(sc.name, func(t *testing.T) {
				var worst stallResult
				var worstSeed int64
				for s := seed; s < seed+*flagStallSeeds; s++ {
					part := *flagStallPart + time.Duration(s%7)*137*time.Millisecond
					r := runStall(t, proto, s, sc, part)
					if r.leader > worst.leader {
						worst, worstSeed = r, s
					}
					if r.leader > leaderMax || r.write > writeMax {
						t.Errorf("seed %d: leader %v after the heal (bound %v), first write %v (bound %v); replay: go test ./kvnode/sim -run '^%s$' -seed %d -v",
							s, r.leader, leaderMax, r.write, writeMax, t.Name(), s)
					}
					if *flagSeed != 0 {
						break
					}
				}
				t.Logf("worst of %d seeds: leader %v, first write %v after the heal (seed %d)", *flagStallSeeds, worst.leader, worst.write, worstSeed)
			})
		}
	})
}

// The stall scenarios' partition length (plus up to 822ms varying with
// the seed) and seed count, to explore further than the default.
var (
	flagStallPart  = flag.Duration("stall-partition", time.Second, "partition length in the stall scenarios")
	flagStallSeeds = flag.Int64("stall-seeds", 10, "seeds per stall scenario")
)
