package node

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// indexer is a core's read-index side: it records the reads started, or
// refuses them with err.
type indexer struct {
	err     error
	started []uint64
}

func (c *indexer) ReadIndex(id uint64) error {
	if c.err != nil {
		return c.err
	}
	c.started = append(c.started, id)
	return nil
}

// table is a state machine holding one value per op, readable by Query;
// ops starting with "w" write.
type table struct {
	replica.StateMachine
	val map[string]string
}

func (s *table) ReadOnly(op []byte) bool { return len(op) == 0 || op[0] != 'w' }
func (s *table) Query(op []byte) []byte  { return []byte(s.val[string(op)]) }

func TestRequestsReads(t *testing.T) {
	sm := &table{val: map[string]string{"x": "1", "y": "2"}}
	type env struct {
		q    *Requests[string]
		core *indexer
		ans  func(string, wire.Response)
	}
	type step func(e env)
	read := func(id uint64, op, to string) step {
		return func(e env) { e.q.AddRead(id, replica.Request{ClientID: id, Seq: 1, Op: []byte(op)}, to) }
	}
	start := func(err error) step {
		return func(e env) { e.core.err = err; e.q.StartReads(e.core, e.ans) }
	}
	release := func(rs ...replica.ReadState) step {
		return func(e env) { e.q.ReleaseReads(rs, sm, 3, e.ans) }
	}
	observe := func(leader replica.NodeID) step {
		return func(e env) { e.q.Observe(1, leader, e.ans) }
	}
	cases := []struct {
		name  string
		steps []step
		want  []answer
	}{
		{"confirmed reads answered from the state machine", []step{read(7, "x", "a"), read(8, "y", "b"), start(nil),
			release(replica.ReadState{ID: 2, Index: 4}, replica.ReadState{ID: 1, Index: 4})},
			[]answer{{"b", 8, wire.StatusOK, 0, "2"}, {"a", 7, wire.StatusOK, 0, "1"}}},
		{"not started: nothing", []step{read(7, "x", "a"), release(replica.ReadState{ID: 1})}, nil},
		{"a read reported twice is answered once", []step{read(7, "x", "a"), start(nil),
			release(replica.ReadState{ID: 1}), release(replica.ReadState{ID: 1})},
			[]answer{{"a", 7, wire.StatusOK, 0, "1"}}},
		{"refused by a follower: not leader, with the hint", []step{read(7, "x", "a"), start(&replica.NotLeaderError{Leader: 2})},
			[]answer{{"a", 7, wire.StatusNotLeader, 2, ""}}},
		{"any refusal of a read is definite", []step{read(7, "x", "a"), start(errors.New("busy"))},
			[]answer{{"a", 7, wire.StatusNotLeader, 0, ""}}},
		{"lost: not leader, with the hint", []step{read(7, "x", "a"), start(nil), release(replica.ReadState{ID: 1, Lost: true})},
			[]answer{{"a", 7, wire.StatusNotLeader, 3, ""}}},
		{"leadership lost: started and queued reads not leader, in arrival order", []step{read(7, "x", "a"), read(8, "y", "b"), start(nil),
			read(9, "x", "c"), observe(2), release(replica.ReadState{ID: 1})},
			[]answer{{"a", 7, wire.StatusNotLeader, 2, ""}, {"b", 8, wire.StatusNotLeader, 2, ""}, {"c", 9, wire.StatusNotLeader, 2, ""}}},
		{"still leading: nothing", []step{read(7, "x", "a"), start(nil), observe(1)}, nil},
	}
	for _, c := range cases {
		var q Requests[string]
		var got []answer
		e := env{&q, &indexer{}, func(to string, r wire.Response) {
			got = append(got, answer{to, r.ID, r.Status, r.Leader, string(r.Value)})
		}}
		for _, s := range c.steps {
			s(e)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: answers\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	// Read IDs are never reused, so a late report of a forgotten read
	// cannot answer a newer one.
	var q Requests[string]
	core := &indexer{}
	for i := 0; i < 3; i++ {
		q.AddRead(uint64(i), replica.Request{}, "a")
		q.StartReads(core, func(string, wire.Response) {})
		q.Fail("stop", 0, func(string, wire.Response) {})
	}
	if want := []uint64{1, 2, 3}; !reflect.DeepEqual(core.started, want) {
		t.Fatalf("read IDs %v, want %v", core.started, want)
	}
}

// readCore is a logCore that also serves reads: each ReadIndex is
// confirmed in the next Ready, at the index of the last entry.
type readCore struct {
	logCore
	reads []replica.ReadState
}

func (c *readCore) ReadIndex(id uint64) error {
	if c.leader != 1 {
		return &replica.NotLeaderError{Leader: c.leader}
	}
	*c.log = append(*c.log, fmt.Sprintf("read index %d", id))
	c.reads = append(c.reads, replica.ReadState{ID: id, Index: c.index})
	return nil
}

func (c *readCore) HasReady() bool { return len(c.reads) > 0 || c.logCore.HasReady() }

func (c *readCore) Ready() replica.Ready {
	var rd replica.Ready
	if c.logCore.HasReady() {
		rd = c.logCore.Ready()
	}
	rd.Reads, c.reads = c.reads, nil
	return rd
}

// TestReplicaServesReadsByReadIndex follows reads through a Replica: a
// read-only request never reaches Propose; its answer, from the state
// machine, comes with the Ready that confirms it, ahead of that Ready's
// write: a confirmed read rests on committed state, never on this
// replica's unsynced writes.
func TestReplicaServesReadsByReadIndex(t *testing.T) {
	var log []string
	core := &readCore{logCore: logCore{leader: 1, log: &log}}
	sm := &table{val: map[string]string{"x": "1"}}
	r := &Replica[string]{ID: 1, Core: core, Host: logHost{&log}, SM: sm}
	st := logStorage{log: &log}

	r.Request(1, replica.Request{ClientID: 1, Seq: 1, Op: []byte("x")}, "a")
	r.Flush() // nothing to persist: answered at once
	r.Request(2, replica.Request{ClientID: 2, Seq: 1, Op: []byte("w")}, "b")
	r.Request(3, replica.Request{ClientID: 3, Seq: 1, Op: []byte("x")}, "c")
	r.Flush() // the read is answered before the write's Ready is persisted
	if _, err := r.StartWrite(st); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteDone(st); err != nil {
		t.Fatal(err)
	}
	r.Request(4, replica.Request{ClientID: 4, Seq: 1, Op: []byte("x")}, "d")
	core.leader = 2
	r.Flush()
	want := []string{
		"read index 1", "answer a ok",
		"read index 2", "propose 1", "answer c ok", "write", "sync", "send 1 to 2", "step 1 from 1",
		"answer d not-leader", "answer b ok",
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("events\n got %q\nwant %q", log, want)
	}

	// Without a state machine that can answer queries every request goes
	// through the log.
	log = log[:0]
	core.leader = 1
	r = &Replica[string]{ID: 1, Core: core, Host: logHost{&log}}
	r.Request(5, replica.Request{ClientID: 5, Seq: 1, Op: []byte("x")}, "e")
	r.Flush()
	if want := []string{"propose 1"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("without a Querier\n got %q\nwant %q", log, want)
	}
}

// TestReplicaAnswersAfterSyncUnlessEarlyAnswerer follows a write and a
// read through a Replica whose core does not answer early: both wait for
// the sync of the Ready that carries them.
func TestReplicaAnswersAfterSyncUnlessEarlyAnswerer(t *testing.T) {
	var log []string
	core := &readCore{logCore: logCore{leader: 1, late: true, log: &log}}
	sm := &table{val: map[string]string{"x": "1"}}
	r := &Replica[string]{ID: 1, Core: core, Host: logHost{&log}, SM: sm}
	st := logStorage{log: &log}

	r.Request(1, replica.Request{ClientID: 1, Seq: 1, Op: []byte("w")}, "b")
	r.Request(2, replica.Request{ClientID: 2, Seq: 1, Op: []byte("x")}, "c")
	r.Flush()
	if _, err := r.StartWrite(st); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteDone(st); err != nil {
		t.Fatal(err)
	}
	r.Flush()
	want := []string{"read index 1", "propose 1", "write", "sync", "send 1 to 2", "step 1 from 1", "answer c ok", "answer b ok"}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("events\n got %q\nwant %q", log, want)
	}
}
