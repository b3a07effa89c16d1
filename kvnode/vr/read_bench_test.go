package vr

import (
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// readClients is how many reads are outstanding at once in BenchmarkReads.
const readClients = 64

// BenchmarkReads compares linearizable reads by read index with reads
// through the log, in the core alone: 3 replicas, the kv store, in-memory
// messages, no I/O (so the log path is charged no fsync, which a runtime
// would add). 64 reads are outstanding at a time, as from 64 clients.
// "log" proposes each read as a kv Get; "index" starts it with ReadIndex
// and answers it with kv.Store.Query; "ratio" runs both, the same number
// of reads each, and reports index reads/s over log reads/s.
func BenchmarkReads(b *testing.B) {
	get := kv.Op{Kind: kv.Get, Key: "key"}.Encode()
	setup := func(b *testing.B) (*benchGroup, *Node, *kv.Store) {
		var stores []*kv.Store
		g, l := newBenchGroup(b, 64, 16, func() replica.StateMachine {
			s := kv.NewStore()
			stores = append(stores, s)
			return s
		})
		if err := l.Propose(replica.Request{ClientID: 1, Seq: 1, Op: kv.Op{Kind: kv.Put, Key: "key", Value: "value"}.Encode()}); err != nil {
			b.Fatal(err)
		}
		g.settle()
		return g, l, stores[l.id-1]
	}
	var seq uint64
	viaLog := func(b *testing.B, g *benchGroup, l *Node, n int) {
		reqs := make([]replica.Request, 0, readClients)
		for i := 0; i < n; {
			reqs = reqs[:0]
			seq++ // every client's next request
			for j := 0; j < readClients && i < n; j++ {
				i++
				reqs = append(reqs, replica.Request{ClientID: uint64(j + 2), Seq: seq, Op: get})
			}
			before := g.done
			if err := l.Propose(reqs...); err != nil {
				b.Fatal(err)
			}
			g.settle()
			if g.done-before != len(reqs) {
				b.Fatalf("%d of %d reads answered", g.done-before, len(reqs))
			}
		}
	}
	viaIndex := func(b *testing.B, g *benchGroup, l *Node, sm *kv.Store, n int) {
		for i := 0; i < n; {
			k := min(readClients, n-i)
			for j := range k {
				i++
				if err := l.ReadIndex(uint64(i*readClients + j)); err != nil {
					b.Fatal(err)
				}
			}
			g.settle()
			if len(g.reads) != k {
				b.Fatalf("%d of %d reads confirmed", len(g.reads), k)
			}
			for _, rs := range g.reads {
				if rs.Lost {
					b.Fatal("read lost")
				}
				if r, _ := kv.DecodeReply(sm.Query(get)); r.Value != "value" {
					b.Fatalf("read answered %+v", r)
				}
			}
			g.reads = g.reads[:0]
		}
	}
	b.Run("log", func(b *testing.B) {
		g, l, _ := setup(b)
		b.ReportAllocs()
		b.ResetTimer()
		viaLog(b, g, l, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	})
	b.Run("index", func(b *testing.B) {
		g, l, sm := setup(b)
		b.ReportAllocs()
		b.ResetTimer()
		viaIndex(b, g, l, sm, b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	})
	b.Run("ratio", func(b *testing.B) {
		g, l, sm := setup(b)
		var logTime, indexTime time.Duration
		for range b.N {
			start := time.Now()
			viaLog(b, g, l, readClients*16)
			logTime += time.Since(start)
			start = time.Now()
			viaIndex(b, g, l, sm, readClients*16)
			indexTime += time.Since(start)
		}
		b.ReportMetric(logTime.Seconds()/indexTime.Seconds(), "index/log")
	})
}
