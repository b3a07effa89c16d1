package paxos

import (
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// TestRandomizedAgreement runs small groups under message loss,
// duplication, reordering, partitions and crash-restarts, and checks that
// no two replicas ever apply different requests at one index, and that
// the group converges once the faults stop.
func TestRandomizedAgreement(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	if s, err := strconv.Atoi(os.Getenv("PAXOS_SEEDS")); err == nil && s > 0 {
		seeds = s
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay: go test ./kvnode/paxos -run 'TestRandomizedAgreement/seed%d$' -v", seed)
				}
			}()
			runRandom(t, seed)
		})
	}
}

func runRandom(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	size := 3 + 2*rng.Intn(2)
	c := newCluster(t, size, func(cfg *replica.Config) {
		cfg.Seed = seed
		cfg.SnapshotEvery = uint64(5 + rng.Intn(20))
		cfg.MaxBatch = 1 + rng.Intn(4)
		cfg.MaxInflight = 1 + rng.Intn(4)
	})
	var pool []replica.Message
	cut := map[replica.NodeID]bool{} // partitioned away from everyone
	collect := func() {
		c.drain()
		pool = append(pool, c.queue...)
		c.queue = nil
	}
	seq := map[uint64]uint64{}
	deliver := func(m replica.Message) {
		if c.down[m.Dest()] || cut[m.Dest()] || cut[m.Source()] {
			return
		}
		c.nodes[m.Dest()].Step(m)
		if rng.Intn(300) == 0 {
			// Crash before the Ready is drained: its state never
			// reached the disk and its messages never left.
			c.crash(m.Dest())
		}
		collect()
	}
	for step := 0; step < 6000; step++ {
		switch r := rng.Intn(100); {
		case r < 80 && len(pool) > 0:
			i := rng.Intn(len(pool))
			m := pool[i]
			if rng.Intn(10) != 0 { // sometimes keep it: a duplicate
				pool = slices.Delete(pool, i, i+1)
			}
			if rng.Intn(20) != 0 { // sometimes lose it
				deliver(m)
			}
		case r < 88:
			for _, id := range c.ids {
				if !c.down[id] {
					c.nodes[id].Tick()
				}
			}
			collect()
		case r < 97:
			id := c.ids[rng.Intn(len(c.ids))]
			if c.down[id] {
				continue
			}
			client := uint64(rng.Intn(4) + 1)
			seq[client]++
			_ = c.nodes[id].Propose(appendReq(client, seq[client], fmt.Sprint("k", rng.Intn(3)), fmt.Sprint(client, ".", seq[client], " ")))
			collect()
		case r == 97 && rng.Intn(4) == 0:
			id := c.ids[rng.Intn(len(c.ids))]
			if c.down[id] {
				c.start(id)
			} else {
				c.crash(id)
			}
			collect()
		case r == 98 && rng.Intn(2) == 0:
			id := c.ids[rng.Intn(len(c.ids))]
			cut[id] = !cut[id]
		case r == 99:
			clear(cut)
		}
		c.checkAgreement()
	}
	// Heal everything and let the group converge.
	clear(cut)
	for _, id := range c.ids {
		if c.down[id] {
			c.start(id)
		}
	}
	pool = nil
	c.queue = nil
	c.tick(200)
	l := c.leader()
	seq[99] = 1
	if err := c.nodes[l].Propose(appendReq(99, 1, "final", "x")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.tick(20)
	c.checkAgreement()
	want := c.nodes[l].Status().Commit
	for _, id := range c.ids {
		st := c.nodes[id].Status()
		if st.Commit != want || st.Applied != want {
			t.Fatalf("node %d did not converge: %+v, leader commit %d", id, st, want)
		}
		for k := range 3 {
			key := fmt.Sprint("k", k)
			if a, b := c.value(l, key), c.value(id, key); a != b {
				t.Fatalf("node %d: %s=%q, leader has %q", id, key, b, a)
			}
		}
		if c.value(id, "final") != "x" {
			t.Fatalf("node %d: final=%q", id, c.value(id, "final"))
		}
	}
}
