package node

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

type msg struct {
	from, to replica.NodeID
	index    uint64
}

func (m msg) Source() replica.NodeID { return m.from }
func (m msg) Dest() replica.NodeID   { return m.to }

// logCore is a core that, while it leads, turns each Propose into one
// Ready persisting one entry, sending it to node 2 and acknowledging it
// to itself; the requests' results come in a Ready of their own once that
// acknowledgement comes back, as a real core's commit counts its own copy
// only then. With early set, the Ready also proposes the entry to node 3
// early.
type logCore struct {
	replica.Replicator
	leader  replica.NodeID
	early   bool
	late    bool // not a replica.EarlyAnswerer
	index   uint64
	ready   []replica.Ready
	log     *[]string
	results map[uint64][]replica.Result // by index, until its own acknowledgement
}

func (c *logCore) Step(m replica.Message) {
	mm := m.(msg)
	*c.log = append(*c.log, fmt.Sprintf("step %d from %d", mm.index, m.Source()))
	if mm.from == 1 && mm.to == 1 && len(c.results[mm.index]) > 0 {
		c.ready = append(c.ready, replica.Ready{Results: c.results[mm.index]})
		delete(c.results, mm.index)
	}
}

func (c *logCore) Propose(reqs ...replica.Request) error {
	if c.leader != 1 {
		return &replica.NotLeaderError{Leader: c.leader}
	}
	*c.log = append(*c.log, fmt.Sprintf("propose %d", len(reqs)))
	c.index++
	rd := replica.Ready{Persist: replica.Persist{Entries: []replica.Entry{{Index: c.index}}}, Messages: []replica.Message{msg{1, 2, c.index}, msg{1, 1, c.index}}}
	if c.early {
		rd.Early = []replica.Message{msg{1, 3, c.index}}
	}
	if c.results == nil {
		c.results = map[uint64][]replica.Result{}
	}
	for _, r := range reqs {
		c.results[c.index] = append(c.results[c.index], replica.Result{ClientID: r.ClientID, Seq: r.Seq, Index: c.index, Value: []byte("ok")})
	}
	c.ready = append(c.ready, rd)
	return nil
}

// AnswersEarly reports whether the Replica may answer early: its results
// wait for its own acknowledgement; late says not to rely on that.
func (c *logCore) AnswersEarly() bool { return !c.late }

func (c *logCore) HasReady() bool { return len(c.ready) > 0 }

func (c *logCore) Ready() replica.Ready {
	rd := c.ready[0]
	c.ready = c.ready[1:]
	return rd
}

func (c *logCore) Status() replica.Status { return replica.Status{ID: 1, Leader: c.leader} }

type logHost struct{ log *[]string }

func (h logHost) Send(m replica.Message, _ []byte, _ error) {
	*h.log = append(*h.log, fmt.Sprintf("send %d to %d", m.(msg).index, m.Dest()))
}
func (h logHost) Answer(to string, r wire.Response) {
	*h.log = append(*h.log, fmt.Sprintf("answer %s %s", to, r.Status))
}
func (logHost) Readied(*replica.Ready)       {}
func (logHost) Releasing(*replica.Ready)     {}
func (logHost) Released(*replica.Ready) bool { return true }

// TestReplicaReleasesAfterSyncAndBatchesWhileWriting follows a leader's
// requests through a Replica: nothing is sent before the sync covering
// it, and a request is answered only once the core commits it, which its
// own acknowledgement of the synced write allows; requests arriving during
// a write wait for it and are then proposed together; losing leadership
// answers the waiting unknown.
func TestReplicaReleasesAfterSyncAndBatchesWhileWriting(t *testing.T) {
	var log []string
	core := &logCore{leader: 1, log: &log}
	r := &Replica[string]{ID: 1, Core: core, Host: logHost{&log}, MaxBatch: 8}
	st := logStorage{log: &log}
	req := func(c uint64) replica.Request { return replica.Request{ClientID: c, Seq: 1} }

	r.Request(1, req(1), "a")
	r.Flush()
	if _, err := r.StartWrite(st); err != nil {
		t.Fatal(err)
	}
	r.Request(2, req(2), "b")
	r.Request(3, req(3), "c")
	r.Flush() // held back: a write is in progress
	if err := r.WriteDone(st); err != nil {
		t.Fatal(err)
	}
	r.Flush() // the held requests go together
	if _, err := r.StartWrite(st); err != nil {
		t.Fatal(err)
	}
	core.leader = 2
	r.Flush() // lost leadership while b and c wait for their write
	want := []string{
		"propose 1", "write", "sync", "send 1 to 2", "step 1 from 1",
		"propose 2", "answer a ok", "write",
		"answer b unknown", "answer c unknown",
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("events\n got %q\nwant %q", log, want)
	}
	log = log[:0]
	r.Request(4, req(4), "d")
	r.Flush()
	if want := []string{"answer d not-leader"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("a follower's events\n got %q\nwant %q", log, want)
	}
}

// TestReplicaSendsEarlyBeforeSync follows a leader whose Readies carry
// Early messages: those leave as soon as the core hands the Ready over,
// in order and ahead of earlier Readies' writes, while the rest waits for
// the sync; the core's acknowledgement of its own write comes back to it
// then, and one that arrives from the network claiming to be its own is
// dropped.
func TestReplicaSendsEarlyBeforeSync(t *testing.T) {
	var log []string
	core := &logCore{leader: 1, early: true, log: &log}
	r := &Replica[string]{ID: 1, Core: core, Host: logHost{&log}}
	st := logStorage{log: &log}
	req := func(c uint64) replica.Request { return replica.Request{ClientID: c, Seq: 1} }

	r.Request(1, req(1), "a")
	r.Flush()
	if _, err := r.StartWrite(st); err != nil {
		t.Fatal(err)
	}
	r.Request(2, req(2), "b")
	r.Flush() // MaxBatch 0: proposed during the write, its Early leaves now
	r.Step(msg{1, 1, 9})
	for r.Writing() || r.pl.Busy() {
		if err := r.WriteDone(st); err != nil {
			t.Fatal(err)
		}
		r.Flush()
		if _, err := r.StartWrite(st); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"propose 1", "send 1 to 3", "write",
		"propose 1", "send 2 to 3",
		"sync", "send 1 to 2", "step 1 from 1", "answer a ok",
		"write", "sync", "send 2 to 2", "step 2 from 1", "answer b ok",
	}
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("events\n got %q\nwant %q", log, want)
	}
}
