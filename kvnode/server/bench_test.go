package server_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
)

// BenchmarkDurablePut measures durable puts of 100-byte values on a 3-node
// group of each replication protocol over loopback (every node fsyncs), at
// several client counts. It reports throughput and per-op latency
// percentiles, for both fsync modes (bbolt's two syncs per transaction, and
// one sync per batch).
func BenchmarkDurablePut(b *testing.B) {
	for _, name := range protocols.Names() {
		for _, mode := range []string{"full", "once"} {
			for _, clients := range []int{1, 16, 64, 256} {
				b.Run(fmt.Sprintf("proto=%s/fsync=%s/clients=%d", name, mode, clients), func(b *testing.B) {
					benchPut(b, protocol(b, name), clients, mode == "once")
				})
			}
		}
	}
}

// BenchmarkFailover measures, per protocol, the wall time from stopping
// the leader of a 3-node loopback group until a client's put succeeds
// again (election timeout 300 ms).
func BenchmarkFailover(b *testing.B) {
	for _, name := range protocols.Names() {
		b.Run("proto="+name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				c := testCluster(b, 3, false)
				c.TickMS = 10
				c.ElectionTicks = 30
				c.HeartbeatTicks = 3
				rs := startCluster(b, c, dataDirs(b, 3), protocol(b, name), func(o *server.Options) { o.SyncOnce = true })
				l := waitLeader(b, rs, 5*time.Second)
				cl := newClient(b, c)
				if err := cl.Put(context.Background(), "k", "v"); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				// The cleanup of startCluster waits for the node to end.
				rs[l].cancel()
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
					err := cl.Put(ctx, "k", "w")
					cancel()
					if err == nil {
						break
					}
					if time.Since(start) > 20*time.Second {
						b.Fatalf("no put succeeded within 20s of stopping the leader: %v", err)
					}
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "recover-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func benchPut(b *testing.B, p server.Protocol, clients int, syncOnce bool) {
	{
		{
			c := testCluster(b, 3, false)
			c.TickMS = 10
			c.ElectionTicks = 30
			c.HeartbeatTicks = 3
			rs := startCluster(b, c, dataDirs(b, 3), p, func(o *server.Options) { o.SyncOnce = syncOnce })
			waitLeader(b, rs, 5*time.Second)
			value := strings.Repeat("v", 100)
			cls := make([]interface {
				Put(context.Context, string, string) error
			}, clients)
			ctx := context.Background()
			for i := range cls {
				cl := newClient(b, c)
				// Warm up: find the leader, open the connection.
				if err := cl.Put(ctx, "warm", value); err != nil {
					b.Fatal(err)
				}
				cls[i] = cl
			}
			epoch := func() uint64 {
				var e uint64
				for _, r := range rs {
					e = max(e, r.node.Status()[1].Epoch)
				}
				return e
			}
			epoch0 := epoch()
			var next atomic.Int64
			lat := make([][]time.Duration, clients)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range cls {
				wg.Go(func() {
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						t := time.Now()
						if err := cls[i].Put(ctx, fmt.Sprintf("k%d", n%1000), value); err != nil {
							b.Error(err)
							return
						}
						lat[i] = append(lat[i], time.Since(t))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			if len(all) == 0 {
				return
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "puts/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			// Elections during the run (a stalled fsync can delay
			// heartbeats past the election timeout).
			b.ReportMetric(float64(epoch()-epoch0), "elections")
			b.ReportMetric(0, "ns/op")
		}
	}
}
