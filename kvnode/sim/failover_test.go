package sim

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSimFailover measures, per protocol, the virtual time from
// crashing the leader of a 3-replica group (after a committed write) to a
// new leader recognised by a majority (elect-ms) and to the next client
// write completing (serve-ms, which includes the client's retry backoff).
func BenchmarkSimFailover(b *testing.B) {
	for _, proto := range Protocols() {
		b.Run(proto, func(b *testing.B) {
			var elect, serve time.Duration
			for i := range b.N {
				c, err := NewCluster(ClusterConfig{Seed: int64(i + 1), Replicas: 3, Protocol: proto, NewStateMachine: newKV})
				if err != nil {
					b.Fatal(err)
				}
				cl := c.NewClient(patient)
				if _, ok, err := cl.Do(appendOp("k", "a"), time.Minute); err != nil || !ok {
					b.Fatalf("seed %d: first write: ok=%v err=%v", i+1, ok, err)
				}
				old := c.Leader()
				if old == 0 {
					b.Fatalf("seed %d: no leader after a committed write", i+1)
				}
				c.Crash(old)
				t0 := c.Now()
				if !c.RunUntil(func() bool { l := c.Leader(); return l != 0 && l != old }, time.Minute) {
					b.Fatalf("seed %d: no new leader within a minute of virtual time", i+1)
				}
				elect += c.Now() - t0
				if _, ok, err := cl.Do(appendOp("k", fmt.Sprint(i)), time.Minute); err != nil || !ok {
					b.Fatalf("seed %d: write after failover: ok=%v err=%v", i+1, ok, err)
				}
				serve += c.Now() - t0
			}
			b.ReportMetric(float64(elect.Microseconds())/1000/float64(b.N), "elect-ms")
			b.ReportMetric(float64(serve.Microseconds())/1000/float64(b.N), "serve-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
