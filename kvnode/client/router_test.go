package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

var t0 = time.Unix(1000, 0)

// ev is one event fed to a Router in a scripted test.
type ev struct {
	at   time.Duration // since t0
	kind string        // "ok", "status", "txn", "ctl", "lost", "timeout", "cancel", "stale"
	st   wire.Status   // status
	hint replica.NodeID
	txn  txn.Reply // txn
	ctl  shardctl.Config
	sent bool // lost: delivered; cancel: sent
}

// want is the action expected after an event.
type want struct {
	kind   ActionKind
	node   replica.NodeID  // Send
	group  replica.GroupID // Send
	seq    uint64          // Send (0: not checked)
	wait   time.Duration   // Send/Wait timeout (0: not checked)
	result Result          // Done
	cause  string          // Done: a substring of the cause
}

type step struct {
	ev   ev
	want want
}

const (
	gData replica.GroupID = 1
	gCtl  replica.GroupID = 9
	gB    replica.GroupID = 2
)

// testRouter has client id 3, so with members {1,2,3} it first guesses
// node 1 (3 % 3 = 0).
func testRouter(t *testing.T) *Router {
	t.Helper()
	r, err := NewRouter(RouterConfig{
		ClientID:       3,
		Groups:         map[replica.GroupID][]replica.NodeID{gData: {3, 1, 2}, gB: {4, 5, 6}, gCtl: {7, 8, 9}},
		Controller:     gCtl,
		AttemptTimeout: 100 * time.Millisecond,
		BackoffMin:     2 * time.Millisecond,
		BackoffMax:     8 * time.Millisecond,
		RetryPause:     5 * time.Millisecond,
		AbortPause:     20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func encodeTxnReply(r txn.Reply) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

// feed delivers e to r as an answer to (or event about) the last action.
func feed(r *Router, last Action, e ev) Action {
	now := t0.Add(e.at)
	resp := wire.Response{ID: last.Request.ID}
	switch e.kind {
	case "ok":
		resp.Value = []byte("v")
		return r.Reply(now, last.Node, resp)
	case "status":
		resp.Status, resp.Leader, resp.Err = e.st, uint32(e.hint), "refused"
		return r.Reply(now, last.Node, resp)
	case "txn":
		resp.Value = encodeTxnReply(e.txn)
		return r.Reply(now, last.Node, resp)
	case "garbage":
		resp.Value = []byte("{not json")
		return r.Reply(now, last.Node, resp)
	case "ctl":
		resp.Value = shardctl.Reply{Config: e.ctl}.Encode()
		return r.Reply(now, last.Node, resp)
	case "stale":
		resp.ID--
		return r.Reply(now, last.Node, resp)
	case "othernode":
		return r.Reply(now, last.Node+1, resp)
	case "lost":
		return r.Lost(now, last.Node, errors.New("connection reset"), e.sent)
	case "timeout":
		return r.Timeout(now)
	case "cancel":
		return r.Cancel(now, errors.New("caller gave up"), e.sent)
	}
	panic("unknown event " + e.kind)
}

func check(t *testing.T, i int, got Action, w want) {
	t.Helper()
	if got.Kind != w.kind {
		t.Fatalf("step %d: action %s (%+v), want %s", i, got.Kind, got, w.kind)
	}
	switch got.Kind {
	case Send:
		if got.Node != w.node || replica.GroupID(got.Request.Group) != w.group {
			t.Fatalf("step %d: send to group %d node %d, want group %d node %d", i, got.Request.Group, got.Node, w.group, w.node)
		}
		if w.seq != 0 && got.Request.Seq != w.seq {
			t.Fatalf("step %d: seq %d, want %d", i, got.Request.Seq, w.seq)
		}
		if got.Request.ClientID != 3 && got.Request.ClientID != 77 {
			t.Fatalf("step %d: client id %d", i, got.Request.ClientID)
		}
		if w.wait != 0 && got.Timeout != w.wait {
			t.Fatalf("step %d: attempt timeout %v, want %v", i, got.Timeout, w.wait)
		}
	case Wait:
		if w.wait != 0 && got.Timeout != w.wait {
			t.Fatalf("step %d: wait %v, want %v", i, got.Timeout, w.wait)
		}
	case Done:
		if got.Outcome.Result != w.result {
			t.Fatalf("step %d: result %s (cause %v), want %s", i, got.Outcome.Result, got.Outcome.Cause, w.result)
		}
		if w.cause != "" && (got.Outcome.Cause == nil || !strings.Contains(got.Outcome.Cause.Error(), w.cause)) {
			t.Fatalf("step %d: cause %v, want it to mention %q", i, got.Outcome.Cause, w.cause)
		}
	}
}

// run starts op and plays steps, checking every action; the first want is
// the answer to Start.
func play(t *testing.T, r *Router, op Op, first want, steps []step) Action {
	t.Helper()
	act := r.Start(t0, op)
	check(t, 0, act, first)
	lastSend := act
	for i, s := range steps {
		got := feed(r, lastSend, s.ev)
		check(t, i+1, got, s.want)
		if got.Kind == Send {
			lastSend = got
		}
	}
	return lastSend
}

func send(n replica.NodeID, seq uint64) want {
	return want{kind: Send, node: n, group: gData, seq: seq}
}
func done(r Result, cause string) want { return want{kind: Done, result: r, cause: cause} }

func TestRouterGroupDecisions(t *testing.T) {
	dl := t0.Add(time.Second)
	notLeader := func(at time.Duration, hint replica.NodeID) ev {
		return ev{at: at, kind: "status", st: wire.StatusNotLeader, hint: hint}
	}
	cases := []struct {
		name  string
		op    Op
		first want
		steps []step
	}{
		{"ok at first try", Op{Group: gData, Deadline: dl}, send(1, 1), []step{
			{ev{kind: "ok"}, done(OK, "")},
		}},
		{"hint followed with the same seq", Op{Group: gData, Deadline: dl}, send(1, 1), []step{
			{notLeader(0, 3), send(3, 1)},
			{ev{kind: "ok"}, done(OK, "")},
		}},
		{"no hint: next member", Op{Group: gData, Deadline: dl}, send(1, 1), []step{
			{notLeader(0, 0), send(2, 1)},
			{notLeader(0, 0), send(3, 1)},
			{ev{kind: "ok"}, done(OK, "")},
		}},
		{"a hint naming the node itself or a stranger is ignored", Op{Group: gData, Deadline: dl}, send(1, 1), []step{
			{notLeader(0, 1), send(2, 1)},
			{notLeader(0, 42), send(3, 1)},
			{ev{kind: "ok"}, done(OK, "")},
		}},
		{"every member refuses: back off, doubling up to the cap", Op{Group: gData, Deadline: dl}, send(1, 1), []step{
			{notLeader(0, 0), send(2, 1)},
			{notLeader(0, 0), send(3, 1)},
			{notLeader(0, 0), want{kind: Wait, wait: 2 * time.Millisecond}},
			{ev{at: 2 * time.Millisecond, kind: "timeout"}, send(1, 1)},
			{notLeader(2*time.Millisecond, 0), send(2, 1)},
			{notLeader(2*time.Millisecond, 0), send(3, 1)},
			{notLeader(2*time.Millisecond, 0), want{kind: Wait, wait: 4 * time.Millisecond}},
			{ev{at: 6 * time.Millisecond, kind: "timeout"}, send(1, 1)},
			{notLeader(6*time.Millisecond, 0), send(2, 1)},
			{notLeader(6*time.Millisecond, 0), send(3, 1)},
			{notLeader(6*time.Millisecond, 0), want{kind: Wait, wait: 8 * time.Millisecond}},
			{ev{at: 14 * time.Millisecond, kind: "timeout"}, send(1, 1)},
			{notLeader(14*time.Millisecond, 0), send(2, 1)},
			{notLeader(14*time.Millisecond, 0), send(3, 1)},
			{notLeader(14*time.Millisecond, 0), want{kind: Wait, wait: 8 * time.Millisecond}},
		}},
		{"only refusals before the deadline: failed", Op{Group: gData, Deadline: t0.Add(3 * time.Millisecond)}, send(1, 1), []step{
			{notLeader(0, 0), send(2, 1)},
			{ev{kind: "status", st: wire.StatusNoGroup}, send(3, 1)},
			{ev{kind: "status", st: wire.StatusOverloaded}, want{kind: Wait, wait: 2 * time.Millisecond}},
			{ev{at: 2 * time.Millisecond, kind: "timeout"}, send(1, 1)},
			{notLeader(3*time.Millisecond, 0), done(Failed, "deadline")},
		}},
		{"an attempt timed out: unknown, even after later refusals", Op{Group: gData, Deadline: t0.Add(150 * time.Millisecond)}, want{kind: Send, node: 1, group: gData, seq: 1, wait: 100 * time.Millisecond}, []step{
			{ev{at: 100 * time.Millisecond, kind: "timeout"}, want{kind: Send, node: 2, group: gData, seq: 1, wait: 50 * time.Millisecond}},
			{notLeader(110*time.Millisecond, 0), send(3, 1)},
			{notLeader(120*time.Millisecond, 0), want{kind: Wait}},
			{ev{at: 150 * time.Millisecond, kind: "timeout"}, done(Unknown, "deadline")},
		}},
		{"the deadline caps the attempt timer", Op{Group: gData, Deadline: t0.Add(30 * time.Millisecond)}, want{kind: Send, node: 1, group: gData, wait: 30 * time.Millisecond}, []step{
			{ev{at: 30 * time.Millisecond, kind: "timeout"}, done(Unknown, "deadline")},
		}},
		{"connection refused everywhere: failed", Op{Group: gData, Deadline: t0.Add(time.Millisecond)}, send(1, 1), []step{
			{ev{kind: "lost"}, send(2, 1)},
			{ev{kind: "lost"}, send(3, 1)},
			{ev{kind: "lost"}, want{kind: Wait, wait: time.Millisecond}},
			{ev{at: time.Millisecond, kind: "timeout"}, done(Failed, "connection reset")},
		}},
		{"connection lost after sending: unknown", Op{Group: gData, Deadline: t0.Add(time.Millisecond)}, send(1, 1), []step{
			{ev{kind: "lost", sent: true}, send(2, 1)},
			{ev{kind: "lost"}, send(3, 1)},
			{ev{kind: "lost"}, want{kind: Wait}},
			{ev{at: time.Millisecond, kind: "timeout"}, done(Unknown, "")},
		}},
		{"a node answered unknown: unknown", Op{Group: gData, Deadline: t0.Add(time.Millisecond)}, send(1, 1), []step{
			{ev{kind: "status", st: wire.StatusUnknown}, send(2, 1)},
			{notLeader(time.Millisecond, 0), done(Unknown, "")},
		}},
		{"a status this client does not know proves nothing", Op{Group: gData, Deadline: t0.Add(time.Millisecond)}, send(1, 1), []step{
			{ev{kind: "status", st: wire.Status(99)}, send(2, 1)},
			{notLeader(time.Millisecond, 0), done(Unknown, "")},
		}},
		{"cancelled with the attempt out: unknown", Op{Group: gData}, send(1, 1), []step{
			{ev{kind: "cancel", sent: true}, done(Unknown, "caller gave up")},
		}},
		{"cancelled before the attempt went out: failed", Op{Group: gData}, send(1, 1), []step{
			{ev{kind: "cancel"}, done(Failed, "caller gave up")},
		}},
		{"cancelled in a pause after refusals: failed", Op{Group: gData}, send(1, 1), []step{
			{notLeader(0, 0), send(2, 1)},
			{notLeader(0, 0), send(3, 1)},
			{notLeader(0, 0), want{kind: Wait}},
			{ev{kind: "cancel", sent: true}, done(Failed, "not leader")},
		}},
		{"cancelled in a pause after a timeout: unknown", Op{Group: gData}, send(1, 1), []step{
			{ev{kind: "timeout"}, send(2, 1)},
			{notLeader(0, 0), send(3, 1)},
			{notLeader(0, 0), want{kind: Wait}},
			{ev{kind: "cancel"}, done(Unknown, "")},
		}},
		{"answers to other attempts or from other nodes are ignored", Op{Group: gData, Deadline: dl}, send(1, 1), []step{
			{ev{kind: "stale"}, want{kind: Await}},
			{ev{kind: "othernode"}, want{kind: Await}},
			{ev{kind: "ok"}, done(OK, "")},
		}},
		{"deadline already passed: failed, nothing sent", Op{Group: gData, Deadline: t0}, done(Failed, "deadline"), nil},
		{"unknown group", Op{Group: 5}, done(Failed, "group 5 is unknown"), nil},
		{"shard out of range", Op{Sharded: true, Shard: shardctl.NShards}, done(Failed, "out of range"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testRouter(t)
			play(t, r, c.op, c.first, c.steps)
		})
	}
}

func TestRouterRemembersLeaderAndCountsSeqs(t *testing.T) {
	r := testRouter(t)
	play(t, r, Op{Group: gData}, send(1, 1), []step{
		{ev{kind: "status", st: wire.StatusNotLeader, hint: 2}, send(2, 1)},
		{ev{kind: "ok"}, done(OK, "")},
	})
	if r.Leader(gData) != 2 || r.Busy() {
		t.Fatalf("leader %d busy %v, want 2 and idle", r.Leader(gData), r.Busy())
	}
	play(t, r, Op{Group: gData}, send(2, 2), []step{{ev{kind: "ok"}, done(OK, "")}})
	// The controller keeps its own sequence.
	play(t, r, Op{Group: gCtl}, want{kind: Send, group: gCtl, node: 7, seq: 1}, []step{{ev{kind: "ok"}, done(OK, "")}})
	if err := r.NewSession(77); err != nil {
		t.Fatal(err)
	}
	act := play(t, r, Op{Group: gData}, send(2, 1), nil)
	if act.Request.ClientID != 77 {
		t.Fatalf("new session's request has client id %d", act.Request.ClientID)
	}
	if err := r.NewSession(78); err == nil {
		t.Fatal("NewSession accepted while an op is in progress")
	}
	if a := r.Start(t0, Op{Group: gData}); a.Kind != Done || a.Outcome.Result != Failed {
		t.Fatalf("second Start while busy: %+v", a)
	}
	if !r.Busy() {
		t.Fatal("the refused Start ended the op in progress")
	}
}

func txnSend(g replica.GroupID, n replica.NodeID, seq uint64) want {
	return want{kind: Send, group: g, node: n, seq: seq}
}

func ctlSend(n replica.NodeID) want { return want{kind: Send, group: gCtl, node: n} }

func TestRouterShardedDecisions(t *testing.T) {
	cfgA := shardctl.Config{Num: 1, Groups: map[replica.GroupID][]replica.NodeID{gData: {1, 2, 3}}}
	cfgB := shardctl.Config{Num: 2, Groups: map[replica.GroupID][]replica.NodeID{gB: {4, 5, 6}}}
	for i := range cfgA.Shards {
		cfgA.Shards[i], cfgB.Shards[i] = gData, gB
	}
	res := []txn.MicroResult{{F: txn.Write, Key: "k", Value: "1"}}
	tx := func(at time.Duration, st txn.Status) ev {
		return ev{at: at, kind: "txn", txn: txn.Reply{Status: st, Results: res, Err: string(st)}}
	}
	dl := t0.Add(time.Second)
	op := Op{Sharded: true, Shard: 3, Body: []byte("t"), Deadline: dl}
	cases := []struct {
		name  string
		op    Op
		steps []step
	}{
		{"learns the configuration, then commits", op, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusOK), done(OK, "")},
		}},
		{"wrong group: refresh and retry the same seq at the new owner", op, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusWrongGroup), ctlSend(7)},
			{ev{kind: "ctl", ctl: cfgB}, txnSend(gB, 4, 1)},
			{tx(0, txn.StatusOK), done(OK, "")},
		}},
		{"an older configuration does not replace a newer one", op, []step{
			{ev{kind: "ctl", ctl: cfgB}, txnSend(gB, 4, 1)},
			{tx(0, txn.StatusWrongGroup), ctlSend(7)},
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gB, 4, 1)},
		}},
		{"no owner yet: ask again after a pause", op, []step{
			{ev{kind: "ctl", ctl: shardctl.Config{}}, want{kind: Wait, wait: 2 * time.Millisecond}},
			{ev{at: 2 * time.Millisecond, kind: "timeout"}, ctlSend(7)},
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
		}},
		{"the controller's refusals are followed like any group's", op, []step{
			{ev{kind: "status", st: wire.StatusNotLeader, hint: 9}, ctlSend(9)},
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
		}},
		{"a controller that cannot answer: pause, then ask again", Op{Sharded: true, Shard: 3, Deadline: t0.Add(5 * time.Millisecond)}, []step{
			{ev{kind: "timeout"}, ctlSend(8)},
			{ev{kind: "lost"}, ctlSend(9)},
			{ev{kind: "status", st: wire.StatusNotLeader}, want{kind: Wait, wait: 2 * time.Millisecond}},
			{ev{at: 2 * time.Millisecond, kind: "timeout"}, ctlSend(7)},
			// Only controller queries went out: nothing could apply.
			{ev{at: 5 * time.Millisecond, kind: "timeout"}, done(Failed, "deadline")},
		}},
		{"aborted: retried as a new request", op, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusAborted), want{kind: Wait}},
			{ev{at: 20 * time.Millisecond, kind: "timeout"}, txnSend(gData, 1, 2)},
			{tx(20*time.Millisecond, txn.StatusOK), done(OK, "")},
		}},
		{"aborted after a timeout, then the deadline: failed (the abort settled the request)", Op{Sharded: true, Shard: 3, Deadline: t0.Add(200 * time.Millisecond)}, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{ev{at: 100 * time.Millisecond, kind: "timeout"}, txnSend(gData, 2, 1)},
			{tx(100*time.Millisecond, txn.StatusAborted), want{kind: Wait}},
			{ev{at: 200 * time.Millisecond, kind: "timeout"}, done(Failed, "aborted")},
		}},
		{"aborted, retried, then the retry timed out: unknown", Op{Sharded: true, Shard: 3, Deadline: t0.Add(150 * time.Millisecond)}, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusAborted), want{kind: Wait}},
			{ev{at: 30 * time.Millisecond, kind: "timeout"}, txnSend(gData, 1, 2)},
			{ev{at: 130 * time.Millisecond, kind: "timeout"}, txnSend(gData, 2, 2)},
			{ev{at: 150 * time.Millisecond, kind: "timeout"}, done(Unknown, "")},
		}},
		{"pending (not held): ask again with the same seq", Op{Sharded: true, Shard: 3, Deadline: t0.Add(7 * time.Millisecond)}, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusPending), want{kind: Wait, wait: 5 * time.Millisecond}},
			{ev{at: 5 * time.Millisecond, kind: "timeout"}, txnSend(gData, 1, 1)},
			{ev{at: 7 * time.Millisecond, kind: "timeout"}, done(Unknown, "")},
		}},
		{"not started yet: ask again, and unknown at the deadline", Op{Sharded: true, Shard: 3, Deadline: t0.Add(7 * time.Millisecond)}, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusRetry), want{kind: Wait, wait: 5 * time.Millisecond}},
			{ev{at: 5 * time.Millisecond, kind: "timeout"}, txnSend(gData, 1, 1)},
			{ev{at: 5 * time.Millisecond, kind: "status", st: wire.StatusNotLeader}, txnSend(gData, 2, 1)},
			{ev{at: 7 * time.Millisecond, kind: "status", st: wire.StatusNotLeader}, done(Unknown, "deadline")},
		}},
		{"check failed: failed", op, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusCheckFailed), done(Failed, "check failed")},
		}},
		{"undecodable request: failed", op, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{tx(0, txn.StatusError), done(Failed, "error")},
		}},
		{"unreadable answer: unknown", op, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{ev{kind: "garbage"}, done(Unknown, "")},
		}},
		{"no member of the owner answers: refresh after a pause", op, []step{
			{ev{kind: "ctl", ctl: cfgA}, txnSend(gData, 1, 1)},
			{ev{kind: "lost"}, txnSend(gData, 2, 1)},
			{ev{kind: "lost"}, txnSend(gData, 3, 1)},
			{ev{kind: "lost"}, want{kind: Wait}},
			{ev{at: 2 * time.Millisecond, kind: "timeout"}, ctlSend(7)},
			{ev{kind: "ctl", ctl: cfgB}, txnSend(gB, 4, 1)},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testRouter(t)
			act := play(t, r, c.op, ctlSend(7), c.steps)
			_ = act
		})
	}
	t.Run("a committed outcome carries the decoded reply and the abort count", func(t *testing.T) {
		r := testRouter(t)
		act := r.Start(t0, op)
		act = feed(r, act, ev{kind: "ctl", ctl: cfgA})
		act = feed(r, act, tx(0, txn.StatusAborted))
		act = r.Timeout(t0.Add(20 * time.Millisecond))
		act = feed(r, act, tx(20*time.Millisecond, txn.StatusOK))
		o := act.Outcome
		if o.Result != OK || len(o.Txn.Results) != 1 || o.Txn.Results[0].Value != "1" || o.Aborts != 1 || o.Attempts != 3 || o.Seq != 2 || o.Group != gData {
			t.Fatalf("outcome %+v", o)
		}
		if err := o.Err("txn"); err != nil {
			t.Fatalf("Err of an OK outcome: %v", err)
		}
		if r.Config().Num != 1 {
			t.Fatalf("configuration %d, want 1", r.Config().Num)
		}
		// The configuration is kept: the next op goes straight to the owner.
		if a := r.Start(t0, op); a.Kind != Send || replica.GroupID(a.Request.Group) != gData || a.Request.Seq != 3 {
			t.Fatalf("next op: %+v", a)
		}
	})
}

func TestRouterAbortPauseSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for id := uint64(1); id < 200; id++ {
		r, err := NewRouter(RouterConfig{ClientID: id, Groups: map[replica.GroupID][]replica.NodeID{1: {1}}, AbortPause: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r.c.seq = 5
		d := r.abortPause()
		if d < time.Millisecond || d > 20*time.Millisecond {
			t.Fatalf("pause %v out of [1ms, 20ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("abort pauses take only %d values over 199 sessions", len(seen))
	}
}

func TestNewRouterValidates(t *testing.T) {
	cases := []struct {
		cfg  RouterConfig
		want string
	}{
		{RouterConfig{Groups: map[replica.GroupID][]replica.NodeID{1: {1}}}, "client id 0"},
		{RouterConfig{ClientID: 1}, "no groups"},
		{RouterConfig{ClientID: 1, Groups: map[replica.GroupID][]replica.NodeID{1: {}}}, "no members"},
		{RouterConfig{ClientID: 1, Groups: map[replica.GroupID][]replica.NodeID{1: {0, 1}}}, "reserved"},
		{RouterConfig{ClientID: 1, Groups: map[replica.GroupID][]replica.NodeID{1: {1}}, Controller: 2}, "controller group 2"},
	}
	for _, c := range cases {
		if _, err := NewRouter(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewRouter(%+v): %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
}

// TestRouterOutcomeRule plays random event sequences against the Router
// and checks its verdict against an independent account of what may have
// reached a node: Failed only when no attempt of the op's current request
// can have been applied, never OK without an OK answer, and every op ends
// by its deadline.
func TestRouterOutcomeRule(t *testing.T) {
	seeds := 3000
	if testing.Short() {
		seeds = 500
	}
	cfg := shardctl.Config{Num: 1, Groups: map[replica.GroupID][]replica.NodeID{gData: {1, 2, 3}, gB: {4, 5, 6}}}
	for i := range cfg.Shards {
		cfg.Shards[i] = replica.GroupID(1 + i%2)
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		r := testRouter(t)
		for opn := 0; opn < 5; opn++ {
			sharded := rng.IntN(2) == 0
			op := Op{Group: gData, Deadline: t0.Add(time.Duration(rng.IntN(200)) * time.Millisecond)}
			if sharded {
				op = Op{Sharded: true, Shard: rng.IntN(shardctl.NShards), Deadline: op.Deadline}
			}
			now := t0
			// Deadlines are relative to each op's start.
			op.Deadline = op.Deadline.Add(time.Duration(opn) * time.Second)
			now = now.Add(time.Duration(opn) * time.Second)
			act := r.Start(now, op)
			maybe := false // some attempt of the current request may have been applied
			okSeen := false
			var last Action
			for steps := 0; act.Kind != Done; steps++ {
				if steps > 10000 {
					t.Fatalf("seed %d op %d: no outcome after 10000 steps", seed, opn)
				}
				switch act.Kind {
				case Send:
					last = act
					dataAttempt := replica.GroupID(act.Request.Group) != gCtl || !sharded && op.Group == gCtl
					if act.Request.Seq == 0 {
						t.Fatalf("seed %d: seq 0 sent", seed)
					}
					resp := wire.Response{ID: act.Request.ID}
					switch x := rng.IntN(12); {
					case x == 0:
						now = now.Add(act.Timeout)
						maybe = maybe || dataAttempt
						act = r.Timeout(now)
					case x == 1:
						d := rng.IntN(2) == 0
						maybe = maybe || d && dataAttempt
						act = r.Lost(now, act.Node, errors.New("reset"), d)
					case x == 2:
						resp.Status = wire.StatusUnknown
						maybe = maybe || dataAttempt
						act = r.Reply(now, act.Node, resp)
					case x <= 5:
						resp.Status = wire.StatusNotLeader
						resp.Leader = uint32(rng.IntN(10))
						act = r.Reply(now, act.Node, resp)
					case x == 6 && rng.IntN(10) == 0:
						sent := rng.IntN(2) == 0
						maybe = maybe || sent && dataAttempt
						act = r.Cancel(now, errors.New("cancel"), sent)
					case x == 7:
						// A late answer to something else changes nothing.
						resp.ID--
						if a := r.Reply(now, act.Node, resp); a.Kind != Await {
							t.Fatalf("seed %d: stale answer led to %s", seed, a.Kind)
						}
					default:
						if !dataAttempt || !sharded {
							if replica.GroupID(act.Request.Group) == gCtl && sharded {
								resp.Value = shardctl.Reply{Config: cfg}.Encode()
							} else {
								okSeen = true
							}
							act = r.Reply(now, act.Node, resp)
							break
						}
						st := []txn.Status{txn.StatusOK, txn.StatusAborted, txn.StatusRetry, txn.StatusWrongGroup, txn.StatusAborted}[rng.IntN(5)]
						switch st {
						case txn.StatusOK:
							okSeen = true
						case txn.StatusAborted:
							maybe = false
						case txn.StatusRetry:
							maybe = true
						}
						resp.Value = encodeTxnReply(txn.Reply{Status: st})
						act = r.Reply(now, act.Node, resp)
					}
				case Wait:
					if act.Timeout < 0 || now.Add(act.Timeout).After(op.Deadline) {
						t.Fatalf("seed %d: wait %v runs past the deadline", seed, act.Timeout)
					}
					now = now.Add(act.Timeout)
					act = r.Timeout(now)
				case Await:
					t.Fatalf("seed %d: await after %+v", seed, last)
				}
			}
			o := act.Outcome
			switch o.Result {
			case OK:
				if !okSeen {
					t.Fatalf("seed %d op %d: OK without an OK answer", seed, opn)
				}
			case Failed:
				if maybe {
					t.Fatalf("seed %d op %d: failed although an attempt may have been applied: %v", seed, opn, o.Cause)
				}
			case Unknown:
				if !maybe {
					t.Fatalf("seed %d op %d: unknown although nothing can have been applied: %v", seed, opn, o.Cause)
				}
			}
			if now.After(op.Deadline) {
				t.Fatalf("seed %d op %d: ended at %v, after its deadline %v", seed, opn, now, op.Deadline)
			}
		}
	}
}

func ExampleRouter() {
	r, _ := NewRouter(RouterConfig{ClientID: 1, Groups: map[replica.GroupID][]replica.NodeID{1: {1, 2, 3}}})
	now := time.Unix(0, 0)
	act := r.Start(now, Op{Group: 1, Body: []byte("op"), Deadline: now.Add(time.Second)})
	fmt.Println(act.Kind, act.Node, act.Request.Seq)
	act = r.Reply(now, act.Node, wire.Response{ID: act.Request.ID, Status: wire.StatusNotLeader, Leader: 3})
	fmt.Println(act.Kind, act.Node, act.Request.Seq)
	act = r.Timeout(now.Add(time.Second))
	fmt.Println(act.Kind, act.Outcome.Result)
	// Output:
	// send 2 1
	// send 3 1
	// done unknown
}

// BenchmarkRouterOp is the Router's cost for an op answered at once.
func BenchmarkRouterOp(b *testing.B) {
	r, err := NewRouter(RouterConfig{ClientID: 1, Groups: map[replica.GroupID][]replica.NodeID{1: {1, 2, 3}}})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("op")
	b.ReportAllocs()
	for b.Loop() {
		act := r.Start(t0, Op{Group: 1, Body: body, Deadline: t0.Add(time.Second)})
		act = r.Reply(t0, act.Node, wire.Response{ID: act.Request.ID, Value: body})
		if act.Kind != Done {
			b.Fatal(act.Kind)
		}
	}
}

// TestRouterPresumesDeadGroupDown: a group a coordinator abandoned a
// transaction for, or that left a whole round of attempts unserved for
// DownAfter, is presumed down: ops that need it fail at once, unsent,
// until the presumption ends; ops that do not need it go on; an answer
// from the group ends the presumption.
func TestRouterPresumesDeadGroupDown(t *testing.T) {
	cfg := shardctl.Config{Num: 1, Groups: map[replica.GroupID][]replica.NodeID{gData: {1, 2, 3}, gB: {4, 5, 6}}}
	for i := range cfg.Shards {
		cfg.Shards[i] = gData
	}
	cfg.Shards[5] = gB
	r := testRouter(t)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	both := Op{Sharded: true, Shard: 3, Shards: []int{3, 5}, Body: []byte("t"), Deadline: at(time.Hour)}
	onlyB := Op{Sharded: true, Shard: 5, Shards: []int{5}, Body: []byte("t"), Deadline: at(time.Hour)}
	onlyData := Op{Sharded: true, Shard: 3, Shards: []int{3}, Body: []byte("t"), Deadline: at(time.Hour)}

	// The coordinator abandoned the transaction: group B never voted.
	act := r.Start(at(0), both)
	act = feed(r, act, ev{kind: "ctl", ctl: cfg})
	check(t, 1, act, txnSend(gData, 1, 1))
	act = feed(r, act, ev{at: time.Second, kind: "txn", txn: txn.Reply{Status: txn.StatusAborted, Silent: []replica.GroupID{gB}}})
	check(t, 2, act, done(Failed, "group 2 is presumed down"))

	steps := []struct {
		name string
		at   time.Duration
		op   Op
		want want
	}{
		{"an op that needs B fails unsent", 1100 * time.Millisecond, onlyB, done(Failed, "presumed down")},
		{"so does one that needs B as a participant", 1200 * time.Millisecond, both, done(Failed, "presumed down")},
		{"an op over the live group goes on", 1300 * time.Millisecond, onlyData, txnSend(gData, 1, 5)},
	}
	for i, s := range steps {
		if r.Busy() {
			r.Cancel(at(s.at), errors.New("next"), false)
		}
		act := r.Start(at(s.at), s.op)
		check(t, i, act, s.want)
		if act.Kind == Done && act.Outcome.Attempts != 0 {
			t.Fatalf("%s: %d attempts, want none", s.name, act.Outcome.Attempts)
		}
	}
	act = feed(r, Action{Node: 1, Request: wire.Request{ID: r.reqID}}, ev{at: 1300 * time.Millisecond, kind: "txn", txn: txn.Reply{Status: txn.StatusOK}})
	check(t, 10, act, done(OK, ""))

	// After DownMin (1s) B is tried again; it answers, and is no longer
	// presumed down.
	act = r.Start(at(2100*time.Millisecond), onlyB)
	check(t, 11, act, txnSend(gB, 4, 6))
	act = feed(r, act, ev{at: 2100 * time.Millisecond, kind: "txn", txn: txn.Reply{Status: txn.StatusOK}})
	check(t, 12, act, done(OK, ""))

	// Silence: no member of B serves for DownAfter (2s); the op gives up
	// (unknown: its attempts may have arrived) and the next fails unsent.
	act = r.Start(at(3*time.Second), onlyB)
	check(t, 13, act, txnSend(gB, 4, 7))
	now := 3 * time.Second
	for i := 0; act.Kind != Done && i < 100; i++ {
		now += 100 * time.Millisecond
		act = r.Timeout(at(now))
	}
	check(t, 14, act, done(Unknown, "presumed down"))
	if now < 5*time.Second {
		t.Fatalf("gave up at %v, before DownAfter passed", now-3*time.Second)
	}
	act = r.Start(at(now), onlyB)
	check(t, 15, act, done(Failed, "presumed down"))
}
