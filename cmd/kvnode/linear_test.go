package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/linear"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
)

// TestLinearizableThroughLeaderKill runs concurrent register clients
// against three node processes, SIGKILLs the leader in the middle and
// restarts it, and checks the history with porcupine.
func TestLinearizableThroughLeaderKill(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	probe := tc.client()
	tc.waitWritable(probe, 10*time.Second)

	const workers = 6
	var mu sync.Mutex
	start := time.Now()
	var ops []history.Op
	add := func(op history.Op) {
		mu.Lock()
		defer mu.Unlock()
		op.Index, op.Time = int64(len(ops)), int64(time.Since(start))
		ops = append(ops, op)
	}
	complete := func(op history.Op, err error) history.Op {
		switch {
		case err == nil:
		case errors.Is(err, client.ErrUnknown):
			op.Type, op.Error = history.Info, err.Error()
		default:
			op.Type, op.Error = history.Fail, err.Error()
		}
		return op
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			proc := history.Process(w)
			cl := tc.client()
			for ctx.Err() == nil {
				key := int64(rng.IntN(2))
				k := strconv.FormatInt(key, 10)
				octx, ocancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
				var op history.Op
				var err error
				switch rng.IntN(3) {
				case 0:
					add(history.Op{Type: history.Invoke, Process: proc, F: "read", Value: []any{key, nil}})
					var r client.GetResult
					r, err = cl.Get(octx, k)
					op = history.Op{Type: history.Ok, Process: proc, F: "read", Value: []any{key, nil}}
					if err == nil && r.Found {
						v, _ := strconv.ParseInt(r.Value, 10, 64)
						op.Value = []any{key, v}
					}
				case 1:
					v := int64(rng.IntN(4))
					add(history.Op{Type: history.Invoke, Process: proc, F: "write", Value: []any{key, v}})
					err = cl.Put(octx, k, strconv.FormatInt(v, 10))
					op = history.Op{Type: history.Ok, Process: proc, F: "write", Value: []any{key, v}}
				default:
					old, v := int64(rng.IntN(4)), int64(rng.IntN(4))
					val := []any{key, []any{old, v}}
					add(history.Op{Type: history.Invoke, Process: proc, F: "cas", Value: val})
					var r client.CasResult
					r, err = cl.Cas(octx, k, strconv.FormatInt(old, 10), strconv.FormatInt(v, 10))
					op = history.Op{Type: history.Ok, Process: proc, F: "cas", Value: val}
					if err == nil && !r.Swapped {
						op.Type = history.Fail
					}
				}
				ocancel()
				add(complete(op, err))
				if errors.Is(err, client.ErrUnknown) {
					proc += workers // retired, as Jepsen does after an info
					cl = tc.client()
				}
			}
		})
	}
	time.Sleep(600 * time.Millisecond)
	leader := probe.Leader()
	tc.ps[leader-1].kill()
	time.Sleep(600 * time.Millisecond)
	tc.start(int(leader - 1))
	time.Sleep(800 * time.Millisecond)
	cancel()
	wg.Wait()

	res, err := linear.Check("cas-register", ops, linear.Options{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var oks, infos int
	for _, op := range ops {
		switch op.Type {
		case history.Ok:
			oks++
		case history.Info:
			infos++
		}
	}
	t.Logf("leader %d killed and restarted; %d ops (%d ok, %d info): %s", leader, len(ops)/2, oks, infos, res.Summary)
	if res.Valid != checker.Valid {
		t.Fatalf("not linearizable: %s\n%v", res.Summary, res.Anomalies)
	}
	if oks < 30 {
		t.Fatalf("only %d ops succeeded", oks)
	}
}
