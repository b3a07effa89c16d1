package vr

import (
	"testing"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// nullSM applies nothing, so a benchmark measures the replication core.
type nullSM struct{}

func (nullSM) Apply(uint64, replica.Request) []byte { return nil }
func (nullSM) Snapshot() ([]byte, error)            { return nil, nil }
func (nullSM) Restore([]byte) error                 { return nil }

// benchGroup passes messages in memory, FIFO; Persist is produced and
// dropped. It counts the results the primary produces.
type benchGroup struct {
	nodes map[replica.NodeID]*Node
	ids   []replica.NodeID
	queue []replica.Message
	done  int
	reads []replica.ReadState // reported by the leader
}

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
	// A fresh group starts in view 0 with peers[0] as primary.
	return g, g.nodes[1]
}

func (g *benchGroup) settle() {
	for {
		for _, id := range g.ids {
			n := g.nodes[id]
			for n.HasReady() {
				rd := n.Ready()
				g.queue = append(append(g.queue, rd.Early...), rd.Messages...)
				if n.isPrimary() {
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
// the core alone: 3 replicas, in-memory message passing, no I/O; kv
// includes the store's work on every replica, null is replication alone.
// It has the shape of the Paxos core's BenchmarkCommit for comparison.
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
		for _, mode := range []struct {
			name            string
			batch, inflight int
			burst           int
		}{{"batched", 64, 16, 4096}, {"unbatched", 1, 1, 1}} {
			b.Run(mode.name+"/"+sm.name, func(b *testing.B) {
				g, p := newBenchGroup(b, mode.batch, mode.inflight, sm.new)
				reqs := make([]replica.Request, 0, mode.burst)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; {
					reqs = reqs[:0]
					for j := 0; j < mode.burst && i < b.N; j++ {
						i++
						reqs = append(reqs, replica.Request{ClientID: uint64(i%1000 + 1), Seq: uint64(i), Op: op})
					}
					if err := p.Propose(reqs...); err != nil {
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
}

func BenchmarkCodecPrepare(b *testing.B) {
	var c Codec
	reqs := make([]replica.Request, 64)
	for i := range reqs {
		reqs[i] = replica.Request{ClientID: uint64(i + 1), Seq: uint64(1000 + i), Op: kv.Op{Kind: kv.Put, Key: "key", Value: "value"}.Encode()}
	}
	m := &Prepare{Header: Header{From: 1, To: 2}, View: 3, Op: 12345, Commit: 12340, Value: Value{Reqs: reqs}}
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
