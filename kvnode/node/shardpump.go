package node

import (
	"slices"
	"strconv"
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
// machine's outbox and undecided transactions.
func View(self replica.NodeID, st replica.Status, tg *txn.Group) ShardView {
	v := ShardView{Leader: st.Leader == self, Config: tg.ConfigNum()}
	if v.Leader {
		v.Outbox, v.Pending = tg.Outbox(), tg.Pending()
	}
	return v
}

// Delivery is a request the pump asks its runtime to send to another group
// (the shard controller for a configuration query); the runtime reports
// how it ended with ShardPump.Answered.
type Delivery struct {
	Key  string // what the pump knows it by
	To   replica.GroupID
	Op   []byte
	want uint64 // the configuration asked for (a query)
	// decision: a coordinator's decision, whose answer (the participant's
	// acknowledgement) only lets the coordinator forget the transaction.
	decision bool
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
// pending. The runtime carries out the deliveries, reports their answers
// and proposes to its group what the pump returns, under a session of its
// own.
//
// The pump is driven by events, not by a polling timer: the runtime calls
// Tick whenever its replica applied something or saw the leader change
// (either may change the outbox, the pending transactions or the
// configuration) and whenever a delivery ended, so a message leaves as
// soon as the entry that produced it is applied. What no event announces
// is left to one timer, which the runtime arms for the time Wake returns:
//   - a delivery whose answer did not come or was not applied (the target
//     group was down or said "not yet", or the proposal of its answer was
//     lost with a leader change) is repeated RetryAfter after it ended,
//     since a lost message leaves nothing behind to react to;
//   - a transaction still waiting for votes AbandonAfter after it was
//     first seen pending is abandoned;
//   - the controller does not tell groups of new configurations, so the
//     leader asks it for the next one at once when it starts leading or
//     its configuration changes, and again ConfigPollEvery after it last
//     asked;
//   - a participant's acknowledgement of a decision only lets the
//     coordinator forget the transaction, so it is not proposed at once,
//     as a log entry (and a disk sync on every replica) of its own: it
//     waits to go with the next answer the pump proposes (which a Tick
//     follows) or AckDelay, whichever comes first.
type ShardPump struct {
	Controller replica.GroupID
	// AbandonAfter, RetryAfter, ConfigPollEvery, AckDelay and
	// MaxInflight default to 1s, 50ms, 50ms, 20ms and 64. MaxInflight
	// bounds the deliveries in flight to each group, so that one that
	// does not answer cannot hold up the deliveries to the others.
	// AckDelay must stay below RetryAfter, or a decision whose
	// acknowledgement waits would be delivered again.
	AbandonAfter    time.Duration
	RetryAfter      time.Duration
	ConfigPollEvery time.Duration
	AckDelay        time.Duration
	MaxInflight     int

	firstSeen map[txn.TxnID]time.Duration
	ended     map[string]time.Duration   // outbox message -> when its last delivery ended
	inflight  map[string]replica.GroupID // delivery key -> its target
	perGroup  map[replica.GroupID]int
	lastPoll  time.Duration
	polledCfg uint64 // the configuration the group ran at the last query
	polled    bool
	wake      time.Duration
	armed     bool
	acks      [][]byte      // acknowledgements waiting to be proposed
	acksSince time.Duration // when the oldest of acks came
	answered  bool          // an answer was proposed since the last Tick
}

func (p *ShardPump) init() {
	if p.firstSeen == nil {
		p.firstSeen, p.ended = map[txn.TxnID]time.Duration{}, map[string]time.Duration{}
		p.inflight, p.perGroup = map[string]replica.GroupID{}, map[replica.GroupID]int{}
		if p.AbandonAfter == 0 {
			p.AbandonAfter = time.Second
		}
		if p.RetryAfter == 0 {
			p.RetryAfter = 50 * time.Millisecond
		}
		if p.ConfigPollEvery == 0 {
			p.ConfigPollEvery = 50 * time.Millisecond
		}
		if p.AckDelay == 0 {
			p.AckDelay = 20 * time.Millisecond
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
	p.armed = false
	if !v.Leader {
		// A new leader starts the abandon clocks afresh and delivers at
		// once what it finds (the decisions whose acknowledgements are
		// dropped here among them).
		clear(p.firstSeen)
		clear(p.ended)
		p.polled = false
		p.acks, p.answered = nil, false
		return nil, nil
	}
	at := func(t time.Duration) {
		// What is due now and did not start waits for a delivery in
		// flight, whose end is an event.
		if t <= now {
			return
		}
		if !p.armed || t < p.wake {
			p.wake, p.armed = t, true
		}
	}
	start := func(d Delivery) bool {
		if _, busy := p.inflight[d.Key]; busy || p.perGroup[d.To] >= p.MaxInflight {
			// Its end, or another's, is an event that ticks again.
			return false
		}
		p.inflight[d.Key] = d.To
		p.perGroup[d.To]++
		out = append(out, d)
		return true
	}
	inbox := make(map[string]bool, len(v.Outbox))
	for _, m := range v.Outbox {
		// Keyed by target and message: a coordinator's decision is the
		// same message to every participant, and a delivery to one that
		// is down must not hold up the one to a live participant, whose
		// locks wait for it.
		k := strconv.FormatUint(uint64(m.To), 10) + "\x00" + string(m.Op)
		inbox[k] = true
		if t, ok := p.ended[k]; ok && now < t+p.RetryAfter {
			at(t + p.RetryAfter)
			continue
		}
		if start(Delivery{Key: k, To: m.To, Op: m.Op, decision: !m.Prepare && m.Txn != (txn.TxnID{})}) {
			delete(p.ended, k)
		}
	}
	for k := range p.ended {
		if !inbox[k] {
			delete(p.ended, k)
		}
	}
	if !p.polled || v.Config != p.polledCfg || now >= p.lastPoll+p.ConfigPollEvery {
		want := v.Config + 1
		if start(Delivery{Key: configKey, To: p.Controller, Op: shardctl.Op{Kind: shardctl.Query, Num: int64(want)}.Encode(), want: want}) {
			p.polled, p.lastPoll, p.polledCfg = true, now, v.Config
		}
	}
	if _, busy := p.inflight[configKey]; p.polled && !busy {
		at(p.lastPoll + p.ConfigPollEvery)
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
			t0 = now
		case now-t0 >= p.AbandonAfter:
			propose = append(propose, txn.EncodeAbandon(id))
			p.firstSeen[id] = now
			t0 = now
		}
		at(t0 + p.AbandonAfter)
	}
	if len(p.acks) > 0 {
		if p.answered || now >= p.acksSince+p.AckDelay {
			propose = append(propose, p.acks...)
			p.acks = nil
		} else {
			at(p.acksSince + p.AckDelay)
		}
	}
	p.answered = false
	return out, propose
}

// Wake returns when the runtime must call Tick even if no event comes
// (ok false: only an event needs it). It reflects the last Tick.
func (p *ShardPump) Wake() (at time.Duration, ok bool) { return p.wake, p.armed }

// Answered ends delivery d at time now: answer is the other group's reply,
// or nil when the delivery failed or its outcome is unknown. It returns
// the request to propose to the group, or nil (also for an
// acknowledgement of a decision, which a later Tick proposes). The message, if its answer
// is not applied by then, goes again RetryAfter later; the runtime calls
// Tick after Answered, since a free delivery slot and the new retry time
// are news to it.
func (p *ShardPump) Answered(now time.Duration, d Delivery, answer []byte) []byte {
	p.init()
	if _, ok := p.inflight[d.Key]; ok {
		delete(p.inflight, d.Key)
		if p.perGroup[d.To]--; p.perGroup[d.To] <= 0 {
			delete(p.perGroup, d.To)
		}
	}
	if d.Key != configKey {
		p.ended[d.Key] = now
	}
	if len(answer) == 0 {
		return nil
	}
	if d.decision {
		if len(p.acks) == 0 {
			p.acksSince = now
		}
		p.acks = append(p.acks, answer)
		return nil
	}
	if d.Key != configKey {
		p.answered = true
		return answer
	}
	if r, err := shardctl.DecodeReply(answer); err == nil && r.Err == "" && r.Config.Num == d.want {
		return txn.EncodeConfigRequest(&r.Config)
	}
	return nil
}
