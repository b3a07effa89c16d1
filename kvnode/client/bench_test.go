package client

import (
	"context"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// BenchmarkClientPut measures the client's own cost per op: puts against a
// loopback node that answers at once, so the time is the client's work
// plus one loopback round trip.
func BenchmarkClientPut(b *testing.B) {
	ok := kv.Reply{Ok: true}.Encode()
	addr := fakeNode(b, func(wire.Request) *wire.Response { return &wire.Response{Status: wire.StatusOK, Value: ok} })
	cl, err := New(Config{Nodes: map[replica.NodeID]string{1: addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if err := cl.Put(ctx, "k", "v"); err != nil {
			b.Fatal(err)
		}
	}
}
