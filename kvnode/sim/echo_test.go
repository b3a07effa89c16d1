package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/vr"
)

// ignoresNonce is a deliberately broken VR core: its recovery takes
// RecoveryResponses whatever their nonce, as if each answered its latest
// Recovery.
type ignoresNonce struct {
	inspected
	nonce uint64 // of the latest Recovery it sent
}

func (c *ignoresNonce) Ready() replica.Ready {
	rd := c.Replicator.Ready()
	for _, m := range rd.Messages {
		if r, ok := m.(*vr.Recovery); ok {
			c.nonce = r.Nonce
		}
	}
	return rd
}

func (c *ignoresNonce) Step(m replica.Message) {
	if r, ok := m.(*vr.RecoveryResponse); ok && r.Nonce != c.nonce {
		cp := *r
		cp.Nonce = c.nonce
		m = &cp
	}
	c.Replicator.Step(m)
}

func ignoresNonceFactory(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
	n, err := vr.New(cfg, sm, d)
	if err != nil {
		return nil, err
	}
	return &ignoresNonce{inspected: inspected{n, n}}, nil
}

// TestEchoedRecoveryResponses aims the Echo fault at VR's recovery: a
// replica recovers (the fault keeps the answers to its Recovery), joins a
// later view without voting for it, acknowledges ops there, crashes, and
// at its restart the answers to its earlier Recovery arrive again. The
// real core tells them by their nonce and stays safe in every seed; a core
// that ignores the nonce adopts the old view's log, forgets the ops it
// acknowledged, and the next view change loses one of them, which the
// oracles catch. Plain sweeps miss that bug (500 seeds did): the
// simulated network delays a message by milliseconds, never across a
// recovery, a new view and a second crash.
func TestEchoedRecoveryResponses(t *testing.T) {
	const seeds = 20
	caught := 0
	for seed := int64(1); seed <= seeds; seed++ {
		if err := echoScenario(t, seed, nil); err != nil {
			t.Fatalf("seed %d: real VR: %v\n  replay: go test ./kvnode/sim -run '^TestEchoedRecoveryResponses$' -v", seed, err)
		}
		if err := echoScenario(t, seed, ignoresNonceFactory); err != nil {
			if violation(err) == nil {
				t.Fatalf("seed %d: broken VR: %v", seed, err)
			}
			caught++
			if caught == 1 {
				t.Logf("seed %d: the core that ignores the nonce: %v", seed, err)
			}
		}
	}
	if caught == 0 {
		t.Fatalf("%d seeds of a VR core that ignores its recovery nonce all stayed safe under echoed recovery answers", seeds)
	}
	t.Logf("the core that ignores the nonce was caught in %d of %d seeds", caught, seeds)
}

// echoScenario runs the scenario of TestEchoedRecoveryResponses for one
// seed and returns the cluster's error: a safety violation, or a step that
// did not come about (reported as such, not as a violation).
func echoScenario(t *testing.T, seed int64, f Factory) error {
	c := newKVCluster(t, "vr", seed, 3, func(cc *ClusterConfig) {
		if f != nil {
			cc.Factory = f
		}
	})
	// Load: every millisecond a put goes to every node; the primary
	// orders it, the others drop it.
	seq := uint64(0)
	var load func()
	load = func() {
		seq++
		for _, id := range c.Peers() {
			c.Submit(id, replica.Request{ClientID: 1, Seq: seq, Op: putOp(fmt.Sprint("k", seq%5), fmt.Sprint(seq))})
		}
		c.At(time.Millisecond, load)
	}
	c.At(time.Millisecond, load)
	status := func(id replica.NodeID) replica.Status { st, _ := c.Status(id); return st }
	var p, r, w replica.NodeID
	step := func(what string, cond func() bool) error {
		if !c.RunUntil(func() bool { return c.Err() != nil || cond() }, 5*time.Second) {
			var sts []string
			for _, id := range c.Peers() {
				sts = append(sts, fmt.Sprintf("%+v", status(id)))
			}
			return fmt.Errorf("%s did not happen (p=%d r=%d w=%d): %v", what, p, r, w, sts)
		}
		return c.Err()
	}
	if err := step("a first primary", func() bool { return c.Leader() != 0 }); err != nil {
		return err
	}
	c.RunFor(200 * time.Millisecond)
	p = c.Leader()
	for _, id := range c.Peers() {
		if id != p {
			if r == 0 {
				r = id
			} else {
				w = id
			}
		}
	}
	if seed%2 == 0 {
		r, w = w, r
	}
	view := status(p).Epoch
	// r crashes and recovers in p's view; the fault keeps what it hears.
	c.Crash(r)
	c.RunFor(20 * time.Millisecond)
	if err := c.Restart(r); err != nil {
		return err
	}
	c.Echo(r, 100*time.Microsecond)
	if err := step("recovery", func() bool { return status(r).Role == vr.RoleBackup }); err != nil {
		return err
	}
	c.RunFor(50 * time.Millisecond)
	// A new view, which r neither votes for nor hears of: it is cut off
	// and frozen meanwhile, so its view stays put. w gives up on p first.
	c.Partition([]replica.NodeID{r}, []replica.NodeID{p, w})
	c.Pause(r)
	c.Cut(w, p)
	if err := step("w giving up on p", func() bool { return status(w).Role == vr.RoleViewChange }); err != nil {
		return err
	}
	c.Partition([]replica.NodeID{r}, []replica.NodeID{p, w})
	var q, o replica.NodeID // the new view's primary and the other
	if err := step("a view without r", func() bool {
		for _, id := range []replica.NodeID{p, w} {
			if st := status(id); st.Role == vr.RolePrimary && st.Epoch > view {
				q = id
				return true
			}
		}
		return false
	}); err != nil {
		return err
	}
	o = p + w - q
	c.RunFor(50 * time.Millisecond)
	// r joins that view from q's heartbeat and acknowledges ops there
	// while o is cut off: they commit with q and r alone.
	c.Partition([]replica.NodeID{o}, []replica.NodeID{q, r})
	c.Resume(r)
	if err := step("r in the new view", func() bool { st := status(r); return st.Epoch > view && st.Role == vr.RoleBackup }); err != nil {
		return err
	}
	c.RunFor(100 * time.Millisecond)
	// r crashes; at its restart the answers to its earlier Recovery (from
	// p and w) come again, and o hears r but not q.
	c.Crash(r)
	c.Heal()
	c.Cut(o, q)
	c.Cut(q, o)
	if err := c.Restart(r); err != nil {
		return err
	}
	if err := step("r recovered", func() bool { return status(r).Role == vr.RoleBackup || status(r).Role == vr.RolePrimary }); err != nil {
		return err
	}
	// q, the only other holder of the ops r acknowledged, is cut off: o
	// and r carry on.
	c.Partition([]replica.NodeID{q}, []replica.NodeID{o, r})
	c.RunFor(2 * time.Second)
	return c.Err()
}

// TestEchoReplaysToTheNextIncarnation checks the Echo fault itself: it
// arms once on a running node, keeps what that incarnation hears, and
// sends copies to the next incarnation only.
func TestEchoReplaysToTheNextIncarnation(t *testing.T) {
	c := newKVCluster(t, "vr", 1, 3, nil)
	c.RunFor(200 * time.Millisecond)
	if !c.Echo(2, time.Millisecond) {
		t.Fatal("Echo on a running node did not arm")
	}
	if c.Echo(2, time.Millisecond) {
		t.Fatal("a second Echo armed while one is armed")
	}
	c.RunFor(100 * time.Millisecond)
	kept := len(c.nodes[1].echo.kept)
	if kept == 0 {
		t.Fatal("Echo kept nothing of 100ms of heartbeats")
	}
	dup := c.Stats().Duplicated
	c.Crash(2)
	if c.Echo(2, time.Millisecond) {
		t.Fatal("Echo armed on a crashed node")
	}
	if err := c.Restart(2); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Duplicated - dup; got != int64(kept) {
		t.Fatalf("restart sent %d copies, want the %d kept", got, kept)
	}
	if c.nodes[1].echo != nil {
		t.Fatal("Echo still armed after replaying")
	}
	c.RunFor(time.Second)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
}
