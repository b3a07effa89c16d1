package vr

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

func sampleMessages() []replica.Message {
	h := Header{From: 1, To: 300, Epoch: maxEpoch - 1}
	v := Value{Reqs: []replica.Request{{ClientID: 7, Seq: 1 << 40, Op: []byte("put k v")}, {ClientID: 8, Seq: 2}}}
	snap := &replica.Snapshot{Index: 4, Meta: []byte("m"), Data: []byte("state")}
	full := Suffix{After: 4, Entries: []Value{v, {}}, Snapshot: snap}
	return []replica.Message{
		&Prepare{Header: h, View: 3, Op: 9, Commit: 8, Value: v},
		&PrepareOK{Header: h, View: 3, Op: 9},
		&PrepareOK{Header: h, View: 3, Op: 9, Read: 1 << 45},
		&Commit{Header: h, View: 3, Commit: 8, Op: 9},
		&Commit{Header: h, View: 3, Commit: 8, Op: 9, Read: 2},
		&StartViewChange{Header: h, View: maxView - 1},
		&Prepare{Header: Header{From: 2, To: 3}, View: 0, Op: 10, Commit: 9, Value: Value{Config: []replica.NodeID{2, 3, 1 << 31}}},
		&DoViewChange{Header: h, View: 4, LastNormal: 2, Commit: 5, Log: full},
		&StartView{Header: h, View: 4, Commit: 5, Log: Suffix{After: 5, Entries: []Value{v}}},
		&GetState{Header: h, View: 4, Op: 2},
		&NewState{Header: h, View: 4, Commit: 6, Log: full},
		&Recovery{Header: h, Nonce: 12345678901234, Commit: 3},
		&RecoveryResponse{Header: h, View: 4, Nonce: 12345678901234, Primary: true, Commit: 6, Log: full},
		&RecoveryResponse{Header: h, View: 4, Nonce: 1},
		&StartEpoch{Header: h, Start: 77, Old: []replica.NodeID{1, 2, 3}, New: []replica.NodeID{2, 4}},
		&StartEpoch{Header: h, Start: 1, New: []replica.NodeID{5}},
		&EpochStarted{Header: h},
		&GetEpochState{Header: h, Op: 12},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	var c Codec
	for _, m := range sampleMessages() {
		b, err := c.AppendMessage([]byte("prefix"), m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("%T: prefix overwritten", m)
		}
		got, err := c.DecodeMessage(b[len("prefix"):])
		if err != nil {
			t.Fatalf("%T: decode: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", m, got, m)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	var c Codec
	good, _ := c.AppendMessage(nil, &Commit{Header: Header{From: 1, To: 2}, View: 1, Commit: 2, Op: 3})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{9}, good[1:]...),
		"type":           {wireVersion, 99, 1, 2},
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"non-minimal":    {wireVersion, tagStartViewChange, 0x81, 0x00, 2, 3},
		"node too large": {wireVersion, tagStartViewChange, 0xff, 0xff, 0xff, 0xff, 0x7f, 2, 3},
		"bad bool":       {wireVersion, tagRecoveryResponse, 1, 2, 0, 3, 4, 7, 0, 0, 0, 0},
		"huge count":     {wireVersion, tagNewState, 1, 2, 0, 3, 4, 0, 0xff, 0xff, 0x03},
		"view range":     {wireVersion, tagStartViewChange, 1, 2, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40},
		"epoch range":    {wireVersion, tagEpochStarted, 1, 2, 0x80, 0x80, 0x80, 0x08},
		"unsorted":       {wireVersion, tagStartEpoch, 1, 2, 1, 5, 0, 2, 3, 2},
		"duplicate":      {wireVersion, tagStartEpoch, 1, 2, 1, 5, 0, 2, 3, 3},
		"zero member":    {wireVersion, tagStartEpoch, 1, 2, 1, 5, 0, 1, 0},
		"empty new":      {wireVersion, tagStartEpoch, 1, 2, 1, 5, 0, 0},
		"requests and configuration": mustEncode(t, &Prepare{Header: Header{From: 1, To: 2}, Op: 1,
			Value: Value{Reqs: []replica.Request{{ClientID: 1}}, Config: []replica.NodeID{1}}}),
		"snapshot beyond suffix": mustEncode(t, &NewState{Header: Header{From: 1, To: 2}, View: 1,
			Log: Suffix{After: 2, Snapshot: &replica.Snapshot{Index: 3}}}),
	} {
		if _, err := c.DecodeMessage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := c.AppendMessage(nil, nil); err == nil {
		t.Error("nil message encoded")
	}
	var nilCommit *Commit
	if _, err := c.AppendMessage(nil, nilCommit); err == nil {
		t.Error("nil pointer encoded")
	}
}

func mustEncode(t *testing.T, m replica.Message) []byte {
	t.Helper()
	b, err := Codec{}.AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStateAndEntryEncoding(t *testing.T) {
	h := hardState{view: 9, lastNormal: 7, dvcView: 9, boot: 3, commit: 100,
		epochInfo: epochInfo{epoch: 2, start: 40, peers: []replica.NodeID{1, 3, 4}, old: []replica.NodeID{1, 2, 3}}}
	got, err := decodeState(encodeState(h))
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("state round trip: %+v, %v", got, err)
	}
	if _, err := decodeState(encodeState(hardState{view: 1, lastNormal: 2, epochInfo: epochInfo{peers: []replica.NodeID{1}}})); err == nil {
		t.Error("last normal view above the view accepted")
	}
	v := Value{Reqs: []replica.Request{{ClientID: 1, Seq: 2, Op: []byte("x")}}}
	e, err := decodeEntry(encodeEntry(v))
	if err != nil || !reflect.DeepEqual(e, v) {
		t.Fatalf("entry round trip: %+v, %v", e, err)
	}
	if _, err := decodeEntry([]byte{wireVersion, 5}); err == nil {
		t.Error("truncated entry accepted")
	}
}

// FuzzCodec checks that decoding never panics and that whatever decodes
// encodes back to the same bytes (the encoding is canonical).
func FuzzCodec(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := Codec{}.AppendMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{wireVersion, tagDoViewChange, 1, 2, 3, 4, 5, 6, 2, 1, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Codec{}.DecodeMessage(b)
		if err != nil {
			return
		}
		out, err := Codec{}.AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("decoded %T does not encode: %v", m, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

// FuzzDurable checks that a replica restarts from arbitrary durable bytes
// with an error or a working node, never a panic.
func FuzzDurable(f *testing.F) {
	e := epochInfo{epoch: 1, start: 1, peers: []replica.NodeID{1, 2, 4}, old: []replica.NodeID{1, 2, 3}}
	f.Add(encodeState(hardState{view: 2, lastNormal: 1, commit: 1, epochInfo: e}), encodeEntry(Value{Reqs: []replica.Request{{ClientID: 1, Seq: 1, Op: []byte{1}}}}), []byte(nil))
	f.Add(encodeState(hardState{epochInfo: epochInfo{peers: []replica.NodeID{1, 2, 3}}}), encodeEntry(Value{Config: []replica.NodeID{2, 3, 4}}), encodeMeta(e))
	f.Add([]byte{wireVersion}, []byte{}, []byte{wireVersion})
	f.Fuzz(func(t *testing.T, state, entry, meta []byte) {
		d := &replica.Durable{State: state, Entries: []replica.Entry{{Index: 1, Data: entry}}}
		if meta != nil {
			data, err := kv.NewStore().Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			d.Snapshot = &replica.Snapshot{Meta: meta, Data: data}
		}
		n, err := New(DefaultConfig(1, []replica.NodeID{1, 2, 3}), newRecorder(), d)
		if err != nil {
			return
		}
		n.Tick()
		n.Ready()
	})
}

// FuzzMeta checks that a snapshot meta decodes with an error or to an
// epoch that encodes back to the same bytes.
func FuzzMeta(f *testing.F) {
	f.Add(encodeMeta(epochInfo{epoch: 3, start: 90, peers: []replica.NodeID{1, 5}, old: []replica.NodeID{1, 2, 5}}))
	f.Add(encodeMeta(epochInfo{peers: []replica.NodeID{7}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeMeta(b)
		if err != nil {
			return
		}
		if out := encodeMeta(e); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}
