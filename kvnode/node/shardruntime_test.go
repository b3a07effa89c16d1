package node

import (
	"errors"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/txn"
)

func TestShardRuntime(t *testing.T) {
	dials := 0
	r := ShardRuntime[int]{
		Pump:    ShardPump{Controller: 9, AbandonAfter: 100 * time.Millisecond, RetryAfter: 10 * time.Millisecond, ConfigPollEvery: time.Hour},
		Session: 77,
		Dial: func(to replica.GroupID) (int, error) {
			if to == 3 {
				return 0, errors.New("unreachable")
			}
			dials++
			return dials, nil
		},
	}
	id := txn.TxnID{Client: 1, Seq: 2}
	v := ShardView{Leader: true, Pending: []txn.TxnID{id}, Outbox: []txn.Outgoing{{To: 2, Op: []byte("a")}, {To: 2, Op: []byte("b")}, {To: 3, Op: []byte("c")}}}
	sends, props := r.Tick(0, v)
	if len(sends) != 4 || len(props) != 0 {
		t.Fatalf("first tick: %d sends, %d proposals; want 4 and 0", len(sends), len(props))
	}
	// Two concurrent sends to group 2 get two clients; the undialable one
	// carries its error and no client.
	if sends[0].Via == sends[1].Via || sends[0].Err != nil || sends[2].Err == nil || sends[2].Via != 0 {
		t.Fatalf("clients: %+v", sends)
	}
	req, ok := r.Answered(0, sends[0], []byte("vote"))
	if !ok || req.ClientID != 77 || req.Seq != 1 || string(req.Op) != "vote" {
		t.Fatalf("answer proposed as %+v, %v", req, ok)
	}
	if _, ok := r.Answered(0, sends[2], nil); ok {
		t.Fatal("a failed send proposed something")
	}
	// The client freed by the first answer is reused, not redialled.
	before := dials
	v.Outbox = v.Outbox[:1]
	sends2, _ := r.Tick(10*time.Millisecond, v)
	if len(sends2) != 1 || sends2[0].Via != sends[0].Via || dials != before {
		t.Fatalf("pooled client not reused: %+v (dials %d -> %d)", sends2, before, dials)
	}
	// Abandons are proposed under the same session, with rising seqs.
	_, props = r.Tick(time.Second, v)
	if len(props) != 1 || props[0].ClientID != 77 || props[0].Seq != 2 {
		t.Fatalf("abandon proposals %+v", props)
	}
	r.Answered(time.Second, sends[1], nil)
	r.Answered(time.Second, sends[3], nil)
	r.Answered(time.Second, sends2[0], nil)
	if got := len(r.Clients()); got != dials {
		t.Fatalf("%d idle clients after every send ended, dialled %d", got, dials)
	}
}
