package vr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/chaoskv/chaos/kvnode/internal/wirebin"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// ErrMalformed is matched by every decoding error of this package.
var ErrMalformed = errors.New("vr: malformed encoding")

// wireVersion leads every encoded message, entry, hard state and snapshot
// meta. Version 2 added epochs: the sender's epoch in every message, the
// reconfiguration in values, StartEpoch, EpochStarted and GetEpochState,
// and the epoch's configuration in the hard state and snapshot meta.
const wireVersion = 2

// Message type tags on the wire.
const (
	tagPrepare byte = iota + 1
	tagPrepareOK
	tagCommit
	tagStartViewChange
	tagDoViewChange
	tagStartView
	tagGetState
	tagNewState
	tagRecovery
	tagRecoveryResponse
	tagStartEpoch
	tagEpochStarted
	tagGetEpochState
)

// Codec is the wire codec of the VR messages: a version byte, a type byte,
// then the fields as uvarints and length-prefixed bytes.
type Codec struct{}

var _ replica.Codec = Codec{}

// AppendMessage appends the encoding of m to b. m must be one of this
// package's message types, as a pointer.
func (Codec) AppendMessage(b []byte, m replica.Message) ([]byte, error) {
	if isNil(m) {
		return b, fmt.Errorf("vr codec: nil message")
	}
	var tag byte
	switch m.(type) {
	case *Prepare:
		tag = tagPrepare
	case *PrepareOK:
		tag = tagPrepareOK
	case *Commit:
		tag = tagCommit
	case *StartViewChange:
		tag = tagStartViewChange
	case *DoViewChange:
		tag = tagDoViewChange
	case *StartView:
		tag = tagStartView
	case *GetState:
		tag = tagGetState
	case *NewState:
		tag = tagNewState
	case *Recovery:
		tag = tagRecovery
	case *RecoveryResponse:
		tag = tagRecoveryResponse
	case *StartEpoch:
		tag = tagStartEpoch
	case *EpochStarted:
		tag = tagEpochStarted
	case *GetEpochState:
		tag = tagGetEpochState
	default:
		return b, fmt.Errorf("vr codec: unknown message type %T", m)
	}
	b = append(b, wireVersion, tag)
	b = binary.AppendUvarint(b, uint64(m.Source()))
	b = binary.AppendUvarint(b, uint64(m.Dest()))
	u := binary.AppendUvarint
	b = u(b, headerOf(m).Epoch)
	switch m := m.(type) {
	case *Prepare:
		b = u(u(u(b, m.View), m.Op), m.Commit)
		b = appendValue(b, m.Value)
	case *PrepareOK:
		b = u(u(u(b, m.View), m.Op), m.Read)
	case *Commit:
		b = u(u(u(u(b, m.View), m.Commit), m.Op), m.Read)
	case *StartViewChange:
		b = u(b, m.View)
	case *DoViewChange:
		b = u(u(u(b, m.View), m.LastNormal), m.Commit)
		b = appendSuffix(b, m.Log)
	case *StartView:
		b = u(u(b, m.View), m.Commit)
		b = appendSuffix(b, m.Log)
	case *GetState:
		b = u(u(b, m.View), m.Op)
	case *NewState:
		b = u(u(b, m.View), m.Commit)
		b = appendSuffix(b, m.Log)
	case *Recovery:
		b = u(u(b, m.Nonce), m.Commit)
	case *RecoveryResponse:
		b = u(u(b, m.View), m.Nonce)
		b = wirebin.AppendBool(b, m.Primary)
		b = u(b, m.Commit)
		b = appendSuffix(b, m.Log)
	case *StartEpoch:
		b = u(b, m.Start)
		b = appendMembers(appendMembers(b, m.Old), m.New)
	case *GetEpochState:
		b = u(b, m.Op)
	}
	return b, nil
}

// DecodeMessage decodes one message that AppendMessage produced. It
// rejects malformed input with an error and never panics.
func (Codec) DecodeMessage(b []byte) (replica.Message, error) {
	// One copy of the input backs every byte field of the message, so the
	// caller may reuse b.
	d := decoder{wirebin.NewDecoder(slices.Clone(b), ErrMalformed).Shared().WithoutOffsets()}
	if v := d.Byte("version"); d.Err() == nil && v != wireVersion {
		return nil, fmt.Errorf("vr codec: %w: unknown version %d", ErrMalformed, v)
	}
	tag := d.Byte("type")
	h := Header{From: d.node("from"), To: d.node("to"), Epoch: d.epoch()}
	var m replica.Message
	switch tag {
	case tagPrepare:
		p := &Prepare{Header: h, View: d.view("view"), Op: d.Uvarint("op"), Commit: d.Uvarint("commit")}
		p.Value = d.value()
		m = p
	case tagPrepareOK:
		m = &PrepareOK{Header: h, View: d.view("view"), Op: d.Uvarint("op"), Read: d.Uvarint("read round")}
	case tagCommit:
		m = &Commit{Header: h, View: d.view("view"), Commit: d.Uvarint("commit"), Op: d.Uvarint("op"), Read: d.Uvarint("read round")}
	case tagStartViewChange:
		m = &StartViewChange{Header: h, View: d.view("view")}
	case tagDoViewChange:
		x := &DoViewChange{Header: h, View: d.view("view"), LastNormal: d.view("last normal view"), Commit: d.Uvarint("commit")}
		x.Log = d.suffix()
		m = x
	case tagStartView:
		x := &StartView{Header: h, View: d.view("view"), Commit: d.Uvarint("commit")}
		x.Log = d.suffix()
		m = x
	case tagGetState:
		m = &GetState{Header: h, View: d.view("view"), Op: d.Uvarint("op")}
	case tagNewState:
		x := &NewState{Header: h, View: d.view("view"), Commit: d.Uvarint("commit")}
		x.Log = d.suffix()
		m = x
	case tagRecovery:
		m = &Recovery{Header: h, Nonce: d.Uvarint("nonce"), Commit: d.Uvarint("commit")}
	case tagRecoveryResponse:
		x := &RecoveryResponse{Header: h, View: d.view("view"), Nonce: d.Uvarint("nonce"), Primary: d.Bool("primary"), Commit: d.Uvarint("commit")}
		x.Log = d.suffix()
		m = x
	case tagStartEpoch:
		m = &StartEpoch{Header: h, Start: d.Uvarint("start"), Old: d.members("old members", true), New: d.members("new members", false)}
	case tagEpochStarted:
		m = &EpochStarted{Header: h}
	case tagGetEpochState:
		m = &GetEpochState{Header: h, Op: d.Uvarint("op")}
	default:
		if d.Err() == nil {
			d.Fail(fmt.Sprintf("unknown message type %d", tag))
		}
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("vr codec: %w", err)
	}
	return m, nil
}

func appendValue(b []byte, v Value) []byte {
	b = binary.AppendUvarint(b, uint64(len(v.Reqs)))
	for _, r := range v.Reqs {
		b = binary.AppendUvarint(b, r.ClientID)
		b = binary.AppendUvarint(b, r.Seq)
		b = wirebin.AppendBytes(b, r.Op)
	}
	return appendMembers(b, v.Config)
}

// appendMembers appends a configuration: its size, then each ID.
func appendMembers(b []byte, ids []replica.NodeID) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

// headerOf returns the header every message type embeds.
func headerOf(m replica.Message) Header {
	switch m := m.(type) {
	case *Prepare:
		return m.Header
	case *PrepareOK:
		return m.Header
	case *Commit:
		return m.Header
	case *StartViewChange:
		return m.Header
	case *DoViewChange:
		return m.Header
	case *StartView:
		return m.Header
	case *GetState:
		return m.Header
	case *NewState:
		return m.Header
	case *Recovery:
		return m.Header
	case *RecoveryResponse:
		return m.Header
	case *StartEpoch:
		return m.Header
	case *EpochStarted:
		return m.Header
	case *GetEpochState:
		return m.Header
	}
	return Header{}
}

func appendSuffix(b []byte, s Suffix) []byte {
	b = binary.AppendUvarint(b, s.After)
	b = binary.AppendUvarint(b, uint64(len(s.Entries)))
	for _, v := range s.Entries {
		b = appendValue(b, v)
	}
	b = wirebin.AppendBool(b, s.Snapshot != nil)
	if s.Snapshot != nil {
		b = binary.AppendUvarint(b, s.Snapshot.Index)
		b = wirebin.AppendBytes(b, s.Snapshot.Meta)
		b = wirebin.AppendBytes(b, s.Snapshot.Data)
	}
	return b
}

// encodeEntry is the persisted form of one op: version, then the batch.
func encodeEntry(v Value) []byte {
	n := 2
	for _, r := range v.Reqs {
		n += 24 + len(r.Op)
	}
	return appendValue(append(make([]byte, 0, n), wireVersion), v)
}

func decodeEntry(data []byte) (Value, error) {
	d := decoder{wirebin.NewDecoder(data, ErrMalformed).WithoutOffsets()}
	if ver := d.Byte("version"); d.Err() == nil && ver != wireVersion {
		d.Fail(fmt.Sprintf("unknown entry version %d", ver))
	}
	v := d.value()
	if err := d.Finish(); err != nil {
		return Value{}, fmt.Errorf("decode entry: %w", err)
	}
	return v, nil
}

// epochInfo is the configuration a replica works in: which epoch, the op
// whose reconfiguration began it (0 for the first), its members and the
// members of the epoch before (nil for the first).
type epochInfo struct {
	epoch uint64
	start uint64
	peers []replica.NodeID
	old   []replica.NodeID
}

func appendEpochInfo(b []byte, e epochInfo) []byte {
	b = binary.AppendUvarint(binary.AppendUvarint(b, e.epoch), e.start)
	return appendMembers(appendMembers(b, e.peers), e.old)
}

func (d *decoder) epochInfo() epochInfo {
	return epochInfo{epoch: d.epoch(), start: d.Uvarint("epoch start"), peers: d.members("members", false), old: d.members("old members", true)}
}

// encodeMeta is a snapshot's meta: the epoch the replica was in when it
// took it, so that a restart never finds its state ahead of its epoch.
func encodeMeta(e epochInfo) []byte { return appendEpochInfo([]byte{wireVersion}, e) }

func decodeMeta(data []byte) (epochInfo, error) {
	d := decoder{wirebin.NewDecoder(data, ErrMalformed).WithoutOffsets()}
	if ver := d.Byte("version"); d.Err() == nil && ver != wireVersion {
		d.Fail(fmt.Sprintf("unknown snapshot meta version %d", ver))
	}
	e := d.epochInfo()
	if err := d.Finish(); err != nil {
		return epochInfo{}, fmt.Errorf("decode snapshot meta: %w", err)
	}
	return e, nil
}

// hardState is what State persists.
type hardState struct {
	view       uint64
	lastNormal uint64
	dvcView    uint64
	boot       uint64 // incarnations of the replica before the current one
	commit     uint64 // every op up to here is committed and durable
	epochInfo         // the views above are views of this epoch
}

func encodeState(h hardState) []byte {
	b := make([]byte, 0, 48)
	b = append(b, wireVersion)
	for _, x := range []uint64{h.view, h.lastNormal, h.dvcView, h.boot, h.commit} {
		b = binary.AppendUvarint(b, x)
	}
	return appendEpochInfo(b, h.epochInfo)
}

func decodeState(data []byte) (hardState, error) {
	d := decoder{wirebin.NewDecoder(data, ErrMalformed).WithoutOffsets()}
	if ver := d.Byte("version"); d.Err() == nil && ver != wireVersion {
		d.Fail(fmt.Sprintf("unknown state version %d", ver))
	}
	h := hardState{view: d.view("view"), lastNormal: d.view("last normal view"), dvcView: d.view("do-view-change view"), boot: d.Uvarint("boot count"), commit: d.Uvarint("commit")}
	h.epochInfo = d.epochInfo()
	if d.Err() == nil && (h.lastNormal > h.view || h.dvcView > h.view) {
		d.Fail(fmt.Sprintf("views out of order: view %d, last normal %d, do-view-change %d", h.view, h.lastNormal, h.dvcView))
	}
	if err := d.Finish(); err != nil {
		return hardState{}, fmt.Errorf("decode hard state: %w", err)
	}
	return h, nil
}

// decoder reads the encodings above with the shared wire decoder; the
// first error sticks and later reads return zero values.
type decoder struct{ wirebin.Decoder }

func (d *decoder) node(what string) replica.NodeID {
	return replica.NodeID(d.Uint32(what))
}

// view reads a view number, which must fit below maxView.
func (d *decoder) view(what string) uint64 {
	v := d.Uvarint(what)
	if d.Err() == nil && v >= maxView {
		d.Fail(fmt.Sprintf("%s %d out of range", what, v))
	}
	return v
}

// epoch reads an epoch number, which must fit below maxEpoch.
func (d *decoder) epoch() uint64 {
	e := d.Uvarint("epoch")
	if d.Err() == nil && e >= maxEpoch {
		d.Fail(fmt.Sprintf("epoch %d out of range", e))
	}
	return e
}

// members reads a configuration: sorted, distinct, non-zero IDs, at most
// maxPeers, non-empty unless mayBeEmpty (then nil when empty).
func (d *decoder) members(what string, mayBeEmpty bool) []replica.NodeID {
	n := d.Count(what+" count", 1)
	if d.Err() != nil || n == 0 {
		if d.Err() == nil && !mayBeEmpty {
			d.Fail(what + ": empty configuration")
		}
		return nil
	}
	if n > maxPeers {
		d.Fail(fmt.Sprintf("%s: %d members, at most %d", what, n, maxPeers))
		return nil
	}
	ids := make([]replica.NodeID, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		id := d.node(what)
		if d.Err() == nil && (id == 0 || (i > 0 && id <= ids[i-1])) {
			d.Fail(what + ": IDs must be non-zero, sorted and distinct")
		}
		ids = append(ids, id)
	}
	return ids
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
	v.Config = d.members("configuration", true)
	if d.Err() == nil && v.Config != nil && v.Reqs != nil {
		d.Fail("a value holds requests or a configuration, not both")
	}
	return v
}

func (d *decoder) suffix() Suffix {
	s := Suffix{After: d.Uvarint("suffix start")}
	n := d.Count("entries count", 1)
	if n > 0 {
		s.Entries = make([]Value, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		s.Entries = append(s.Entries, d.value())
	}
	if s.Last() < s.After {
		d.Fail("suffix op numbers overflow")
	}
	if d.Bool("has snapshot") {
		snap := replica.Snapshot{Index: d.Uvarint("snapshot index"), Meta: d.Bytes("snapshot meta"), Data: d.Bytes("snapshot data")}
		if d.Err() == nil && snap.Index > s.After {
			d.Fail(fmt.Sprintf("snapshot %d beyond suffix start %d", snap.Index, s.After))
		}
		s.Snapshot = &snap
	}
	return s
}
