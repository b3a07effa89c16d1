package testcore

import (
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func TestCodecRoundTrip(t *testing.T) {
	m := &Msg{Kind: kindAppend, From: 1, To: 2, Index: 5, Commit: 4, Entries: [][]byte{[]byte("a"), {}}}
	b, err := Codec{}.AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Codec{}.DecodeMessage(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("got %+v, %v; want %+v", got, err, m)
	}
	reqs := []replica.Request{{ClientID: 1, Seq: 2, Op: []byte("x")}, {ClientID: 3, Seq: 4, Op: []byte{}}}
	if got := decodeBatch(encodeBatch(reqs)); !reflect.DeepEqual(got, reqs) {
		t.Fatalf("batch: got %+v", got)
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Codec{}.AppendMessage(nil, &Msg{Kind: kindAck, From: 1, To: 2, Index: 3, Entries: [][]byte{[]byte("e")}})
	f.Add(b)
	f.Add(encodeBatch([]replica.Request{{ClientID: 1, Seq: 1, Op: []byte("op")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := (Codec{}).DecodeMessage(b); err == nil {
			again, err := Codec{}.AppendMessage(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (Codec{}).DecodeMessage(again); err != nil {
				t.Fatalf("re-encoded message does not decode: %v", err)
			}
		}
		decodeBatch(b)
	})
}
