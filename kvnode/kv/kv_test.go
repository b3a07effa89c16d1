package kv

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/txn"
)

func req(client, seq uint64, op Op) replica.Request {
	return replica.Request{ClientID: client, Seq: seq, Op: op.Encode()}
}

func apply(t *testing.T, s *Store, client, seq uint64, op Op) Reply {
	t.Helper()
	out := s.Apply(seq, req(client, seq, op))
	r, err := DecodeReply(out)
	if err != nil {
		t.Fatalf("decode reply of %v: %v", op, err)
	}
	return r
}

func TestOps(t *testing.T) {
	s := NewStore()
	steps := []struct {
		op   Op
		want Reply
	}{
		{Op{Kind: Get, Key: "a"}, Reply{Ok: true}},
		{Op{Kind: Cas, Key: "a", Old: "", Value: "x"}, Reply{}}, // a missing key never matches
		{Op{Kind: Put, Key: "a", Value: "1"}, Reply{Ok: true}},
		{Op{Kind: Get, Key: "a"}, Reply{Value: "1", Found: true, Ok: true}},
		{Op{Kind: Append, Key: "a", Value: "2"}, Reply{Value: "12", Found: true, Ok: true}},
		{Op{Kind: Append, Key: "b", Value: "z"}, Reply{Value: "z", Ok: true}},
		{Op{Kind: Cas, Key: "a", Old: "1", Value: "3"}, Reply{Value: "12", Found: true}},
		{Op{Kind: Cas, Key: "a", Old: "12", Value: "3"}, Reply{Found: true, Ok: true}},
		{Op{Kind: Get, Key: "a"}, Reply{Value: "3", Found: true, Ok: true}},
		{Op{Kind: Put, Key: "", Value: ""}, Reply{Ok: true}},
		{Op{Kind: Get, Key: ""}, Reply{Found: true, Ok: true}},
	}
	for i, st := range steps {
		if got := apply(t, s, 1, uint64(i+1), st.op); got != st.want {
			t.Fatalf("step %d %v %q: got %+v want %+v", i, st.op.Kind, st.op.Key, got, st.want)
		}
	}
}

func TestExactlyOnce(t *testing.T) {
	s := NewStore()
	first := s.Apply(1, req(7, 1, Op{Kind: Append, Key: "k", Value: "x"}))
	// A retry of the same (client, seq) is answered from the session table.
	again := s.Apply(2, req(7, 1, Op{Kind: Append, Key: "k", Value: "x"}))
	if !bytes.Equal(first, again) {
		t.Fatalf("duplicate reply %x differs from first %x", again, first)
	}
	if v, _ := s.Get("k"); v != "x" {
		t.Fatalf("duplicate re-applied: k=%q", v)
	}
	s.Apply(3, req(7, 2, Op{Kind: Append, Key: "k", Value: "y"}))
	if out := s.Apply(4, req(7, 1, Op{Kind: Append, Key: "k", Value: "x"})); out != nil {
		t.Fatalf("stale request got reply %x", out)
	}
	if v, _ := s.Get("k"); v != "xy" {
		t.Fatalf("k=%q, want xy", v)
	}
	// Other clients are independent.
	if r := apply(t, s, 8, 1, Op{Kind: Append, Key: "k", Value: "z"}); r.Value != "xyz" {
		t.Fatalf("client 8 append: %+v", r)
	}
}

func TestBadOpIsDeterministicError(t *testing.T) {
	a, b := NewStore(), NewStore()
	bad := replica.Request{ClientID: 1, Seq: 1, Op: []byte{99, 0, 0, 0}}
	ra, rb := a.Apply(1, bad), b.Apply(1, bad)
	if !bytes.Equal(ra, rb) {
		t.Fatal("bad op replies differ between replicas")
	}
	r, err := DecodeReply(ra)
	if err != nil || r.Err == "" || r.Ok {
		t.Fatalf("bad op reply %+v err %v", r, err)
	}
	if a.Len() != 0 {
		t.Fatal("bad op changed the store")
	}
}

func TestSnapshotRestore(t *testing.T) {
	a, b := NewStore(), NewStore()
	for i := uint64(1); i <= 100; i++ {
		k := string(rune('a' + i%7))
		a.Apply(i, req(i%5, i, Op{Kind: Append, Key: k, Value: "v"}))
	}
	// b gets the same contents inserted in another order.
	for i := uint64(100); i >= 1; i-- {
		b.data[string(rune('a'+i%7))] = a.data[string(rune('a'+i%7))]
	}
	b.sessions = a.sessions
	sa, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := b.Snapshot()
	if !bytes.Equal(sa, sb) {
		t.Fatal("snapshot not deterministic")
	}
	c := NewStore()
	if err := c.Restore(sa); err != nil {
		t.Fatal(err)
	}
	sc, _ := c.Snapshot()
	if !bytes.Equal(sa, sc) {
		t.Fatal("restore+snapshot differs")
	}
	// The restored session table still deduplicates.
	before, _ := c.Get("b")
	c.Apply(101, req(99%5, 99, Op{Kind: Append, Key: "b", Value: "v"}))
	if after, _ := c.Get("b"); after != before {
		t.Fatal("restored store re-applied a duplicate")
	}
	if err := c.Restore(sa[:len(sa)-1]); err == nil {
		t.Fatal("restore accepted a truncated snapshot")
	}
	if after, _ := c.Get("b"); after != before {
		t.Fatal("failed restore changed the store")
	}
}

func TestDecodeRejects(t *testing.T) {
	good := Op{Kind: Put, Key: "k", Value: "v"}.Encode()
	for name, in := range map[string][]byte{
		"empty":     {},
		"kind 0":    {0, 0, 0, 0},
		"kind 6":    {6, 0, 0, 0},
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 1),
		"long":      {1, 9, 'a'},
	} {
		if _, err := DecodeOp(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("op %s: err %v", name, err)
		}
	}
	for name, in := range map[string][]byte{
		"empty":     {},
		"bad flags": {0x80, 0},
		"err flag":  {flagErr, 0, 0},
		"trailing":  {0, 0, 0},
	} {
		if _, err := DecodeReply(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("reply %s: err %v", name, err)
		}
	}
}

func FuzzDecodeOp(f *testing.F) {
	f.Add(Op{Kind: Cas, Key: "k", Value: "new", Old: "old"}.Encode())
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOp(b)
		if err != nil {
			return
		}
		if !bytes.Equal(o.Encode(), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(Reply{Value: "v", Found: true, Ok: true}.Encode())
	f.Add(Reply{Err: "boom"}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReply(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzRestore(f *testing.F) {
	s := NewStore()
	s.Apply(1, req(1, 1, Op{Kind: Put, Key: "a", Value: "1"}))
	s.Apply(2, req(2, 1, Op{Kind: Put, Key: "b", Value: "2"}))
	snap, _ := s.Snapshot()
	f.Add(snap)
	f.Add([]byte{1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		st := NewStore()
		if err := st.Restore(b); err != nil {
			return
		}
		again, err := st.Snapshot()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("restore/snapshot not inverse: %v", err)
		}
	})
}

func TestTxnAppliesAtomicallyAndOnce(t *testing.T) {
	s := NewStore()
	ops := []txn.MicroOp{{F: txn.Append, Key: "l", Value: "1"}, {F: txn.Write, Key: "w", Value: "v"}, {F: txn.Read, Key: "l"}}
	req := replica.Request{ClientID: 9, Seq: 1, Op: Op{Kind: Txn, Value: string(txn.Encode(ops))}.Encode()}
	out := s.Apply(1, req)
	rep, err := DecodeReply(out)
	if err != nil || rep.Err != "" || !rep.Ok {
		t.Fatalf("reply %+v, %v", rep, err)
	}
	res, err := txn.DecodeResults([]byte(rep.Value))
	if err != nil || len(res) != 3 || !reflect.DeepEqual(res[2].List, []string{"1"}) {
		t.Fatalf("results %+v, %v", res, err)
	}
	// A retry is answered from the session table, not appended again.
	if again := s.Apply(2, req); !bytes.Equal(again, out) {
		t.Fatalf("retry reply %x, want %x", again, out)
	}
	if v, _ := s.Get("l"); v != "1"+txn.ListSep {
		t.Fatalf("l = %q after a retried append", v)
	}
	bad := replica.Request{ClientID: 9, Seq: 2, Op: Op{Kind: Txn, Value: "\x01\x09"}.Encode()}
	if rep, _ := DecodeReply(s.Apply(3, bad)); rep.Err == "" {
		t.Fatalf("malformed txn applied: %+v", rep)
	}
}
