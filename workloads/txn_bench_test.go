package workloads_test

import (
	"context"
	"testing"

	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memtxn"
)

// BenchmarkTxnGenerators measures drawing one invocation.
func BenchmarkTxnGenerators(b *testing.B) {
	for _, w := range txnWorkloads() {
		b.Run(w.Name(), func(b *testing.B) {
			g := w.NewGenerator(1)
			for b.Loop() {
				g.Next()
			}
		})
	}
}

// BenchmarkTxnClientInvoke measures one invocation through a workload
// client against the in-memory store: shaping, the transaction, and
// shaping the completion.
func BenchmarkTxnClientInvoke(b *testing.B) {
	for _, w := range txnWorkloads() {
		b.Run(w.Name(), func(b *testing.B) {
			s, _ := memtxn.New(memtxn.Options{})
			c, err := w.NewClient(context.Background(), s, 0)
			if err != nil {
				b.Fatal(err)
			}
			g := w.NewGenerator(1)
			invs := make([]workloads.Invocation, 4096)
			for i := range invs {
				invs[i] = g.Next()
			}
			i := 0
			for b.Loop() {
				c.Invoke(context.Background(), invs[i%len(invs)])
				i++
			}
		})
	}
}
