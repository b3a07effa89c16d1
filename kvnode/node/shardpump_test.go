package node

import (
	"slices"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

func TestShardPump(t *testing.T) {
	const ms = time.Millisecond
	p := ShardPump{Controller: 9, AbandonAfter: 100 * ms, RetryAfter: 30 * ms, ConfigPollEvery: 50 * ms}
	id := txn.TxnID{Client: 1, Seq: 2}
	v := ShardView{Leader: true, Config: 3, Pending: []txn.TxnID{id}, Outbox: []txn.Outgoing{{To: 2, Op: []byte("prepare")}}}
	wake := func(want time.Duration) {
		t.Helper()
		if at, ok := p.Wake(); !ok || at != want {
			t.Fatalf("wake at %v (%v), want %v", at, ok, want)
		}
	}

	out, props := p.Tick(0, v)
	if len(out) != 2 || out[0].To != 2 || out[1].To != 9 || len(props) != 0 {
		t.Fatalf("first tick: deliveries %+v, proposals %q", out, props)
	}
	prep, query := out[0], out[1]
	wake(100 * ms) // the abandon; the query's end, not a timer, leads to the next
	// Nothing is delivered twice at once, and no query before its time.
	if out, _ := p.Tick(10*ms, v); len(out) != 0 {
		t.Fatalf("deliveries repeated while in flight: %+v", out)
	}
	if op := p.Answered(10*ms, prep, []byte("vote")); string(op) != "vote" {
		t.Fatalf("an outbox answer is proposed as it is; got %q", op)
	}
	// The answer's proposal is on its way: the message waits RetryAfter
	// before it goes again, unless the outbox drops it first.
	if out, _ := p.Tick(20*ms, v); len(out) != 0 {
		t.Fatalf("an answered message went again before RetryAfter: %+v", out)
	}
	wake(40 * ms)
	if out, _ := p.Tick(40*ms, v); len(out) != 1 || out[0].Key != prep.Key {
		t.Fatalf("an answered message still in the outbox after RetryAfter does not go again: %+v", out)
	}
	// A new message goes at the first event, whatever else waits.
	v.Outbox = append(v.Outbox, txn.Outgoing{To: 3, Op: []byte("decide")})
	if out, _ := p.Tick(41*ms, v); len(out) != 1 || out[0].To != 3 {
		t.Fatalf("a new outbox message did not leave at once: %+v", out)
	}
	// Only the configuration asked for is learned.
	wrong := shardctl.Reply{Config: shardctl.Config{Num: 7}}
	if op := p.Answered(45*ms, query, wrong.Encode()); op != nil {
		t.Fatalf("configuration 7 was learned in answer to a query for 4: %q", op)
	}
	if out, _ := p.Tick(46*ms, v); len(out) != 0 {
		t.Fatalf("the controller was asked again before ConfigPollEvery: %+v", out)
	}
	// A configuration change is an event: the next one is asked for at once.
	v.Config = 4
	out, _ = p.Tick(47*ms, v)
	if len(out) != 1 || out[0].To != 9 {
		t.Fatalf("no query for configuration 5 after installing 4: %+v", out)
	}
	right := shardctl.Reply{Config: shardctl.Config{Num: 5}}
	if op := p.Answered(48*ms, out[0], right.Encode()); string(op) != string(txn.EncodeConfigRequest(&right.Config)) {
		t.Fatalf("configuration 5 not proposed: %q", op)
	}
	if _, props := p.Tick(90*ms, v); len(props) != 0 {
		t.Fatalf("abandoned before AbandonAfter: %q", props)
	}
	if _, props := p.Tick(100*ms, v); len(props) != 1 || string(props[0]) != string(txn.EncodeAbandon(id)) {
		t.Fatalf("not abandoned after AbandonAfter: %q", props)
	}
	// A replica that stops leading forgets its clocks and needs no timer.
	p.Tick(120*ms, ShardView{})
	if _, ok := p.Wake(); ok {
		t.Fatal("a follower's pump wants a timer")
	}
	if out, props := p.Tick(200*ms, v); len(props) != 0 || len(out) != 0 {
		t.Fatalf("a new leader abandoned at once or repeated deliveries in flight: %q, %+v", props, out)
	}
	wake(300 * ms) // the abandon clock restarted at 200ms; the query of 100ms is still out
}

// TestShardPumpInflightBound: beyond MaxInflight deliveries to one group
// wait for one to end, and that end makes room at the next Tick; the
// deliveries to another group do not wait for them.
func TestShardPumpInflightBound(t *testing.T) {
	p := ShardPump{Controller: 9, MaxInflight: 2, ConfigPollEvery: time.Hour}
	v := ShardView{Leader: true, Outbox: []txn.Outgoing{{To: 2, Op: []byte("a")}, {To: 2, Op: []byte("b")}, {To: 2, Op: []byte("c")}, {To: 3, Op: []byte("d")}}}
	out, _ := p.Tick(0, v)
	if len(out) != 4 || out[2].To != 3 || out[3].To != 9 {
		t.Fatalf("deliveries started: %+v, want 2 to group 2, then group 3's and the query", out)
	}
	p.Answered(time.Millisecond, out[0], nil)
	if out, _ := p.Tick(time.Millisecond, v); len(out) != 1 || string(out[0].Op) == string(v.Outbox[0].Op) {
		t.Fatalf("after one end: %+v, want the one that waited", out)
	}
}

// TestShardPumpSameMessageToTwoGroups: a decision is the same message to
// every participant; the one to a group that does not answer must not
// hold up the one to a live group (whose locks wait for it).
func TestShardPumpSameMessageToTwoGroups(t *testing.T) {
	p := ShardPump{Controller: 9, ConfigPollEvery: time.Hour}
	v := ShardView{Leader: true, Outbox: []txn.Outgoing{{To: 2, Op: []byte("decide")}, {To: 3, Op: []byte("decide")}}}
	out, _ := p.Tick(0, v)
	if len(out) != 3 || out[0].To != 2 || out[1].To != 3 {
		t.Fatalf("deliveries started: %+v, want the decision to groups 2 and 3, then the query", out)
	}
	// Group 3 answers; group 2's delivery is still out.
	p.Answered(time.Millisecond, out[1], []byte("ack"))
	v.Outbox = v.Outbox[:1]
	if out, _ := p.Tick(time.Millisecond, v); len(out) != 0 {
		t.Fatalf("the delivery to group 2 repeated while in flight: %+v", out)
	}
}

// TestShardPumpBatchesAcks: a participant's acknowledgement of a decision
// is not proposed alone at once: it goes with the next proposed answer,
// or AckDelay after it came; a new leader drops it (the decision goes
// again).
func TestShardPumpBatchesAcks(t *testing.T) {
	const ms = time.Millisecond
	id := txn.TxnID{Client: 1, Seq: 2}
	decide := txn.Outgoing{To: 2, Txn: id, Op: []byte("decide")}
	prepare := txn.Outgoing{To: 3, Txn: txn.TxnID{Client: 1, Seq: 3}, Prepare: true, Op: []byte("prepare")}
	cases := []struct {
		name string
		run  func(p *ShardPump, v ShardView, dec, prep Delivery) [][]byte // what the last step proposes
		want []string
	}{
		{"alone, after AckDelay", func(p *ShardPump, v ShardView, dec, _ Delivery) [][]byte {
			if op := p.Answered(1*ms, dec, []byte("ack")); op != nil {
				t.Fatalf("an acknowledgement was proposed at once: %q", op)
			}
			if _, props := p.Tick(1*ms, v); len(props) != 0 {
				t.Fatalf("an acknowledgement was proposed before AckDelay: %q", props)
			}
			if at, ok := p.Wake(); !ok || at != 21*ms {
				t.Fatalf("wake at %v (%v), want 21ms", at, ok)
			}
			_, props := p.Tick(21*ms, v)
			return props
		}, []string{"ack"}},
		{"with the next answer", func(p *ShardPump, v ShardView, dec, prep Delivery) [][]byte {
			p.Answered(1*ms, dec, []byte("ack"))
			p.Tick(1*ms, v)
			if op := p.Answered(2*ms, prep, []byte("vote")); string(op) != "vote" {
				t.Fatalf("the vote: %q", op)
			}
			_, props := p.Tick(2*ms, v)
			return props
		}, []string{"ack"}},
		{"dropped by a new leader", func(p *ShardPump, v ShardView, dec, _ Delivery) [][]byte {
			p.Answered(1*ms, dec, []byte("ack"))
			p.Tick(1*ms, ShardView{})
			_, props := p.Tick(30*ms, v)
			return props
		}, nil},
	}
	for _, c := range cases {
		p := ShardPump{Controller: 9, ConfigPollEvery: time.Hour, AbandonAfter: time.Hour}
		v := ShardView{Leader: true, Outbox: []txn.Outgoing{decide, prepare}}
		out, _ := p.Tick(0, v)
		if len(out) != 3 || out[0].To != 2 || out[1].To != 3 {
			t.Fatalf("%s: deliveries %+v", c.name, out)
		}
		var got []string
		for _, op := range c.run(&p, v, out[0], out[1]) {
			got = append(got, string(op))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: proposed %q, want %q", c.name, got, c.want)
		}
	}
}

func TestView(t *testing.T) {
	g := txn.NewGroup(1)
	if v := View(2, replica.Status{Leader: 2}, g); !v.Leader || v.Config != g.ConfigNum() {
		t.Fatalf("the leader's view: %+v", v)
	}
	if v := View(3, replica.Status{Leader: 2}, g); v.Leader || v.Outbox != nil || v.Pending != nil {
		t.Fatalf("a follower shows its pump nothing to deliver: %+v", v)
	}
}
