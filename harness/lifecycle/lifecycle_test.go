package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
)

// gen draws numbered writes and ends with reads of keys a and b.
type gen struct{ n int }

func (g *gen) Next() workloads.Invocation {
	g.n++
	return workloads.Invocation{F: "write", Value: g.n}
}

func (g *gen) FinalReads() []workloads.Invocation {
	return []workloads.Invocation{{F: "read", Value: "a"}, {F: "read", Value: "b"}}
}

func newLife(t *testing.T, n int, lim Limits) *Lifecycle {
	t.Helper()
	if lim.FinalReads == 0 {
		lim.FinalReads = 10 * time.Second
	}
	l, err := New(&gen{}, n, lim)
	if err != nil {
		t.Fatal(err)
	}
	l.Start(time.Second)
	return l
}

// turn is worker's turn at after Start: it asks Next, or leaves on its
// own.
type turn struct {
	worker int
	at     time.Duration
	leave  bool
}

func TestWorkloadPhaseEnds(t *testing.T) {
	ok := workloads.Completion{Type: history.Ok}
	for _, tc := range []struct {
		name      string
		lim       Limits
		turns     []turn
		invoked   int64
		stopAfter int // the turn after which the nemesis is told to stop
		end       time.Duration
	}{
		{name: "op budget", lim: Limits{Ops: 2}, turns: []turn{{0, 1, false}, {1, 2, false}, {0, 3, false}, {1, 4, false}}, invoked: 2, stopAfter: 1, end: 4},
		{name: "time limit", lim: Limits{Time: 10}, turns: []turn{{0, 1, false}, {1, 9, false}, {0, 10, false}, {1, 12, false}}, invoked: 2, stopAfter: 3, end: 12},
		{name: "workers leave", lim: Limits{}, turns: []turn{{0, 1, false}, {0, 2, true}, {1, 3, false}, {1, 5, true}}, invoked: 2, stopAfter: 3, end: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLife(t, 2, tc.lim)
			for i, turn := range tc.turns {
				now := time.Second + turn.at
				if turn.leave {
					l.Leave(turn.worker, now)
				} else if inv, ok2 := l.Next(turn.worker, now); ok2 {
					l.Complete(turn.worker, inv, ok)
				}
				if got, want := l.StopNemesis(), i >= tc.stopAfter; got != want {
					t.Fatalf("after turn %d: StopNemesis %v, want %v", i, got, want)
				}
				if got, want := l.Phase() == Heal, i == len(tc.turns)-1; got != want {
					t.Fatalf("after turn %d: phase %v", i, l.Phase())
				}
			}
			tally := l.Tally()
			if tally.Phase.Invoked != tc.invoked || tally.Phase.Ok != tc.invoked {
				t.Fatalf("tally %+v, want %d invoked and ok", tally.Phase, tc.invoked)
			}
			if tally.WorkloadStart != time.Second || tally.WorkloadEnd != time.Second+tc.end {
				t.Fatalf("workload phase %v..%v, want 1s..%v", tally.WorkloadStart, tally.WorkloadEnd, time.Second+tc.end)
			}
			if _, ok2 := l.Next(0, time.Second+tc.end); ok2 {
				t.Fatal("a worker drew an op after the workload phase")
			}
		})
	}
}

func TestFinalReads(t *testing.T) {
	l := newLife(t, 2, Limits{Ops: 1, FinalReads: 10 * time.Second, Retry: 200 * time.Millisecond})
	inv, _ := l.Next(0, time.Second)
	// Worker 0's op is unknown: its process is retired.
	l.Complete(0, inv, workloads.Completion{Type: history.Info})
	l.Next(0, 2*time.Second)
	l.Next(1, 2*time.Second)
	if _, _, ok := l.FinalRead(2 * time.Second); ok {
		t.Fatal("a final read before healing")
	}
	l.Healed(3 * time.Second)
	type attempt struct {
		read  string
		proc  history.Process
		typ   history.Type
		pause time.Duration
	}
	for i, a := range []attempt{
		{"a", 3, history.Fail, 200 * time.Millisecond}, // above worker 0's retired 0 and new 2
		{"a", 3, history.Info, 200 * time.Millisecond},
		{"a", 4, history.Ok, 0},
		{"b", 4, history.Ok, 0},
	} {
		inv, proc, ok := l.FinalRead(4 * time.Second)
		if !ok || inv.Value != a.read || proc != a.proc {
			t.Fatalf("attempt %d: %v on %v (%v), want read %s on %v", i, inv, proc, ok, a.read, a.proc)
		}
		if _, pause := l.CompleteFinal(workloads.Completion{Type: a.typ}); pause != a.pause {
			t.Fatalf("attempt %d: pause %v, want %v", i, pause, a.pause)
		}
	}
	if _, _, ok := l.FinalRead(5 * time.Second); ok || l.Phase() != Done {
		t.Fatalf("final reads not over after both succeeded: %v", l.Phase())
	}
	if tally := l.Tally(); tally.Final != (workloads.Tally{Invoked: 4, Ok: 2, Fail: 1, Info: 1}) || len(tally.FinalFailed) != 0 {
		t.Fatalf("tally %+v", tally)
	}
}

func TestFinalReadsDeadline(t *testing.T) {
	l := newLife(t, 1, Limits{Ops: 1, FinalReads: 10 * time.Second})
	l.Next(0, time.Second)
	l.Next(0, time.Second)
	l.Healed(2 * time.Second)
	l.FinalRead(2 * time.Second)
	l.CompleteFinal(workloads.Completion{Type: history.Info, Error: "timeout"})
	if _, _, ok := l.FinalRead(12 * time.Second); ok {
		t.Fatal("a final read past the deadline")
	}
	failed := l.Tally().FinalFailed
	if len(failed) != 2 || !strings.Contains(failed[0], "read a") || !strings.Contains(failed[0], "info: timeout") || !strings.Contains(failed[1], "never attempted") {
		t.Fatalf("failed reads: %q", failed)
	}
}

func TestLimitsRefused(t *testing.T) {
	for _, lim := range []Limits{{}, {FinalReads: time.Second, Time: -1}, {FinalReads: time.Second, Retry: -1}, {FinalReads: time.Second, Ops: -1}} {
		if _, err := New(&gen{}, 1, lim); err == nil {
			t.Errorf("limits %+v accepted", lim)
		}
	}
}
