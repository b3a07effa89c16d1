package paxos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/chaoskv/chaos/kvnode/internal/wirebin"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// ErrMalformed is matched by every decoding error of this package.
var ErrMalformed = errors.New("paxos: malformed encoding")

// wireVersion leads every encoded message, entry, hard state and snapshot
// meta. Version 2 added configurations to values.
const wireVersion = 2

// Message type tags on the wire.
const (
	tagPrepare byte = iota + 1
	tagPromise
	tagNack
	tagAccept
	tagAccepted
	tagHeartbeat
	tagHeartbeatReply
	tagLearn
	tagInstallSnapshot
)

// Codec is the wire codec of the Paxos messages: a version byte, a type
// byte, then the fields as uvarints and length-prefixed bytes.
type Codec struct{}

var _ replica.Codec = Codec{}

// AppendMessage appends the encoding of m to b. m must be one of this
// package's message types, as a pointer.
func (Codec) AppendMessage(b []byte, m replica.Message) ([]byte, error) {
	var tag byte
	var h Header
	switch m := m.(type) {
	case *Prepare:
		tag, h = tagPrepare, m.Header
	case *Promise:
		tag, h = tagPromise, m.Header
	case *Nack:
		tag, h = tagNack, m.Header
	case *Accept:
		tag, h = tagAccept, m.Header
	case *Accepted:
		tag, h = tagAccepted, m.Header
	case *Heartbeat:
		tag, h = tagHeartbeat, m.Header
	case *HeartbeatReply:
		tag, h = tagHeartbeatReply, m.Header
	case *Learn:
		tag, h = tagLearn, m.Header
	case *InstallSnapshot:
		tag, h = tagInstallSnapshot, m.Header
	default:
		return b, fmt.Errorf("paxos codec: unknown message type %T", m)
	}
	b = append(b, wireVersion, tag)
	b = binary.AppendUvarint(b, uint64(h.From))
	b = binary.AppendUvarint(b, uint64(h.To))
	switch m := m.(type) {
	case *Prepare:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.FromSlot)
	case *Promise:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.FromSlot)
		b = binary.AppendUvarint(b, m.Commit)
		b = binary.AppendUvarint(b, uint64(len(m.Entries)))
		for _, e := range m.Entries {
			b = binary.AppendUvarint(b, e.Slot)
			b = appendBallot(b, e.Ballot)
			b = wirebin.AppendBool(b, e.Chosen)
			b = appendValue(b, e.Value)
		}
		b = wirebin.AppendBool(b, m.Snapshot != nil)
		if m.Snapshot != nil {
			b = appendSnapshot(b, *m.Snapshot)
		}
	case *Nack:
		b = appendBallot(b, m.Ballot)
		b = appendBallot(b, m.Promised)
	case *Accept:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.Slot)
		b = binary.AppendUvarint(b, m.Commit)
		b = appendValue(b, m.Value)
	case *Accepted:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.Slot)
		b = binary.AppendUvarint(b, m.Commit)
	case *Heartbeat:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.Commit)
		b = binary.AppendUvarint(b, m.Read)
	case *HeartbeatReply:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.Commit)
		b = binary.AppendUvarint(b, m.LeaderCommit)
		b = binary.AppendUvarint(b, m.Read)
	case *Learn:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.Commit)
		b = binary.AppendUvarint(b, uint64(len(m.Entries)))
		for _, e := range m.Entries {
			b = binary.AppendUvarint(b, e.Slot)
			b = appendValue(b, e.Value)
		}
	case *InstallSnapshot:
		b = appendBallot(b, m.Ballot)
		b = appendSnapshot(b, m.Snapshot)
	}
	return b, nil
}

// DecodeMessage decodes one message that AppendMessage produced. It
// rejects malformed input with an error and never panics.
func (Codec) DecodeMessage(b []byte) (replica.Message, error) {
	// One copy of the input backs every byte field of the message, so the
	// caller may reuse b and decoding costs one allocation, not one per op.
	d := decoder{wirebin.NewDecoder(slices.Clone(b), ErrMalformed).Shared()}
	if v := d.Byte("version"); d.Err() == nil && v != wireVersion {
		return nil, fmt.Errorf("paxos codec: %w: unknown version %d", ErrMalformed, v)
	}
	tag := d.Byte("type")
	h := Header{From: d.node("from"), To: d.node("to")}
	var m replica.Message
	switch tag {
	case tagPrepare:
		m = &Prepare{Header: h, Ballot: d.ballot(), FromSlot: d.Uvarint("from slot")}
	case tagPromise:
		p := &Promise{Header: h, Ballot: d.ballot(), FromSlot: d.Uvarint("from slot"), Commit: d.Uvarint("commit")}
		n := d.Count("entries count", 4)
		for i := 0; i < n && d.Err() == nil; i++ {
			p.Entries = append(p.Entries, PromiseEntry{Slot: d.Uvarint("slot"), Ballot: d.ballot(), Chosen: d.Bool("chosen"), Value: d.value()})
		}
		if d.Bool("has snapshot") {
			s := d.snapshot()
			p.Snapshot = &s
		}
		m = p
	case tagNack:
		m = &Nack{Header: h, Ballot: d.ballot(), Promised: d.ballot()}
	case tagAccept:
		a := &Accept{Header: h, Ballot: d.ballot(), Slot: d.Uvarint("slot"), Commit: d.Uvarint("commit")}
		a.Value = d.value()
		m = a
	case tagAccepted:
		m = &Accepted{Header: h, Ballot: d.ballot(), Slot: d.Uvarint("slot"), Commit: d.Uvarint("commit")}
	case tagHeartbeat:
		m = &Heartbeat{Header: h, Ballot: d.ballot(), Commit: d.Uvarint("commit"), Read: d.Uvarint("read round")}
	case tagHeartbeatReply:
		m = &HeartbeatReply{Header: h, Ballot: d.ballot(), Commit: d.Uvarint("commit"), LeaderCommit: d.Uvarint("leader commit"), Read: d.Uvarint("read round")}
	case tagLearn:
		l := &Learn{Header: h, Ballot: d.ballot(), Commit: d.Uvarint("commit")}
		n := d.Count("entries count", 2)
		for i := 0; i < n && d.Err() == nil; i++ {
			l.Entries = append(l.Entries, LearnEntry{Slot: d.Uvarint("slot"), Value: d.value()})
		}
		m = l
	case tagInstallSnapshot:
		m = &InstallSnapshot{Header: h, Ballot: d.ballot(), Snapshot: d.snapshot()}
	default:
		if d.Err() == nil {
			d.Fail(fmt.Sprintf("unknown message type %d", tag))
		}
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("paxos codec: %w", err)
	}
	return m, nil
}

func appendBallot(b []byte, x Ballot) []byte {
	b = binary.AppendUvarint(b, x.Round)
	return binary.AppendUvarint(b, uint64(x.Node))
}

func appendValue(b []byte, v Value) []byte {
	b = binary.AppendUvarint(b, uint64(len(v.Reqs)))
	for _, r := range v.Reqs {
		b = binary.AppendUvarint(b, r.ClientID)
		b = binary.AppendUvarint(b, r.Seq)
		b = wirebin.AppendBytes(b, r.Op)
	}
	b = binary.AppendUvarint(b, uint64(len(v.Config)))
	for _, id := range v.Config {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

func appendSnapshot(b []byte, s replica.Snapshot) []byte {
	b = binary.AppendUvarint(b, s.Index)
	b = wirebin.AppendBytes(b, s.Meta)
	return wirebin.AppendBytes(b, s.Data)
}

// encodeEntry is the persisted form of one slot: version, accepted
// ballot, chosen flag, value.
func encodeEntry(e *slot) []byte {
	b := make([]byte, 0, 16+valueSize(e.value))
	b = append(b, wireVersion)
	b = appendBallot(b, e.ballot)
	b = wirebin.AppendBool(b, e.chosen)
	return appendValue(b, e.value)
}

func decodeEntry(data []byte) (ballot Ballot, chosen bool, v Value, err error) {
	d := decoder{wirebin.NewDecoder(data, ErrMalformed)}
	if ver := d.Byte("version"); d.Err() == nil && ver != wireVersion {
		d.Fail(fmt.Sprintf("unknown entry version %d", ver))
	}
	ballot, chosen, v = d.ballot(), d.Bool("chosen"), d.value()
	if err := d.Finish(); err != nil {
		return Ballot{}, false, Value{}, fmt.Errorf("decode entry: %w", err)
	}
	return ballot, chosen, v, nil
}

// hardState is what State persists: the promise and a commit index whose
// chosen values are already durable in the entries or the snapshot.
type hardState struct {
	promised Ballot
	commit   uint64
}

func encodeState(h hardState) []byte {
	b := make([]byte, 0, 24)
	b = append(b, wireVersion)
	b = appendBallot(b, h.promised)
	return binary.AppendUvarint(b, h.commit)
}

func decodeState(data []byte) (hardState, error) {
	d := decoder{wirebin.NewDecoder(data, ErrMalformed)}
	if ver := d.Byte("version"); d.Err() == nil && ver != wireVersion {
		d.Fail(fmt.Sprintf("unknown state version %d", ver))
	}
	h := hardState{promised: d.ballot(), commit: d.Uvarint("commit")}
	if err := d.Finish(); err != nil {
		return hardState{}, fmt.Errorf("decode hard state: %w", err)
	}
	return h, nil
}

func valueSize(v Value) int {
	n := 3 + 5*len(v.Config)
	for _, r := range v.Reqs {
		n += 24 + len(r.Op)
	}
	return n
}

// decoder reads the encodings above with the shared wire decoder; the
// first error sticks and later reads return zero values.
type decoder struct{ wirebin.Decoder }

func (d *decoder) node(what string) replica.NodeID {
	return replica.NodeID(d.Uint32(what))
}

func (d *decoder) ballot() Ballot {
	return Ballot{Round: d.Uvarint("ballot round"), Node: d.node("ballot node")}
}

func (d *decoder) value() Value {
	n := d.Count("requests count", 3)
	var v Value
	if n > 0 {
		v.Reqs = make([]replica.Request, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		v.Reqs = append(v.Reqs, replica.Request{ClientID: d.Uvarint("client"), Seq: d.Uvarint("seq"), Op: d.Bytes("op")})
	}
	v.Config = d.members()
	return v
}

// members decodes a configuration: nil when empty, else at most maxPeers
// non-zero IDs in ascending order, the only form a core produces.
func (d *decoder) members() []replica.NodeID {
	n := d.Count("members count", 1)
	if n > maxPeers {
		d.Fail(fmt.Sprintf("%d members, at most %d", n, maxPeers))
		return nil
	}
	var ids []replica.NodeID
	for i := 0; i < n && d.Err() == nil; i++ {
		id := d.node("member")
		if id == 0 || (len(ids) > 0 && id <= ids[len(ids)-1]) {
			d.Fail("members not ascending non-zero IDs")
			return nil
		}
		ids = append(ids, id)
	}
	return ids
}

// config is a configuration as snapshot meta records it.
type config struct {
	from uint64
	ids  []replica.NodeID
}

// encodeConfigs is the snapshot meta: the configurations that govern the
// slots above the applied index, which the snapshot is taken at.
func (n *Node) encodeConfigs() []byte {
	b := []byte{wireVersion}
	b = binary.AppendUvarint(b, uint64(len(n.configs)))
	for _, c := range n.configs {
		b = binary.AppendUvarint(b, c.from)
		b = binary.AppendUvarint(b, uint64(len(c.ids)))
		for _, id := range c.ids {
			b = binary.AppendUvarint(b, uint64(id))
		}
	}
	return b
}

func decodeConfigs(data []byte) ([]config, error) {
	d := decoder{wirebin.NewDecoder(data, ErrMalformed)}
	if ver := d.Byte("version"); d.Err() == nil && ver != wireVersion {
		d.Fail(fmt.Sprintf("unknown snapshot meta version %d", ver))
	}
	n := d.Count("configurations count", 2)
	var cs []config
	for i := 0; i < n && d.Err() == nil; i++ {
		c := config{from: d.Uvarint("from"), ids: d.members()}
		if d.Err() == nil && (c.ids == nil || (len(cs) > 0 && c.from <= cs[len(cs)-1].from)) {
			d.Fail("configurations not ascending and non-empty")
		}
		cs = append(cs, c)
	}
	if d.Err() == nil && len(cs) == 0 {
		d.Fail("no configuration")
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode snapshot meta: %w", err)
	}
	return cs, nil
}

func (d *decoder) snapshot() replica.Snapshot {
	return replica.Snapshot{Index: d.Uvarint("snapshot index"), Meta: d.Bytes("snapshot meta"), Data: d.Bytes("snapshot data")}
}
