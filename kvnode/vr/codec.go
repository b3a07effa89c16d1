package vr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// ErrMalformed is matched by every decoding error of this package.
var ErrMalformed = errors.New("vr: malformed encoding")

// wireVersion leads every encoded message, entry and hard state.
const wireVersion = 1

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
	default:
		return b, fmt.Errorf("vr codec: unknown message type %T", m)
	}
	b = append(b, wireVersion, tag)
	b = binary.AppendUvarint(b, uint64(m.Source()))
	b = binary.AppendUvarint(b, uint64(m.Dest()))
	u := binary.AppendUvarint
	switch m := m.(type) {
	case *Prepare:
		b = u(u(u(b, m.View), m.Op), m.Commit)
		b = appendValue(b, m.Value)
	case *PrepareOK:
		b = u(u(b, m.View), m.Op)
	case *Commit:
		b = u(u(u(b, m.View), m.Commit), m.Op)
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
		b = appendBool(b, m.Primary)
		b = u(b, m.Commit)
		b = appendSuffix(b, m.Log)
	}
	return b, nil
}

// DecodeMessage decodes one message that AppendMessage produced. It
// rejects malformed input with an error and never panics.
func (Codec) DecodeMessage(b []byte) (replica.Message, error) {
	// One copy of the input backs every byte field of the message, so the
	// caller may reuse b.
	d := decoder{b: slices.Clone(b), share: true}
	if v := d.byte("version"); d.err == nil && v != wireVersion {
		return nil, fmt.Errorf("vr codec: %w: unknown version %d", ErrMalformed, v)
	}
	tag := d.byte("type")
	h := Header{From: d.node("from"), To: d.node("to")}
	var m replica.Message
	switch tag {
	case tagPrepare:
		p := &Prepare{Header: h, View: d.uvarint("view"), Op: d.uvarint("op"), Commit: d.uvarint("commit")}
		p.Value = d.value()
		m = p
	case tagPrepareOK:
		m = &PrepareOK{Header: h, View: d.uvarint("view"), Op: d.uvarint("op")}
	case tagCommit:
		m = &Commit{Header: h, View: d.uvarint("view"), Commit: d.uvarint("commit"), Op: d.uvarint("op")}
	case tagStartViewChange:
		m = &StartViewChange{Header: h, View: d.uvarint("view")}
	case tagDoViewChange:
		x := &DoViewChange{Header: h, View: d.uvarint("view"), LastNormal: d.uvarint("last normal view"), Commit: d.uvarint("commit")}
		x.Log = d.suffix()
		m = x
	case tagStartView:
		x := &StartView{Header: h, View: d.uvarint("view"), Commit: d.uvarint("commit")}
		x.Log = d.suffix()
		m = x
	case tagGetState:
		m = &GetState{Header: h, View: d.uvarint("view"), Op: d.uvarint("op")}
	case tagNewState:
		x := &NewState{Header: h, View: d.uvarint("view"), Commit: d.uvarint("commit")}
		x.Log = d.suffix()
		m = x
	case tagRecovery:
		m = &Recovery{Header: h, Nonce: d.uvarint("nonce"), Commit: d.uvarint("commit")}
	case tagRecoveryResponse:
		x := &RecoveryResponse{Header: h, View: d.uvarint("view"), Nonce: d.uvarint("nonce"), Primary: d.bool("primary"), Commit: d.uvarint("commit")}
		x.Log = d.suffix()
		m = x
	default:
		if d.err == nil {
			d.fail(fmt.Sprintf("unknown message type %d", tag))
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("vr codec: %w", err)
	}
	return m, nil
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

func appendSuffix(b []byte, s Suffix) []byte {
	b = binary.AppendUvarint(b, s.After)
	b = binary.AppendUvarint(b, uint64(len(s.Entries)))
	for _, v := range s.Entries {
		b = appendValue(b, v)
	}
	b = appendBool(b, s.Snapshot != nil)
	if s.Snapshot != nil {
		b = binary.AppendUvarint(b, s.Snapshot.Index)
		b = appendBytes(b, s.Snapshot.Meta)
		b = appendBytes(b, s.Snapshot.Data)
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
	d := decoder{b: data}
	if ver := d.byte("version"); d.err == nil && ver != wireVersion {
		d.fail(fmt.Sprintf("unknown entry version %d", ver))
	}
	v := d.value()
	if err := d.finish(); err != nil {
		return Value{}, fmt.Errorf("decode entry: %w", err)
	}
	return v, nil
}

// hardState is what State persists.
type hardState struct {
	view       uint64
	lastNormal uint64
	dvcView    uint64
	boot       uint64 // incarnations of the replica before the current one
	commit     uint64 // every op up to here is committed and durable
}

func encodeState(h hardState) []byte {
	b := make([]byte, 0, 32)
	b = append(b, wireVersion)
	for _, x := range []uint64{h.view, h.lastNormal, h.dvcView, h.boot, h.commit} {
		b = binary.AppendUvarint(b, x)
	}
	return b
}

func decodeState(data []byte) (hardState, error) {
	d := decoder{b: data}
	if ver := d.byte("version"); d.err == nil && ver != wireVersion {
		d.fail(fmt.Sprintf("unknown state version %d", ver))
	}
	h := hardState{view: d.uvarint("view"), lastNormal: d.uvarint("last normal view"), dvcView: d.uvarint("do-view-change view"), boot: d.uvarint("boot count"), commit: d.uvarint("commit")}
	if d.err == nil && (h.lastNormal > h.view || h.dvcView > h.view) {
		d.fail(fmt.Sprintf("views out of order: view %d, last normal %d, do-view-change %d", h.view, h.lastNormal, h.dvcView))
	}
	if err := d.finish(); err != nil {
		return hardState{}, fmt.Errorf("decode hard state: %w", err)
	}
	return h, nil
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
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	// A non-minimal encoding is rejected so every message has exactly
	// one encoding.
	if n <= 0 || (n > 1 && d.b[d.pos+n-1] == 0) {
		d.fail("bad " + what)
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

// count reads a length that must fit in the remaining input, given that
// each element takes at least min bytes.
func (d *decoder) count(what string, min int) int {
	n := d.uvarint(what + " count")
	if d.err == nil && n > uint64((len(d.b)-d.pos)/min) {
		d.fail(fmt.Sprintf("%s count %d exceeds input", what, n))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
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

func (d *decoder) suffix() Suffix {
	s := Suffix{After: d.uvarint("suffix start")}
	n := d.count("entries", 1)
	if n > 0 {
		s.Entries = make([]Value, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		s.Entries = append(s.Entries, d.value())
	}
	if s.Last() < s.After {
		d.fail("suffix op numbers overflow")
	}
	if d.bool("has snapshot") {
		snap := replica.Snapshot{Index: d.uvarint("snapshot index"), Meta: d.bytes("snapshot meta"), Data: d.bytes("snapshot data")}
		if d.err == nil && snap.Index > s.After {
			d.fail(fmt.Sprintf("snapshot %d beyond suffix start %d", snap.Index, s.After))
		}
		s.Snapshot = &snap
	}
	return s
}

func (d *decoder) finish() error {
	if d.err == nil && d.pos != len(d.b) {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)-d.pos))
	}
	return d.err
}
