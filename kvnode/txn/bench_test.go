package txn

import (
	"strconv"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
)

// benchGroups returns two groups at a configuration that splits the
// shards between them.
func benchGroups(b *testing.B) (*world, shardctl.Config) {
	w := newWorld(b, 1, 2)
	w.settleConfigs()
	return w, w.ctl.Latest()
}

// keysFor returns n keys whose shards group g owns.
func keysFor(cfg shardctl.Config, g replica.GroupID, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		k := "b" + strconv.Itoa(i)
		if cfg.Shards[shardctl.ShardOf(k)] == g {
			out = append(out, k)
		}
	}
	return out
}

// BenchmarkTxnSingleGroup: a 4-op transaction (2 appends, 2 reads) owned
// by one group, applied as one log entry, encoding and decoding included.
func BenchmarkTxnSingleGroup(b *testing.B) {
	w, cfg := benchGroups(b)
	ks := keysFor(cfg, 1, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k1, k2 := ks[i%64], ks[(i+1)%64]
		ops := []MicroOp{{F: Append, Key: k1, Value: "x"}, {F: Read, Key: k1}, {F: Append, Key: k2, Value: "y"}, {F: Read, Key: k2}}
		r, _ := DecodeReply(w.apply(1, 5, uint64(i+1), EncodeTxnRequest(ops)))
		if r.Status != StatusOK {
			b.Fatalf("%+v", r)
		}
		if i%64 == 63 { // keep lists short so the cost per op stays flat
			w.groups[1].data = [shardctl.NShards]map[string]string{}
			for _, s := range w.groups[1].Serving() {
				w.groups[1].data[s] = map[string]string{}
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
}

// BenchmarkTxnCrossGroup: the same transaction over two groups: the
// client request, prepare, vote, decide and acknowledgement, each applied
// through the state machines as the runtime would (5 log entries).
func BenchmarkTxnCrossGroup(b *testing.B) {
	w, cfg := benchGroups(b)
	k1, k2 := keysFor(cfg, 1, 64), keysFor(cfg, 2, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ops := []MicroOp{{F: Write, Key: k1[i%64], Value: "x"}, {F: Read, Key: k1[i%64]}, {F: Write, Key: k2[i%64], Value: "y"}, {F: Read, Key: k2[i%64]}}
		coord := cfg.Shards[lowestShard(ops)]
		seq := uint64(i + 1)
		w.apply(coord, 5, seq, EncodeTxnRequest(ops))
		for len(w.groups[coord].Outbox()) > 0 {
			for _, m := range w.groups[coord].Outbox() {
				w.apply(coord, 0, 0, w.apply(m.To, 0, 0, m.Op))
			}
		}
		r, _ := DecodeReply(w.apply(coord, 5, seq, EncodeTxnRequest(ops)))
		if r.Status != StatusOK {
			b.Fatalf("%+v", r)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
}

// BenchmarkTxnContention: two clients keep preparing conflicting
// cross-group transactions on one pair of keys; the second of every pair
// aborts at once (no-wait). Reports aborts per second.
func BenchmarkTxnContention(b *testing.B) {
	w, cfg := benchGroups(b)
	k1, k2 := keysFor(cfg, 1, 1)[0], keysFor(cfg, 2, 1)[0]
	ops := []MicroOp{{F: Write, Key: k1, Value: "x"}, {F: Write, Key: k2, Value: "y"}}
	coord := cfg.Shards[lowestShard(ops)]
	aborts := 0
	for i := 0; b.Loop(); i++ {
		seq := uint64(i + 1)
		w.apply(coord, 5, seq, EncodeTxnRequest(ops))
		r, _ := DecodeReply(w.apply(coord, 6, seq, EncodeTxnRequest(ops)))
		if r.Status == StatusAborted {
			aborts++
		}
		for len(w.groups[coord].Outbox()) > 0 {
			for _, m := range w.groups[coord].Outbox() {
				w.apply(coord, 0, 0, w.apply(m.To, 0, 0, m.Op))
			}
		}
	}
	if aborts != b.N {
		b.Fatalf("%d aborts in %d rounds", aborts, b.N)
	}
	b.ReportMetric(float64(aborts)/b.Elapsed().Seconds(), "aborts/s")
}
