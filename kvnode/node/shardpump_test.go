package node

import (
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

func TestShardPump(t *testing.T) {
	p := ShardPump{Controller: 9, AbandonAfter: 100 * time.Millisecond, ConfigPollEvery: 50 * time.Millisecond}
	id := txn.TxnID{Client: 1, Seq: 2}
	v := ShardView{Leader: true, Config: 3, Pending: []txn.TxnID{id}, Outbox: []txn.Outgoing{{To: 2, Op: []byte("prepare")}}}

	out, props := p.Tick(0, v)
	if len(out) != 2 || out[0].To != 2 || out[1].To != 9 || len(props) != 0 {
		t.Fatalf("first tick: deliveries %+v, proposals %q", out, props)
	}
	prep, query := out[0], out[1]
	// Nothing is delivered twice at once, and no poll before its time.
	if out, _ := p.Tick(10*time.Millisecond, v); len(out) != 0 {
		t.Fatalf("deliveries repeated while in flight: %+v", out)
	}
	if op := p.Answered(prep, []byte("vote")); string(op) != "vote" {
		t.Fatalf("an outbox answer is proposed as it is; got %q", op)
	}
	if out, _ := p.Tick(20*time.Millisecond, v); len(out) != 1 || out[0].Key != prep.Key {
		t.Fatalf("an answered message still in the outbox goes again: %+v", out)
	}
	// Only the configuration asked for is learned.
	wrong := shardctl.Reply{Config: shardctl.Config{Num: 7}}
	if op := p.Answered(query, wrong.Encode()); op != nil {
		t.Fatalf("configuration 7 was learned in answer to a query for 4: %q", op)
	}
	if _, props := p.Tick(90*time.Millisecond, v); len(props) != 0 {
		t.Fatalf("abandoned before AbandonAfter: %q", props)
	}
	if _, props := p.Tick(110*time.Millisecond, v); len(props) != 1 || string(props[0]) != string(txn.EncodeAbandon(id)) {
		t.Fatalf("not abandoned after AbandonAfter: %q", props)
	}
	// A replica that stops leading forgets its clocks.
	p.Tick(120*time.Millisecond, ShardView{})
	if _, props := p.Tick(200*time.Millisecond, v); len(props) != 0 {
		t.Fatalf("a new leader abandoned at once: %q", props)
	}
}

func TestView(t *testing.T) {
	g := txn.NewGroup(1)
	if v, ok := View(2, replica.Status{Leader: 2}, g); !ok || !v.Leader || v.Config != g.ConfigNum() {
		t.Fatalf("the leader's view: %+v, %v", v, ok)
	}
	if v, ok := View(3, replica.Status{Leader: 2}, g); !ok || v.Leader || v.Outbox != nil || v.Pending != nil {
		t.Fatalf("a follower shows its pump nothing to deliver: %+v, %v", v, ok)
	}
	if _, ok := View(2, replica.Status{Leader: 2}, shardctl.New()); ok {
		t.Fatal("the controller has no shard view")
	}
}
