package node

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

type msg struct{ from, to replica.NodeID }

func (m msg) Source() replica.NodeID { return m.from }
func (m msg) Dest() replica.NodeID   { return m.to }

// logCore is a core that, while it leads, turns each Propose into one
// Ready persisting one entry, sending one message and carrying the
// requests' results.
type logCore struct {
	replica.Replicator
	leader replica.NodeID
	index  uint64
	ready  []replica.Ready
	log    *[]string
}

func (c *logCore) Propose(reqs ...replica.Request) error {
	if c.leader != 1 {
		return &replica.NotLeaderError{Leader: c.leader}
	}
	*c.log = append(*c.log, fmt.Sprintf("propose %d", len(reqs)))
	c.index++
	rd := replica.Ready{Persist: replica.Persist{Entries: []replica.Entry{{Index: c.index}}}, Messages: []replica.Message{msg{1, 2}}}
	for _, r := range reqs {
		rd.Results = append(rd.Results, replica.Result{ClientID: r.ClientID, Seq: r.Seq, Index: c.index, Value: []byte("ok")})
	}
	c.ready = append(c.ready, rd)
	return nil
}

func (c *logCore) HasReady() bool { return len(c.ready) > 0 }

func (c *logCore) Ready() replica.Ready {
	rd := c.ready[0]
	c.ready = c.ready[1:]
	return rd
}

func (c *logCore) Status() replica.Status { return replica.Status{ID: 1, Leader: c.leader} }

type logHost struct{ log *[]string }

func (h logHost) Send(m replica.Message, _ []byte, _ error) {
	*h.log = append(*h.log, fmt.Sprintf("send to %d", m.Dest()))
}
func (h logHost) Answer(to string, r wire.Response) {
	*h.log = append(*h.log, fmt.Sprintf("answer %s %s", to, r.Status))
}
func (logHost) Readied(*replica.Ready)       {}
func (logHost) Releasing(*replica.Ready)     {}
func (logHost) Released(*replica.Ready) bool { return true }

// TestReplicaReleasesAfterSyncAndBatchesWhileWriting follows a leader's
// requests through a Replica: nothing is sent or answered before the sync
// covering it; requests arriving during a write wait for it and are then
// proposed together; losing leadership answers the waiting unknown.
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
		"propose 1", "write", "sync", "send to 2", "answer a ok",
		"propose 2", "write",
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
