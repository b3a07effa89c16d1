package paxos

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// disk is one replica's durable storage, applied the way the contract
// says a runtime must.
type disk struct {
	state   []byte
	snap    *replica.Snapshot
	entries map[uint64][]byte
}

func (d *disk) persist(p replica.Persist) {
	if p.State != nil {
		d.state = p.State
	}
	if p.Truncate {
		for i := range d.entries {
			if i > p.TruncateAfter {
				delete(d.entries, i)
			}
		}
	}
	for _, e := range p.Entries {
		d.entries[e.Index] = e.Data
	}
	if p.Snapshot != nil {
		d.snap = p.Snapshot
		for i := range d.entries {
			if i <= p.Snapshot.Index {
				delete(d.entries, i)
			}
		}
	}
}

func (d *disk) durable() *replica.Durable {
	out := &replica.Durable{State: d.state, Snapshot: d.snap}
	idx := make([]uint64, 0, len(d.entries))
	for i := range d.entries {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		out.Entries = append(out.Entries, replica.Entry{Index: i, Data: d.entries[i]})
	}
	return out
}

// recorder wraps the kv store and records every applied request, so
// tests can compare what each replica applied at each index.
type recorder struct {
	*kv.Store
	applied map[uint64][]string
}

func newRecorder() *recorder { return &recorder{Store: kv.NewStore(), applied: map[uint64][]string{}} }

func (r *recorder) Apply(index uint64, req replica.Request) []byte {
	r.applied[index] = append(r.applied[index], fmt.Sprintf("%d/%d/%x", req.ClientID, req.Seq, req.Op))
	return r.Store.Apply(index, req)
}

// cluster is a tiny deterministic driver: every node's Ready is persisted
// and its messages queued in FIFO order; filters may drop messages.
type cluster struct {
	t       testing.TB
	ids     []replica.NodeID
	cfg     map[replica.NodeID]replica.Config
	nodes   map[replica.NodeID]*Node
	sms     map[replica.NodeID]*recorder
	disks   map[replica.NodeID]*disk
	down    map[replica.NodeID]bool
	queue   []replica.Message
	drop    func(m replica.Message) bool
	results map[replica.NodeID][]replica.Result
	reads   map[replica.NodeID][]replica.ReadState
	// onRead, when set, sees each reported read as it is drained, when
	// the node's state machine is exactly as the runtime would query it.
	onRead func(id replica.NodeID, rs replica.ReadState)
	// onResult, when set, sees each applied request's result as drained.
	onResult func(id replica.NodeID, r replica.Result)
	sent     map[string]int // messages sent, by type
	maxLog   int
}

func newCluster(t testing.TB, n int, tweak func(*replica.Config)) *cluster {
	c := &cluster{t: t, cfg: map[replica.NodeID]replica.Config{}, nodes: map[replica.NodeID]*Node{},
		sms: map[replica.NodeID]*recorder{}, disks: map[replica.NodeID]*disk{}, down: map[replica.NodeID]bool{},
		results: map[replica.NodeID][]replica.Result{}, reads: map[replica.NodeID][]replica.ReadState{}, sent: map[string]int{}}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, replica.NodeID(i))
	}
	for _, id := range c.ids {
		cfg := DefaultConfig(id, c.ids)
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfg[id] = cfg
		c.disks[id] = &disk{entries: map[uint64][]byte{}}
		c.start(id)
	}
	return c
}

func (c *cluster) start(id replica.NodeID) {
	c.t.Helper()
	sm := newRecorder()
	node, err := New(c.cfg[id], sm, c.disks[id].durable())
	if err != nil {
		c.t.Fatalf("start node %d: %v", id, err)
	}
	c.nodes[id], c.sms[id] = node, sm
	c.down[id] = false
}

// crash loses everything not persisted.
func (c *cluster) crash(id replica.NodeID) {
	c.down[id] = true
}

func (c *cluster) drain() {
	for _, id := range c.ids {
		if c.down[id] {
			continue
		}
		n := c.nodes[id]
		for n.HasReady() {
			rd := n.Ready()
			c.disks[id].persist(rd.Persist)
			for _, m := range append(rd.Early[:len(rd.Early):len(rd.Early)], rd.Messages...) {
				if m.Source() != m.Dest() { // a core's own acknowledgement never travels
					c.sent[fmt.Sprintf("%T", m)]++
				}
			}
			c.queue = append(append(c.queue, rd.Early...), rd.Messages...)
			c.results[id] = append(c.results[id], rd.Results...)
			c.reads[id] = append(c.reads[id], rd.Reads...)
			if c.onResult != nil {
				for _, r := range rd.Results {
					c.onResult(id, r)
				}
			}
			if c.onRead != nil {
				for _, rs := range rd.Reads {
					c.onRead(id, rs)
				}
			}
		}
		c.maxLog = max(c.maxLog, n.Status().LogLen)
	}
}

// settle delivers messages until none are left.
func (c *cluster) settle() {
	c.drain()
	for steps := 0; len(c.queue) > 0; steps++ {
		if steps > 1_000_000 {
			c.t.Fatal("messages never settle")
		}
		m := c.queue[0]
		c.queue = c.queue[1:]
		if c.down[m.Dest()] || c.down[m.Source()] || (c.drop != nil && c.drop(m)) {
			continue
		}
		c.nodes[m.Dest()].Step(m)
		c.drain()
	}
}

func (c *cluster) tick(k int) {
	for range k {
		for _, id := range c.ids {
			if !c.down[id] {
				c.nodes[id].Tick()
			}
		}
		c.settle()
	}
}

// leader ticks until exactly one live leader exists and returns it.
func (c *cluster) leader() replica.NodeID {
	c.t.Helper()
	for range 500 {
		var ls []replica.NodeID
		for _, id := range c.ids {
			if !c.down[id] && c.nodes[id].Status().Role == RoleLeader {
				ls = append(ls, id)
			}
		}
		if len(ls) == 1 {
			return ls[0]
		}
		c.tick(1)
	}
	c.t.Fatal("no single leader after 500 ticks")
	return 0
}

func put(client, seq uint64, k, v string) replica.Request {
	return replica.Request{ClientID: client, Seq: seq, Op: kv.Op{Kind: kv.Put, Key: k, Value: v}.Encode()}
}

func appendReq(client, seq uint64, k, v string) replica.Request {
	return replica.Request{ClientID: client, Seq: seq, Op: kv.Op{Kind: kv.Append, Key: k, Value: v}.Encode()}
}

// checkAgreement fails if two replicas applied different requests at the
// same index.
func (c *cluster) checkAgreement() {
	c.t.Helper()
	seen := map[uint64][]string{}
	for _, id := range c.ids {
		for idx, reqs := range c.sms[id].applied {
			if prev, ok := seen[idx]; ok && !slices.Equal(prev, reqs) {
				c.t.Fatalf("index %d: replicas applied %v and %v", idx, prev, reqs)
			}
			seen[idx] = reqs
		}
	}
}

func (c *cluster) value(id replica.NodeID, key string) string {
	v, _ := c.sms[id].Get(key)
	return v
}

var _ = rand.New
