package kv

import (
	"bytes"
	"testing"

	"github.com/chaoskv/chaos/kvnode/txn"
)

func TestQuery(t *testing.T) {
	s := NewStore()
	apply(t, s, 1, 1, Op{Kind: Put, Key: "a", Value: "1"})
	before, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	reads := txn.Encode([]txn.MicroOp{{F: txn.Read, Key: "a"}, {F: txn.Read, Key: "b"}})
	writes := txn.Encode([]txn.MicroOp{{F: txn.Read, Key: "a"}, {F: txn.Write, Key: "b", Value: "2"}})
	for _, tc := range []struct {
		name    string
		op      []byte
		want    Reply
		wantErr bool
	}{
		{"get", Op{Kind: Get, Key: "a"}.Encode(), Reply{Value: "1", Found: true, Ok: true}, false},
		{"get missing", Op{Kind: Get, Key: "zz"}.Encode(), Reply{Ok: true}, false},
		{"read-only txn", Op{Kind: Txn, Value: string(reads)}.Encode(), s.apply(Op{Kind: Txn, Value: string(reads)}), false},
		{"txn that writes", Op{Kind: Txn, Value: string(writes)}.Encode(), Reply{}, true},
		{"put", Op{Kind: Put, Key: "a", Value: "9"}.Encode(), Reply{}, true},
		{"append", Op{Kind: Append, Key: "a", Value: "9"}.Encode(), Reply{}, true},
		{"cas", Op{Kind: Cas, Key: "a", Old: "1", Value: "9"}.Encode(), Reply{}, true},
		{"garbage", []byte{0xff}, Reply{}, true},
	} {
		if ro := s.ReadOnly(tc.op); ro == tc.wantErr {
			t.Errorf("%s: ReadOnly %v, want %v", tc.name, ro, !tc.wantErr)
		}
		got, err := DecodeReply(s.Query(tc.op))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.wantErr {
			if got.Err == "" {
				t.Errorf("%s: answered %+v, want an error", tc.name, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	after, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("queries changed the state or the session table")
	}
}
