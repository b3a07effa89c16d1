package kvnodedb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaoskv/chaos/harness/dockerbackend"
)

// BenchmarkClusterLifecycle measures what a chaos run waits for before and
// after its workload, on a 5-node cluster with the node image already
// cached: setup (launch and health), the first client write, and teardown.
func BenchmarkClusterLifecycle(b *testing.B) {
	d := dockerOrSkip(b)
	bin := buildKvnode(b)
	ctx := context.Background()
	// Import the image once, outside the measurement, as a cached image.
	if _, err := d.EnsureImage(ctx, bin, "kvnode"); err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	var setup, first, teardown time.Duration
	b.ResetTimer()
	for i := range b.N {
		be, err := New(d, Options{Binary: bin, Nodes: 5, Replicas: 3, Protocol: "paxos"})
		if err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(root, fmt.Sprintf("run%d", i))
		b.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = be.Close(cctx)
			_, _ = d.Clean(cctx, dockerbackend.RunID(dir), false)
		})
		t0 := time.Now()
		cl, err := be.Setup(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := be.WaitHealthy(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		kv, err := cl.SUT.OpenKV(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := kv.Put(ctx, "bench", "1"); err != nil {
			b.Fatal(err)
		}
		kv.Close()
		t2 := time.Now()
		if err := be.Close(ctx); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		setup += t1.Sub(t0)
		first += t2.Sub(t0)
		teardown += t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(setup.Seconds()/n, "setup-s/op")
	b.ReportMetric(first.Seconds()/n, "first-write-s/op")
	b.ReportMetric(teardown.Seconds()/n, "teardown-s/op")
}
