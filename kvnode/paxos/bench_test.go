package paxos

import (
	"testing"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// benchGroup is a lean in-memory driver: no durable storage (Persist is
// produced, encoded and dropped), FIFO message delivery.
type benchGroup struct {
	nodes map[replica.NodeID]*Node
	ids   []replica.NodeID
	queue []replica.Message
	done  int
	reads []replica.ReadState // reported by the leader
}

// nullSM applies nothing, so a benchmark measures the consensus core.
type nullSM struct{}

func (nullSM) Apply(uint64, replica.Request) []byte { return nil }
func (nullSM) Snapshot() ([]byte, error)            { return nil, nil }
func (nullSM) Restore([]byte) error                 { return nil }

func newBenchGroup(b *testing.B, maxBatch, maxInflight int, newSM func() replica.StateMachine) (*benchGroup, *Node) {
	g := &benchGroup{nodes: map[replica.NodeID]*Node{}, ids: []replica.NodeID{1, 2, 3}}
	for _, id := range g.ids {
		cfg := DefaultConfig(id, g.ids)
		cfg.MaxBatch, cfg.MaxInflight = maxBatch, maxInflight
		n, err := New(cfg, newSM(), nil)
		if err != nil {
			b.Fatal(err)
		}
		g.nodes[id] = n
	}
	for range 1000 {
		for _, id := range g.ids {
			g.nodes[id].Tick()
		}
		g.settle()
		for _, n := range g.nodes {
			if n.Status().Role == RoleLeader {
				return g, n
			}
		}
	}
	b.Fatal("no leader")
	return nil, nil
}

func (g *benchGroup) settle() {
	for {
		for _, id := range g.ids {
			n := g.nodes[id]
			for n.HasReady() {
				rd := n.Ready()
				g.queue = append(append(g.queue, rd.Early...), rd.Messages...)
				if n.role == leader {
					g.done += len(rd.Results)
					g.reads = append(g.reads, rd.Reads...)
				}
			}
		}
		if len(g.queue) == 0 {
			return
		}
		q := g.queue
		g.queue = nil
		for _, m := range q {
			g.nodes[m.Dest()].Step(m)
		}
	}
}

// BenchmarkCommit measures commands committed and applied per second by
// the core alone: 3 replicas, in-memory message passing, no I/O. The kv
// variants include the key-value store's work on every replica; the null
// variants measure consensus alone.
func BenchmarkCommit(b *testing.B) {
	op := kv.Op{Kind: kv.Put, Key: "key", Value: "value"}.Encode()
	sms := []struct {
		name string
		new  func() replica.StateMachine
	}{
		{"kv", func() replica.StateMachine { return kv.NewStore() }},
		{"null", func() replica.StateMachine { return nullSM{} }},
	}
	for _, sm := range sms {
		b.Run("batched/"+sm.name, func(b *testing.B) {
			g, l := newBenchGroup(b, 64, 16, sm.new)
			const burst = 4096
			reqs := make([]replica.Request, 0, burst)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				reqs = reqs[:0]
				for j := 0; j < burst && i < b.N; j++ {
					i++
					reqs = append(reqs, replica.Request{ClientID: uint64(i%1000 + 1), Seq: uint64(i), Op: op})
				}
				if err := l.Propose(reqs...); err != nil {
					b.Fatal(err)
				}
				g.settle()
			}
			b.StopTimer()
			if g.done < b.N {
				b.Fatalf("applied %d of %d", g.done, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
		})
		b.Run("unbatched/"+sm.name, func(b *testing.B) {
			g, l := newBenchGroup(b, 1, 1, sm.new)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				if err := l.Propose(replica.Request{ClientID: uint64(i%1000 + 1), Seq: uint64(i), Op: op}); err != nil {
					b.Fatal(err)
				}
				g.settle()
			}
			b.StopTimer()
			if g.done < b.N {
				b.Fatalf("applied %d of %d", g.done, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
		})
	}
}

func BenchmarkCodecAccept(b *testing.B) {
	var c Codec
	reqs := make([]replica.Request, 64)
	for i := range reqs {
		reqs[i] = replica.Request{ClientID: uint64(i + 1), Seq: uint64(1000 + i), Op: kv.Op{Kind: kv.Put, Key: "key", Value: "value"}.Encode()}
	}
	m := &Accept{Header: Header{From: 1, To: 2}, Ballot: Ballot{Round: 3, Node: 1}, Slot: 12345, Value: Value{Reqs: reqs}, Commit: 12340}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = c.AppendMessage(buf[:0], m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.DecodeMessage(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bytes/msg")
}
