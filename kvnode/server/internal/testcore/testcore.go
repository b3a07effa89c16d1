// Package testcore is a deliberately small replication core for testing the
// runtime: the member with the lowest id is the leader for ever (there are
// no elections), it appends batches of requests to its log, replicates them
// to the followers, and commits an entry once a majority stored it. It is a
// pure state machine like the real cores, and it recovers from
// replica.Durable, so the runtime's persistence, transport and client paths
// can be tested without depending on a real protocol.
package testcore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Message kinds.
const (
	kindAppend = 1 // leader -> follower: entries from Index on, and Commit
	kindAck    = 2 // follower -> leader: everything up to Index is stored
)

// Msg is the core's only message type.
type Msg struct {
	Kind     uint8
	From, To replica.NodeID
	Index    uint64
	Commit   uint64
	Entries  [][]byte
}

// Source returns the sender.
func (m *Msg) Source() replica.NodeID { return m.From }

// Dest returns the addressee.
func (m *Msg) Dest() replica.NodeID { return m.To }

// Codec encodes Msg.
type Codec struct{}

// AppendMessage appends m's encoding to b.
func (Codec) AppendMessage(b []byte, m replica.Message) ([]byte, error) {
	x, ok := m.(*Msg)
	if !ok {
		return b, fmt.Errorf("testcore: cannot encode %T", m)
	}
	b = append(b, x.Kind)
	b = binary.BigEndian.AppendUint32(b, uint32(x.From))
	b = binary.BigEndian.AppendUint32(b, uint32(x.To))
	b = binary.BigEndian.AppendUint64(b, x.Index)
	b = binary.BigEndian.AppendUint64(b, x.Commit)
	b = binary.AppendUvarint(b, uint64(len(x.Entries)))
	for _, e := range x.Entries {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

// DecodeMessage decodes an AppendMessage output.
func (Codec) DecodeMessage(b []byte) (replica.Message, error) {
	if len(b) < 25 {
		return nil, errors.New("testcore: message too short")
	}
	m := &Msg{
		Kind:   b[0],
		From:   replica.NodeID(binary.BigEndian.Uint32(b[1:])),
		To:     replica.NodeID(binary.BigEndian.Uint32(b[5:])),
		Index:  binary.BigEndian.Uint64(b[9:]),
		Commit: binary.BigEndian.Uint64(b[17:]),
	}
	if m.Kind != kindAppend && m.Kind != kindAck {
		return nil, fmt.Errorf("testcore: unknown message kind %d", m.Kind)
	}
	b = b[25:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errors.New("testcore: bad entry count")
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errors.New("testcore: bad entry length")
		}
		m.Entries = append(m.Entries, slices.Clone(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("testcore: trailing bytes")
	}
	return m, nil
}

// Core is the fixed-leader core.
type Core struct {
	cfg     replica.Config
	leader  replica.NodeID
	sm      replica.StateMachine
	log     [][]byte // log[i] holds index i+1
	commit  uint64
	applied uint64
	match   map[replica.NodeID]uint64
	sent    map[replica.NodeID]uint64 // highest index sent to each follower
	ticks   int
	rd      replica.Ready
}

// New builds a core; it has the same shape as the real cores' constructors.
func New(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Core{cfg: cfg, leader: slices.Min(cfg.Peers), sm: sm, match: map[replica.NodeID]uint64{}, sent: map[replica.NodeID]uint64{}}
	if d != nil {
		for _, e := range d.Entries {
			if e.Index != uint64(len(c.log))+1 {
				return nil, fmt.Errorf("testcore: log hole at %d", len(c.log)+1)
			}
			c.log = append(c.log, e.Data)
		}
	}
	return c, nil
}

func (c *Core) isLeader() bool { return c.cfg.ID == c.leader }

// Tick retransmits from each follower's acknowledged position.
func (c *Core) Tick() {
	c.ticks++
	if !c.isLeader() || c.ticks%c.cfg.HeartbeatTicks != 0 {
		return
	}
	for _, p := range c.cfg.Peers {
		if p != c.cfg.ID {
			c.sendFrom(p, c.match[p]+1)
		}
	}
}

func (c *Core) sendFrom(p replica.NodeID, from uint64) {
	to := min(uint64(len(c.log)), from+63)
	var es [][]byte
	if from <= to {
		es = c.log[from-1 : to]
	}
	c.rd.Messages = append(c.rd.Messages, &Msg{Kind: kindAppend, From: c.cfg.ID, To: p, Index: from, Commit: c.commit, Entries: es})
	c.sent[p] = max(c.sent[p], to)
}

// Step handles a message.
func (c *Core) Step(m replica.Message) {
	x, ok := m.(*Msg)
	if !ok || x.To != c.cfg.ID {
		return
	}
	switch {
	case x.Kind == kindAppend && !c.isLeader() && x.From == c.leader:
		if x.Index > uint64(len(c.log))+1 || x.Index == 0 {
			c.ack()
			return
		}
		for i, e := range x.Entries {
			idx := x.Index + uint64(i)
			if idx <= uint64(len(c.log)) {
				c.log[idx-1] = e
			} else {
				c.log = append(c.log, e)
			}
			c.rd.Persist.Entries = append(c.rd.Persist.Entries, replica.Entry{Index: idx, Data: e})
		}
		c.commit = max(c.commit, min(x.Commit, uint64(len(c.log))))
		c.apply()
		c.ack()
	case x.Kind == kindAck && c.isLeader():
		if x.Index > c.match[x.From] {
			c.match[x.From] = x.Index
		}
		if x.Index < c.sent[x.From] {
			c.sent[x.From] = x.Index
		}
		c.advance()
	}
}

func (c *Core) ack() {
	c.rd.Messages = append(c.rd.Messages, &Msg{Kind: kindAck, From: c.cfg.ID, To: c.leader, Index: uint64(len(c.log))})
}

func (c *Core) advance() {
	ms := []uint64{uint64(len(c.log))}
	for _, p := range c.cfg.Peers {
		if p != c.cfg.ID {
			ms = append(ms, c.match[p])
		}
	}
	slices.Sort(ms)
	if q := ms[len(ms)-(len(ms)/2+1)]; q > c.commit {
		c.commit = q
		c.apply()
	}
}

func (c *Core) apply() {
	for c.applied < c.commit {
		c.applied++
		for _, r := range decodeBatch(c.log[c.applied-1]) {
			v := c.sm.Apply(c.applied, r)
			c.rd.Results = append(c.rd.Results, replica.Result{ClientID: r.ClientID, Seq: r.Seq, Index: c.applied, Value: v})
		}
	}
}

// Propose appends the requests as one entry and sends it to every
// follower that is caught up.
func (c *Core) Propose(reqs ...replica.Request) error {
	if !c.isLeader() {
		return &replica.NotLeaderError{Leader: c.leader}
	}
	for len(reqs) > 0 {
		n := len(reqs)
		if c.cfg.MaxBatch > 0 {
			n = min(n, c.cfg.MaxBatch)
		}
		e := encodeBatch(reqs[:n])
		reqs = reqs[n:]
		c.log = append(c.log, e)
		idx := uint64(len(c.log))
		c.rd.Persist.Entries = append(c.rd.Persist.Entries, replica.Entry{Index: idx, Data: e})
		for _, p := range c.cfg.Peers {
			if p != c.cfg.ID && c.sent[p] == idx-1 {
				c.sendFrom(p, idx)
			}
		}
	}
	if len(c.cfg.Peers) == 1 {
		c.advance()
	}
	return nil
}

// Ready drains the outputs.
func (c *Core) Ready() replica.Ready {
	rd := c.rd
	c.rd = replica.Ready{}
	return rd
}

// HasReady reports whether Ready has anything.
func (c *Core) HasReady() bool { return !c.rd.Empty() }

// Status describes the core.
func (c *Core) Status() replica.Status {
	role := "follower"
	if c.isLeader() {
		role = "leader"
	}
	return replica.Status{ID: c.cfg.ID, Role: role, Leader: c.leader, Commit: c.commit, Applied: c.applied, LogLen: len(c.log)}
}

func encodeBatch(reqs []replica.Request) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(reqs)))
	for _, r := range reqs {
		b = binary.BigEndian.AppendUint64(b, r.ClientID)
		b = binary.BigEndian.AppendUint64(b, r.Seq)
		b = binary.AppendUvarint(b, uint64(len(r.Op)))
		b = append(b, r.Op...)
	}
	return b
}

// decodeBatch decodes an encodeBatch output; a malformed entry decodes to
// the requests before the damage.
func decodeBatch(b []byte) []replica.Request {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil
	}
	b = b[k:]
	var out []replica.Request
	for i := uint64(0); i < n && len(b) >= 16; i++ {
		r := replica.Request{ClientID: binary.BigEndian.Uint64(b), Seq: binary.BigEndian.Uint64(b[8:])}
		l, k := binary.Uvarint(b[16:])
		if k <= 0 || l > uint64(len(b)-16-k) {
			return out
		}
		r.Op = b[16+k : 16+k+int(l)]
		b = b[16+k+int(l):]
		out = append(out, r)
	}
	return out
}
