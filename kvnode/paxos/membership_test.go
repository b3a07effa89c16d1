package paxos

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// addSpare starts an empty replica that joins the group later: its
// configuration is the group's initial one, which does not include it.
func (c *cluster) addSpare(id replica.NodeID) {
	c.t.Helper()
	cfg := c.cfg[c.ids[0]]
	cfg.ID, cfg.Joining = id, true
	c.ids = append(c.ids, id)
	c.cfg[id] = cfg
	c.disks[id] = &disk{entries: map[uint64][]byte{}}
	c.start(id)
}

// change proposes members at the current leader and ticks until every
// live member of the new configuration reports it in force.
func (c *cluster) change(members ...replica.NodeID) {
	c.t.Helper()
	l := c.leader()
	if err := c.nodes[l].ChangeMembers(members); err != nil {
		c.t.Fatalf("change to %v at leader %d: %v", members, l, err)
	}
	for range 2000 {
		done := true
		for _, id := range members {
			st := c.nodes[id].Status()
			if !c.down[id] && (!slices.Equal(st.Members, members) || st.MembersFrom > st.Applied+1) {
				done = false
			}
		}
		if done {
			return
		}
		c.tick(1)
	}
	c.t.Fatalf("configuration %v never took effect", members)
}

// propose submits req at the leader and settles.
func (c *cluster) propose(req replica.Request) replica.NodeID {
	c.t.Helper()
	l := c.leader()
	if err := c.nodes[l].Propose(req); err != nil {
		c.t.Fatalf("propose at %d: %v", l, err)
	}
	c.settle()
	c.tick(2)
	return l
}

func TestMembershipGrowThenShrinkToNewNodes(t *testing.T) {
	c := newCluster(t, 3, nil)
	for i := uint64(1); i <= 5; i++ {
		c.propose(put(1, i, fmt.Sprint("k", i), "old"))
	}
	c.addSpare(4)
	c.addSpare(5)
	c.change(1, 2, 3, 4, 5)
	c.propose(put(1, 6, "k6", "five"))
	// Two members leave at once: the alpha rule does not need changes of
	// one member at a time.
	c.change(3, 4, 5)
	c.crash(1)
	c.crash(2)
	l := c.propose(put(1, 7, "k7", "three"))
	if l != 3 && l != 4 && l != 5 {
		t.Fatalf("leader %d is not a member", l)
	}
	for _, id := range []replica.NodeID{3, 4, 5} {
		for k, want := range map[string]string{"k1": "old", "k5": "old", "k6": "five", "k7": "three"} {
			if got := c.value(id, k); got != want {
				t.Errorf("node %d: %s=%q, want %q", id, k, got, want)
			}
		}
	}
	c.checkAgreement()
}

func TestMembershipReplaceCatchesUpBySnapshot(t *testing.T) {
	c := newCluster(t, 3, func(cfg *replica.Config) { cfg.SnapshotEvery = 10 })
	for i := uint64(1); i <= 40; i++ {
		c.propose(appendReq(1, i, fmt.Sprint("k", i%4), "z"))
	}
	l := c.leader()
	var gone replica.NodeID
	members := []replica.NodeID{4}
	for _, id := range c.ids {
		if id != l && gone == 0 {
			gone = id
		} else {
			members = append(members, id)
		}
	}
	slices.Sort(members)
	c.addSpare(4)
	before := c.sent["*paxos.InstallSnapshot"]
	c.change(members...)
	if c.sent["*paxos.InstallSnapshot"] == before {
		t.Fatal("the new replica caught up without a snapshot")
	}
	c.crash(gone)
	// Of the new members one more may fail; the other two include 4,
	// which therefore must vote.
	for _, id := range members {
		if id != 4 && id != l {
			c.crash(id)
		}
	}
	c.propose(appendReq(2, 1, "k0", "new"))
	if a, b := c.value(l, "k0"), c.value(4, "k0"); a != b || b == "" {
		t.Fatalf("k0: leader %q, new replica %q", a, b)
	}
	c.checkAgreement()
}

func TestMembershipRemovedLeaderStepsDown(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.propose(put(1, 1, "a", "1"))
	var rest []replica.NodeID
	for _, id := range c.ids {
		if id != old {
			rest = append(rest, id)
		}
	}
	c.change(rest...)
	c.tick(60)
	if st := c.nodes[old].Status(); st.Role == RoleLeader {
		t.Fatalf("removed leader still leads: %+v", st)
	}
	l := c.propose(put(1, 2, "a", "2"))
	if l == old {
		t.Fatalf("removed replica %d leads again", old)
	}
	c.crash(rest[0])
	if rest[0] == l {
		l = rest[1]
	}
	// One of two members down: the group cannot commit, and the removed
	// replica must not make up the quorum.
	c.tick(100)
	for _, id := range c.ids {
		if st := c.nodes[id].Status(); !c.down[id] && st.Role == RoleLeader {
			t.Fatalf("node %d leads a group whose other member is down: %+v", id, st)
		}
	}
}

func TestChangeMembersRefusals(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	var f replica.NodeID
	for _, id := range c.ids {
		if id != l {
			f = id
		}
	}
	if err := c.nodes[f].ChangeMembers([]replica.NodeID{1, 2}); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("follower: %v", err)
	}
	for _, bad := range [][]replica.NodeID{nil, {1, 1}, {0, 1}} {
		if err := c.nodes[l].ChangeMembers(bad); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
	if err := c.nodes[l].ChangeMembers([]replica.NodeID{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[l].ChangeMembers([]replica.NodeID{1, 2}); !errors.Is(err, replica.ErrChangePending) {
		t.Fatalf("second change while one is pending: %v", err)
	}
	c.addSpare(4)
	c.settle()
	c.tick(20)
	st := c.nodes[l].Status()
	if !slices.Equal(st.Members, []replica.NodeID{1, 2, 3, 4}) || st.MembersFrom > st.Applied+1 {
		t.Fatalf("idle group: change not in force: %+v", st)
	}
	// The change was chosen at slot MembersFrom-configDelay, and the
	// leader padded the log with no-ops up to it.
	if st.MembersFrom != 1+configDelay {
		t.Fatalf("change governs from %d, want %d", st.MembersFrom, 1+configDelay)
	}
	if err := c.nodes[l].ChangeMembers([]replica.NodeID{1, 2, 4}); err != nil {
		t.Fatalf("change after the previous took effect: %v", err)
	}
}

func TestConfigMetaRoundTrip(t *testing.T) {
	c := newCluster(t, 1, nil)
	n := c.nodes[1]
	n.addConfig(5, []replica.NodeID{1, 2, 7})
	cs, err := decodeConfigs(n.encodeConfigs())
	if err != nil {
		t.Fatal(err)
	}
	want := []config{{1, []replica.NodeID{1}}, {5 + configDelay, []replica.NodeID{1, 2, 7}}}
	if fmt.Sprint(cs) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", cs, want)
	}
	for _, bad := range [][]byte{nil, {wireVersion, 0}, {wireVersion, 1, 1, 0}, {wireVersion, 2, 5, 1, 1, 3, 1, 1}, {wireVersion, 1, 1, 2, 3, 3}} {
		if _, err := decodeConfigs(bad); err == nil {
			t.Errorf("%v decoded", bad)
		}
	}
}

// TestRandomizedMembership is TestRandomizedAgreement with membership
// changes: five replicas, three of them in the initial configuration, and
// the leader asked now and then to move to a random configuration.
func TestRandomizedMembership(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	if s, err := strconv.Atoi(os.Getenv("PAXOS_SEEDS")); err == nil && s > 0 {
		seeds = s
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay: go test ./kvnode/paxos -run 'TestRandomizedMembership/seed%d$' -v", seed)
				}
			}()
			runRandomMembership(t, seed)
		})
	}
}

func runRandomMembership(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	c := newCluster(t, 3, func(cfg *replica.Config) {
		cfg.Seed = seed
		cfg.SnapshotEvery = uint64(5 + rng.Intn(40))
		cfg.MaxBatch = 1 + rng.Intn(4)
		cfg.MaxInflight = 1 + rng.Intn(8)
	})
	c.addSpare(4)
	c.addSpare(5)
	var pool []replica.Message
	cut := map[replica.NodeID]bool{}
	collect := func() {
		c.drain()
		pool = append(pool, c.queue...)
		c.queue = nil
	}
	seq := map[uint64]uint64{}
	changes := 0
	for step := 0; step < 8000; step++ {
		switch r := rng.Intn(100); {
		case r < 78 && len(pool) > 0:
			i := rng.Intn(len(pool))
			m := pool[i]
			if rng.Intn(10) != 0 {
				pool = slices.Delete(pool, i, i+1)
			}
			if rng.Intn(20) != 0 && !c.down[m.Dest()] && !cut[m.Dest()] && !cut[m.Source()] {
				c.nodes[m.Dest()].Step(m)
				collect()
			}
		case r < 87:
			for _, id := range c.ids {
				if !c.down[id] {
					c.nodes[id].Tick()
				}
			}
			collect()
		case r < 95:
			id := c.ids[rng.Intn(len(c.ids))]
			if c.down[id] {
				continue
			}
			client := uint64(rng.Intn(4) + 1)
			seq[client]++
			_ = c.nodes[id].Propose(appendReq(client, seq[client], fmt.Sprint("k", rng.Intn(3)), fmt.Sprint(client, ".", seq[client], " ")))
			collect()
		case r < 97:
			id := c.ids[rng.Intn(len(c.ids))]
			if c.down[id] || c.nodes[id].Status().Role != RoleLeader {
				continue
			}
			var members []replica.NodeID
			for _, m := range rng.Perm(5)[:1+rng.Intn(5)] {
				members = append(members, replica.NodeID(m+1))
			}
			if c.nodes[id].ChangeMembers(members) == nil {
				changes++
			}
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
	clear(cut)
	for _, id := range c.ids {
		if c.down[id] {
			c.start(id)
		}
	}
	pool = nil
	c.queue = nil
	c.tick(300)
	l := c.leader()
	if err := c.nodes[l].Propose(appendReq(99, 1, "final", "x")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.tick(30)
	c.checkAgreement()
	st := c.nodes[l].Status()
	if !slices.Contains(st.Members, l) {
		t.Fatalf("leader %d outside its configuration %v", l, st.Members)
	}
	for _, id := range st.Members {
		got := c.nodes[id].Status()
		if got.Applied != st.Applied || !slices.Equal(got.Members, st.Members) {
			t.Fatalf("member %d did not converge: %+v, leader %+v", id, got, st)
		}
		if c.value(id, "final") != "x" {
			t.Fatalf("member %d: final=%q", id, c.value(id, "final"))
		}
	}
	t.Logf("%d changes proposed, final configuration %v", changes, st.Members)
}

// TestPhase1NeedsNewConfigurationMajority: a stale candidate that knows
// only the old configuration, and hears of the new one in a promise, must
// also win a majority of the new one before it proposes. Here x is chosen
// by two of the new members; the stale replica and the one new member
// that missed x form a majority of the old configuration, and the member
// that holds x answers Accepts but its promises are lost. Had the stale
// replica led, it would have proposed a no-op where x was chosen.
func TestPhase1NeedsNewConfigurationMajority(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.addSpare(4)
	c.addSpare(5)
	l := c.leader()
	var olds []replica.NodeID
	for _, id := range []replica.NodeID{1, 2, 3} {
		if id != l {
			olds = append(olds, id)
		}
	}
	stale, a := olds[0], olds[1]
	cutOff := func(ids ...replica.NodeID) {
		c.drop = func(m replica.Message) bool {
			return slices.Contains(ids, m.Source()) || slices.Contains(ids, m.Dest())
		}
	}
	cutOff(stale)
	c.change(a, 4, 5)
	// The removed leader leads on until the new members caught up.
	lead := c.leader()
	for k := 0; lead == l; k++ {
		if k == 100 {
			t.Fatalf("removed leader %d never stepped down", l)
		}
		c.tick(1)
		lead = c.leader()
	}
	if lead == a {
		c.crash(a)
		for lead = c.leader(); lead == a || lead == l; lead = c.leader() {
			c.tick(1)
		}
		c.start(a)
	}
	other := replica.NodeID(9 - lead) // the new member that is neither a nor lead
	cutOff(stale, a)
	c.propose(put(1, 1, "x", "X"))
	if c.value(other, "x") != "X" {
		t.Fatalf("x not chosen by %d and %d", lead, other)
	}
	c.crash(lead)
	c.crash(l)
	c.drop = func(m replica.Message) bool {
		switch m.(type) {
		case *Prepare, *Promise:
			return m.Source() == other || m.Dest() == other
		}
		return false
	}
	// Had the stale replica won, y would land where x was chosen.
	proposed := false
	for range 300 {
		c.tick(1)
		if r := c.nodes[stale].Status().Role; !proposed && r != RoleFollower {
			_ = c.nodes[stale].Propose(put(2, 1, "y", "Y"))
			proposed = true
		}
	}
	if !proposed {
		t.Fatalf("the stale replica %d never campaigned", stale)
	}
	c.drop = nil
	c.start(lead)
	c.start(l)
	c.tick(300)
	for _, id := range []replica.NodeID{a, 4, 5} {
		if got := c.value(id, "x"); got != "X" {
			t.Errorf("member %d: x=%q, want the chosen X", id, got)
		}
	}
	c.checkAgreement()
}
