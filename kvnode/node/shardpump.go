package node

import (
	"slices"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// ShardView is what a shard group's replica shows its pump: whether it
// leads, and if so its state machine's outbox and undecided transactions;
// and the configuration it runs.
type ShardView struct {
	Leader  bool
	Outbox  []txn.Outgoing
	Pending []txn.TxnID
	Config  uint64
}

// View is what a shard group's replica shows its pump: the replica (self,
// with status st) leads if st names it, and then shows its state
// machine's outbox and undecided transactions. ok is false when sm is not
// a shard group's.
func View(self replica.NodeID, st replica.Status, sm replica.StateMachine) (v ShardView, ok bool) {
	tg, ok := sm.(*txn.Group)
	if !ok {
		return ShardView{}, false
	}
	v = ShardView{Leader: st.Leader == self, Config: tg.ConfigNum()}
	if v.Leader {
		v.Outbox, v.Pending = tg.Outbox(), tg.Pending()
	}
	return v, true
}

// Delivery is a request the pump asks its runtime to send to another group
// (the shard controller for a configuration query); the runtime reports
// how it ended with ShardPump.Answered.
type Delivery struct {
	Key  string // what the pump knows it by
	To   replica.GroupID
	Op   []byte
	want uint64 // the configuration asked for (a query)
}

// configKey is the key of the configuration query.
const configKey = "\x00config"

// ShardPump is the part of a shard group's runtime that its state machine
// cannot do itself, as rules without I/O: on the group's leader it delivers
// every outbox message (2PC prepares, votes, decisions, shard hand-offs)
// until the message's answer is applied and the outbox drops it, each one
// delivery at a time; learns configurations in order by asking the
// controller for the next one; and abandons (aborts) a transaction whose
// votes have not all come AbandonAfter after the leader first saw it
// pending. The runtime runs Tick on a timer, carries out the deliveries,
// reports their answers and proposes to its group what the pump returns,
// under a session of its own.
type ShardPump struct {
	Controller replica.GroupID
	// AbandonAfter, ConfigPollEvery and MaxInflight default to 1s, 50ms
	// and 64.
	AbandonAfter    time.Duration
	ConfigPollEvery time.Duration
	MaxInflight     int

	firstSeen map[txn.TxnID]time.Duration
	lastPoll  time.Duration
	polled    bool
	inflight  map[string]bool
}

func (p *ShardPump) init() {
	if p.firstSeen == nil {
		p.firstSeen, p.inflight = map[txn.TxnID]time.Duration{}, map[string]bool{}
		if p.AbandonAfter == 0 {
			p.AbandonAfter = time.Second
		}
		if p.ConfigPollEvery == 0 {
			p.ConfigPollEvery = 50 * time.Millisecond
		}
		if p.MaxInflight == 0 {
			p.MaxInflight = 64
		}
	}
}

// Tick looks at the group at time now (any monotonic origin, used
// throughout) and returns the deliveries to start and the requests to
// propose to the group.
func (p *ShardPump) Tick(now time.Duration, v ShardView) (out []Delivery, propose [][]byte) {
	p.init()
	if !v.Leader {
		// A new leader starts the abandon clocks afresh.
		clear(p.firstSeen)
		return nil, nil
	}
	start := func(d Delivery) {
		if p.inflight[d.Key] || len(p.inflight) >= p.MaxInflight {
			return
		}
		p.inflight[d.Key] = true
		out = append(out, d)
	}
	for _, m := range v.Outbox {
		start(Delivery{Key: string(m.Op), To: m.To, Op: m.Op})
	}
	if !p.polled || now-p.lastPoll >= p.ConfigPollEvery {
		p.polled, p.lastPoll = true, now
		want := v.Config + 1
		start(Delivery{Key: configKey, To: p.Controller, Op: shardctl.Op{Kind: shardctl.Query, Num: int64(want)}.Encode(), want: want})
	}
	for id := range p.firstSeen {
		if !slices.Contains(v.Pending, id) {
			delete(p.firstSeen, id)
		}
	}
	for _, id := range v.Pending {
		t0, ok := p.firstSeen[id]
		switch {
		case !ok:
			p.firstSeen[id] = now
		case now-t0 > p.AbandonAfter:
			propose = append(propose, txn.EncodeAbandon(id))
			p.firstSeen[id] = now
		}
	}
	return out, propose
}

// Answered ends delivery d: answer is the other group's reply, or nil when
// the delivery failed or its outcome is unknown (the outbox repeats it).
// It returns the request to propose to the group, or nil.
func (p *ShardPump) Answered(d Delivery, answer []byte) []byte {
	p.init()
	delete(p.inflight, d.Key)
	if len(answer) == 0 {
		return nil
	}
	if d.Key != configKey {
		return answer
	}
	if r, err := shardctl.DecodeReply(answer); err == nil && r.Err == "" && r.Config.Num == d.want {
		return txn.EncodeConfigRequest(&r.Config)
	}
	return nil
}
