package paxos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// ErrMalformed is matched by every decoding error of this package.
var ErrMalformed = errors.New("paxos: malformed encoding")

// wireVersion leads every encoded message, entry and hard state.
const wireVersion = 1

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
			b = appendBool(b, e.Chosen)
			b = appendValue(b, e.Value)
		}
		b = appendBool(b, m.Snapshot != nil)
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
	case *HeartbeatReply:
		b = appendBallot(b, m.Ballot)
		b = binary.AppendUvarint(b, m.Commit)
		b = binary.AppendUvarint(b, m.LeaderCommit)
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
	d := decoder{b: slices.Clone(b), share: true}
	if v := d.byte("version"); d.err == nil && v != wireVersion {
		return nil, fmt.Errorf("paxos codec: %w: unknown version %d", ErrMalformed, v)
	}
	tag := d.byte("type")
	h := Header{From: d.node("from"), To: d.node("to")}
	var m replica.Message
	switch tag {
	case tagPrepare:
		m = &Prepare{Header: h, Ballot: d.ballot(), FromSlot: d.uvarint("from slot")}
	case tagPromise:
		p := &Promise{Header: h, Ballot: d.ballot(), FromSlot: d.uvarint("from slot"), Commit: d.uvarint("commit")}
		n := d.count("entries", 4)
		for i := 0; i < n && d.err == nil; i++ {
			p.Entries = append(p.Entries, PromiseEntry{Slot: d.uvarint("slot"), Ballot: d.ballot(), Chosen: d.bool("chosen"), Value: d.value()})
		}
		if d.bool("has snapshot") {
			s := d.snapshot()
			p.Snapshot = &s
		}
		m = p
	case tagNack:
		m = &Nack{Header: h, Ballot: d.ballot(), Promised: d.ballot()}
	case tagAccept:
		a := &Accept{Header: h, Ballot: d.ballot(), Slot: d.uvarint("slot"), Commit: d.uvarint("commit")}
		a.Value = d.value()
		m = a
	case tagAccepted:
		m = &Accepted{Header: h, Ballot: d.ballot(), Slot: d.uvarint("slot"), Commit: d.uvarint("commit")}
	case tagHeartbeat:
		m = &Heartbeat{Header: h, Ballot: d.ballot(), Commit: d.uvarint("commit")}
	case tagHeartbeatReply:
		m = &HeartbeatReply{Header: h, Ballot: d.ballot(), Commit: d.uvarint("commit"), LeaderCommit: d.uvarint("leader commit")}
	case tagLearn:
		l := &Learn{Header: h, Ballot: d.ballot(), Commit: d.uvarint("commit")}
		n := d.count("entries", 2)
		for i := 0; i < n && d.err == nil; i++ {
			l.Entries = append(l.Entries, LearnEntry{Slot: d.uvarint("slot"), Value: d.value()})
		}
		m = l
	case tagInstallSnapshot:
		m = &InstallSnapshot{Header: h, Ballot: d.ballot(), Snapshot: d.snapshot()}
	default:
		if d.err == nil {
			d.fail(fmt.Sprintf("unknown message type %d", tag))
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("paxos codec: %w", err)
	}
	return m, nil
}

func appendBallot(b []byte, x Ballot) []byte {
	b = binary.AppendUvarint(b, x.Round)
	return binary.AppendUvarint(b, uint64(x.Node))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendValue(b []byte, v Value) []byte {
	b = binary.AppendUvarint(b, uint64(len(v.Reqs)))
	for _, r := range v.Reqs {
		b = binary.AppendUvarint(b, r.ClientID)
		b = binary.AppendUvarint(b, r.Seq)
		b = appendBytes(b, r.Op)
	}
	return b
}

func appendSnapshot(b []byte, s replica.Snapshot) []byte {
	b = binary.AppendUvarint(b, s.Index)
	b = appendBytes(b, s.Meta)
	return appendBytes(b, s.Data)
}

// encodeEntry is the persisted form of one slot: version, accepted
// ballot, chosen flag, value.
func encodeEntry(e *slot) []byte {
	b := make([]byte, 0, 16+valueSize(e.value))
	b = append(b, wireVersion)
	b = appendBallot(b, e.ballot)
	b = appendBool(b, e.chosen)
	return appendValue(b, e.value)
}

func decodeEntry(data []byte) (ballot Ballot, chosen bool, v Value, err error) {
	d := decoder{b: data}
	if ver := d.byte("version"); d.err == nil && ver != wireVersion {
		d.fail(fmt.Sprintf("unknown entry version %d", ver))
	}
	ballot, chosen, v = d.ballot(), d.bool("chosen"), d.value()
	if err := d.finish(); err != nil {
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
	d := decoder{b: data}
	if ver := d.byte("version"); d.err == nil && ver != wireVersion {
		d.fail(fmt.Sprintf("unknown state version %d", ver))
	}
	h := hardState{promised: d.ballot(), commit: d.uvarint("commit")}
	if err := d.finish(); err != nil {
		return hardState{}, fmt.Errorf("decode hard state: %w", err)
	}
	return h, nil
}

func valueSize(v Value) int {
	n := 2
	for _, r := range v.Reqs {
		n += 24 + len(r.Op)
	}
	return n
}

// decoder reads the encodings above; the first error sticks and later
// reads return zero values.
type decoder struct {
	b     []byte
	pos   int
	err   error
	share bool // b is private: byte fields may alias it
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, msg)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.pos >= len(d.b) {
		d.fail("missing " + what)
		return 0
	}
	c := d.b[d.pos]
	d.pos++
	return c
}

func (d *decoder) bool(what string) bool {
	switch c := d.byte(what); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(fmt.Sprintf("bad %s byte %d", what, c))
		return false
	}
}

func (d *decoder) uvarint(what string) uint64 {
	return d.uvarintSuffix(what, "")
}

// uvarintSuffix reads a uvarint named what+suffix in errors; the name is
// only built on failure, which keeps the hot path free of allocations.
func (d *decoder) uvarintSuffix(what, suffix string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 || (n > 1 && d.b[d.pos+n-1] == 0) {
		d.fail(fmt.Sprintf("bad %s%s at byte %d", what, suffix, d.pos))
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) node(what string) replica.NodeID {
	v := d.uvarint(what)
	if v > math.MaxUint32 {
		d.fail(fmt.Sprintf("%s %d out of range", what, v))
		return 0
	}
	return replica.NodeID(v)
}

func (d *decoder) ballot() Ballot {
	return Ballot{Round: d.uvarint("ballot round"), Node: d.node("ballot node")}
}

// count reads a length that must fit in the remaining input, given that
// each element takes at least min bytes.
func (d *decoder) count(what string, min int) int {
	n := d.uvarintSuffix(what, " count")
	if d.err == nil && n > uint64((len(d.b)-d.pos)/min) {
		d.fail(fmt.Sprintf("%s count %d exceeds input", what, n))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarintSuffix(what, " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.pos) {
		d.fail(fmt.Sprintf("%s is %d bytes, %d left", what, n, len(d.b)-d.pos))
		return nil
	}
	if n == 0 {
		return nil
	}
	end := d.pos + int(n)
	var p []byte
	if d.share {
		p = d.b[d.pos:end:end]
	} else {
		p = slices.Clone(d.b[d.pos:end])
	}
	d.pos = end
	return p
}

func (d *decoder) value() Value {
	n := d.count("requests", 3)
	var v Value
	if n > 0 {
		v.Reqs = make([]replica.Request, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		v.Reqs = append(v.Reqs, replica.Request{ClientID: d.uvarint("client"), Seq: d.uvarint("seq"), Op: d.bytes("op")})
	}
	return v
}

func (d *decoder) snapshot() replica.Snapshot {
	return replica.Snapshot{Index: d.uvarint("snapshot index"), Meta: d.bytes("snapshot meta"), Data: d.bytes("snapshot data")}
}

func (d *decoder) finish() error {
	if d.err == nil && d.pos != len(d.b) {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)-d.pos))
	}
	return d.err
}
