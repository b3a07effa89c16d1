package paxos

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func sampleMessages() []replica.Message {
	h := Header{From: 1, To: 3}
	b := Ballot{Round: 300, Node: 1}
	v := Value{Reqs: []replica.Request{{ClientID: 9, Seq: 1 << 40, Op: []byte("op")}, {ClientID: 1, Seq: 2}}}
	snap := &replica.Snapshot{Index: 77, Meta: []byte("m"), Data: bytes.Repeat([]byte("d"), 300)}
	cv := Value{Config: []replica.NodeID{1, 4, 1 << 30}}
	meta := (&Node{configs: []membership{{from: 70, ids: []replica.NodeID{1, 2, 3}}, {from: 90, ids: []replica.NodeID{2, 3, 4}}}}).encodeConfigs()
	kvSnap := replica.Snapshot{Index: 80, Meta: meta, Data: []byte("{}")}
	return []replica.Message{
		&Prepare{Header: h, Ballot: b, FromSlot: 5},
		&Promise{Header: h, Ballot: b, FromSlot: 5, Commit: 4, Entries: []PromiseEntry{
			{Slot: 5, Ballot: Ballot{Round: 2, Node: 2}, Value: v},
			{Slot: 7, Chosen: true},
		}},
		&Promise{Header: h, Ballot: b, Snapshot: snap},
		&Nack{Header: h, Ballot: b, Promised: Ballot{Round: 301, Node: 2}},
		&Accept{Header: h, Ballot: b, Slot: 12, Value: v, Commit: 11},
		&Accept{Header: h, Ballot: b, Slot: 13},
		&Accepted{Header: h, Ballot: b, Slot: 12, Commit: 10},
		&Heartbeat{Header: h, Ballot: b, Commit: 1 << 60},
		&Heartbeat{Header: h, Ballot: b, Commit: 4, Read: 1 << 50},
		&HeartbeatReply{Header: h, Ballot: b, Commit: 3, LeaderCommit: 9},
		&HeartbeatReply{Header: h, Ballot: b, Commit: 3, LeaderCommit: 9, Read: 17},
		&Learn{Header: h, Ballot: b, Commit: 9, Entries: []LearnEntry{{Slot: 4, Value: v}, {Slot: 5}}},
		&InstallSnapshot{Header: h, Ballot: b, Snapshot: *snap},
		&Accept{Header: h, Ballot: b, Slot: 14, Value: cv, Commit: 13},
		&Promise{Header: h, Ballot: b, FromSlot: 14, Entries: []PromiseEntry{{Slot: 14, Ballot: b, Value: cv}}},
		&Learn{Header: h, Ballot: b, Commit: 14, Entries: []LearnEntry{{Slot: 14, Value: cv}}},
		&InstallSnapshot{Header: h, Ballot: b, Snapshot: kvSnap},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	var c Codec
	for _, m := range sampleMessages() {
		enc, err := c.AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		got, err := c.DecodeMessage(enc)
		if err != nil {
			t.Fatalf("%T: decode: %v", m, err)
		}
		for i := range enc {
			enc[i] ^= 0xff // the decoded message must not alias its input
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%T: round trip\n got %+v\nwant %+v", m, got, m)
		}
		for i := range enc {
			enc[i] ^= 0xff
		}
		for cut := 0; cut < len(enc); cut++ {
			if _, err := c.DecodeMessage(enc[:cut]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%T cut at %d: err %v", m, cut, err)
			}
		}
		if _, err := c.DecodeMessage(append(enc, 0)); err == nil {
			t.Fatalf("%T: trailing byte accepted", m)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	var c Codec
	if _, err := c.AppendMessage(nil, fakeMsg{}); err == nil {
		t.Fatal("encoded a foreign message type")
	}
	for name, in := range map[string][]byte{
		"empty":          {},
		"bad version":    {1, tagHeartbeat, 1, 2, 1, 1, 0, 0},
		"bad type":       {wireVersion, 99, 1, 2},
		"node range":     {wireVersion, tagHeartbeat, 0x80, 0x80, 0x80, 0x80, 0x10, 2, 1, 1, 0},
		"bad bool":       {wireVersion, tagPromise, 1, 2, 1, 1, 0, 0, 0, 7},
		"huge count":     {wireVersion, tagLearn, 1, 2, 1, 1, 0, 0xff, 0xff, 0x03},
		"member zero":    {wireVersion, tagAccept, 1, 2, 1, 1, 5, 4, 0, 2, 1, 0},
		"members order":  {wireVersion, tagAccept, 1, 2, 1, 1, 5, 4, 0, 2, 3, 2},
		"members repeat": {wireVersion, tagAccept, 1, 2, 1, 1, 5, 4, 0, 2, 3, 3},
	} {
		if _, err := c.DecodeMessage(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

type fakeMsg struct{ Header }

func TestEntryAndStateEncoding(t *testing.T) {
	for _, e := range []*slot{
		{ballot: Ballot{Round: 4, Node: 2}, chosen: true, value: Value{Reqs: []replica.Request{{ClientID: 1, Seq: 2, Op: []byte("x")}}}},
		{ballot: Ballot{Round: 4, Node: 2}, value: Value{Config: []replica.NodeID{1, 3, 9}}},
	} {
		b, chosen, v, err := decodeEntry(encodeEntry(e))
		if err != nil || b != e.ballot || chosen != e.chosen || !reflect.DeepEqual(v, e.value) {
			t.Fatalf("entry round trip: %v %v %+v %v", b, chosen, v, err)
		}
	}
	h := hardState{promised: Ballot{Round: 9, Node: 3}, commit: 1234}
	got, err := decodeState(encodeState(h))
	if err != nil || got != h {
		t.Fatalf("state round trip %+v %v", got, err)
	}
	if _, err := decodeState([]byte{1, 9}); err == nil {
		t.Fatal("truncated state accepted")
	}
	if _, _, _, err := decodeEntry([]byte{3}); err == nil {
		t.Fatal("bad entry accepted")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	var c Codec
	for _, m := range sampleMessages() {
		enc, _ := c.AppendMessage(nil, m)
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := c.DecodeMessage(b)
		if err != nil {
			return
		}
		again, err := c.AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("re-encode %T: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding of %T differs", m)
		}
	})
}

// FuzzDecodeConfigs checks that snapshot meta decodes only from the one
// encoding a replica produces.
func FuzzDecodeConfigs(f *testing.F) {
	f.Add((&Node{configs: []membership{{from: 1, ids: []replica.NodeID{1, 2, 3}}, {from: 65, ids: []replica.NodeID{3}}}}).encodeConfigs())
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := decodeConfigs(b)
		if err != nil {
			return
		}
		n := &Node{known: []replica.NodeID{9}, progress: make([]peerProgress, 1)}
		n.setConfigs(cs)
		if again := n.encodeConfigs(); !bytes.Equal(again, b) {
			t.Fatalf("meta re-encoding differs: %x, was %x", again, b)
		}
	})
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(&slot{ballot: Ballot{Round: 1, Node: 1}, value: Value{Reqs: []replica.Request{{ClientID: 1, Seq: 1, Op: []byte("a")}}}}))
	f.Add(encodeEntry(&slot{ballot: Ballot{Round: 1, Node: 1}, chosen: true, value: Value{Config: []replica.NodeID{2, 5}}}))
	f.Add(encodeState(hardState{promised: Ballot{Round: 1, Node: 1}, commit: 5}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if bal, chosen, v, err := decodeEntry(b); err == nil {
			if again := encodeEntry(&slot{ballot: bal, chosen: chosen, value: v}); !bytes.Equal(again, b) {
				t.Fatal("entry re-encoding differs")
			}
		}
		if h, err := decodeState(b); err == nil {
			if !bytes.Equal(encodeState(h), b) {
				t.Fatal("state re-encoding differs")
			}
		}
	})
}

// FuzzStep feeds decoded messages to a replica: whatever arrives, the core
// must not panic, and its Ready must stay well-formed.
func FuzzStep(f *testing.F) {
	var c Codec
	var seed []byte
	for _, m := range sampleMessages() {
		m2 := m
		switch x := m2.(type) {
		case *Prepare:
			y := *x
			y.To = 2
			m2 = &y
		case *Accept:
			y := *x
			y.To = 2
			m2 = &y
		}
		enc, _ := c.AppendMessage(nil, m2)
		seed = append(seed, byte(len(enc)))
		seed = append(seed, enc...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := New(DefaultConfig(2, []replica.NodeID{1, 2, 3}), newRecorder(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			k := int(b[0])
			b = b[1:]
			if k > len(b) {
				k = len(b)
			}
			chunk := b[:k]
			b = b[k:]
			if m, err := c.DecodeMessage(chunk); err == nil {
				n.Step(m)
			}
			n.Tick()
			if n.ReadIndex(uint64(len(b))) != nil && n.Status().Role == RoleLeader {
				t.Fatal("the leader refused a read")
			}
			rd := n.Ready()
			for _, rs := range rd.Reads {
				if st := n.Status(); !rs.Lost && rs.Index > st.Applied {
					t.Fatalf("read %+v reported before it was applied: %+v", rs, st)
				}
			}
			for i := 1; i < len(rd.Persist.Entries); i++ {
				if rd.Persist.Entries[i].Index <= rd.Persist.Entries[i-1].Index {
					t.Fatal("entries not ascending")
				}
			}
			if st := n.Status(); st.Applied > st.Commit {
				t.Fatalf("applied past commit: %+v", st)
			}
		}
	})
}
