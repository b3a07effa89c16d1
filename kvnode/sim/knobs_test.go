package sim

import (
	"testing"
	"time"
)

// TestKnobs: the seeded knobs keep the pump's rules (an acknowledgement
// waits less than a retry), keep an AbandonAfter the config sets, and
// give both the default and the short timers across seeds.
func TestKnobs(t *testing.T) {
	short, long, snaps := 0, 0, map[bool]int{}
	for seed := int64(1); seed <= 200; seed++ {
		p := shardPump(ShardedConfig{Seed: seed}, 4)
		switch {
		case p.AbandonAfter == defaultAbandonAfter:
			long++
		case p.AbandonAfter >= 80*time.Millisecond && p.AbandonAfter < 300*time.Millisecond:
			short++
			if p.AckDelay <= 0 || p.AckDelay >= p.RetryAfter {
				t.Fatalf("seed %d: ack delay %v, retry after %v: an ack must wait less than a retry", seed, p.AckDelay, p.RetryAfter)
			}
		default:
			t.Fatalf("seed %d: abandon after %v", seed, p.AbandonAfter)
		}
		if p := shardPump(ShardedConfig{Seed: seed, AbandonAfter: time.Second}, 4); p.AbandonAfter != time.Second {
			t.Fatalf("seed %d: the config's abandon timer became %v", seed, p.AbandonAfter)
		}
		n := snapshotEvery(seed)
		if n != 200 && (n < 30 || n > 100) {
			t.Fatalf("seed %d: snapshot every %d", seed, n)
		}
		snaps[n == 200]++
	}
	if short < 50 || long < 50 || snaps[true] < 50 || snaps[false] < 50 {
		t.Fatalf("200 seeds: %d short and %d default abandon timers, snapshot intervals %v: want both of each often", short, long, snaps)
	}
}
