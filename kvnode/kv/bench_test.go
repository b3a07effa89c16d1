package kv

import (
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func BenchmarkApply(b *testing.B) {
	s := NewStore()
	op := Op{Kind: Put, Key: "key-0001", Value: "value-0001"}.Encode()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Apply(uint64(i), replica.Request{ClientID: uint64(i%100 + 1), Seq: uint64(i + 1), Op: op})
	}
}

func BenchmarkOpCodec(b *testing.B) {
	op := Op{Kind: Cas, Key: "key-0001", Value: "value-0002", Old: "value-0001"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeOp(op.Encode()); err != nil {
			b.Fatal(err)
		}
	}
}
