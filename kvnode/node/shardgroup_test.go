package node

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// shardEnvLog is a ShardEnv that records what a ShardGroup asked of it,
// as one line per call.
type shardEnvLog struct {
	calls []string
	sends []Send[int]
	// answer, when set, makes Deliver report at once with it.
	answer []byte
	sg     *ShardGroup[int]
}

func (e *shardEnvLog) Kick() { e.calls = append(e.calls, "kick") }
func (e *shardEnvLog) WakeAt(at time.Duration) {
	e.calls = append(e.calls, "wake "+at.String())
}
func (e *shardEnvLog) Deliver(s Send[int]) {
	e.calls = append(e.calls, "deliver")
	e.sends = append(e.sends, s)
	if e.answer != nil {
		e.sg.Delivered(0, s, e.answer)
	}
}
func (e *shardEnvLog) Propose(req replica.Request) {
	e.calls = append(e.calls, "propose "+string(rune('0'+req.Seq)))
}

func TestShardGroup(t *testing.T) {
	const ms = time.Millisecond
	const self = 2
	lead := replica.Status{ID: self, Leader: self}
	follow := replica.Status{ID: self, Leader: 1}
	cfg1 := shardctl.Reply{Config: shardctl.Config{Num: 1}}.Encode()
	type step func(sg *ShardGroup[int], env *shardEnvLog)
	observe := func(st replica.Status) step {
		return func(sg *ShardGroup[int], _ *shardEnvLog) { sg.Observe(st) }
	}
	released := func(results int) step {
		return func(sg *ShardGroup[int], _ *shardEnvLog) {
			sg.Released(&replica.Ready{Results: make([]replica.Result, results)})
		}
	}
	tick := func(now time.Duration, st replica.Status) step {
		return func(sg *ShardGroup[int], _ *shardEnvLog) { sg.Tick(now, st, txn.NewGroup(3)) }
	}
	timer := func(now time.Duration, st replica.Status) step {
		return func(sg *ShardGroup[int], _ *shardEnvLog) { sg.Timer(now, st, txn.NewGroup(3)) }
	}
	// delivered ends the last send with answer.
	delivered := func(now time.Duration, answer []byte) step {
		return func(sg *ShardGroup[int], env *shardEnvLog) {
			sg.Delivered(now, env.sends[len(env.sends)-1], answer)
		}
	}
	for _, tc := range []struct {
		name   string
		dial   error  // Dial's error
		answer []byte // Deliver answers at once
		steps  []step
		want   []string
	}{
		{
			name:  "the first look asks for a tick, the same leader again does not",
			steps: []step{observe(follow), observe(follow)},
			want:  []string{"kick"},
		},
		{
			name:  "kicks coalesce until the tick runs",
			steps: []step{observe(follow), released(1), observe(lead)},
			want:  []string{"kick"},
		},
		{
			name:  "a leader change asks for a tick",
			steps: []step{observe(follow), tick(0, follow), observe(lead)},
			want:  []string{"kick", "kick"},
		},
		{
			name:  "results ask for a tick, a Ready without results does not",
			steps: []step{observe(follow), tick(0, follow), released(0), released(2)},
			want:  []string{"kick", "kick"},
		},
		{
			name:  "a follower delivers and proposes nothing",
			steps: []step{tick(0, follow), tick(time.Second, follow)},
			want:  nil,
		},
		{
			name:  "a leader asks the controller, proposes the configuration it answers, and polls again later",
			steps: []step{tick(0, lead), delivered(5*ms, cfg1), tick(5*ms, lead)},
			want:  []string{"deliver", "propose 1", "kick", "wake 50ms"},
		},
		{
			name:  "a failed delivery proposes nothing",
			steps: []step{tick(0, lead), delivered(5*ms, nil)},
			want:  []string{"deliver", "kick"},
		},
		{
			name:   "a delivery may end within Deliver",
			answer: cfg1,
			steps:  []step{tick(0, lead)},
			want:   []string{"deliver", "propose 1", "kick"},
		},
		{
			name:  "a send with no client ends at once, without Deliver",
			dial:  errors.New("no such group"),
			steps: []step{tick(0, lead)},
			want:  []string{"kick"},
		},
		{
			name:   "the timer is re-armed only for an earlier time",
			answer: []byte("x"), // not a configuration: nothing to propose
			steps:  []step{tick(0, lead), tick(10*ms, lead), tick(60*ms, lead), tick(61*ms, lead), timer(62*ms, lead)},
			want:   []string{"deliver", "kick", "wake 50ms", "deliver", "kick", "wake 110ms"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &shardEnvLog{answer: tc.answer}
			sg := &ShardGroup[int]{
				Self: self,
				Env:  env,
				Runtime: ShardRuntime[int]{
					Pump:    ShardPump{Controller: 9, ConfigPollEvery: 50 * ms},
					Session: 7,
					Dial:    func(replica.GroupID) (int, error) { return 1, tc.dial },
				},
			}
			env.sg = sg
			for _, s := range tc.steps {
				s(sg, env)
			}
			if !slices.Equal(env.calls, tc.want) {
				t.Fatalf("calls:\n  %s\nwant:\n  %s", strings.Join(env.calls, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}
