package wlops

import (
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/txn"
	"github.com/chaoskv/chaos/workloads"
)

func TestMicroOps(t *testing.T) {
	got, err := MicroOps([]workloads.MicroOp{{F: "r", Key: "a", Value: "ignored"}, {F: "w", Key: "b", Value: "1"}, {F: "append", Key: "c", Value: "2"}, {F: "check", Key: "d", Value: "3"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []txn.MicroOp{{F: txn.Read, Key: "a"}, {F: txn.Write, Key: "b", Value: "1"}, {F: txn.Append, Key: "c", Value: "2"}, {F: txn.Check, Key: "d", Value: "3"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := MicroOps([]workloads.MicroOp{{F: "cas", Key: "a"}}); err == nil {
		t.Fatal("a micro-op kvnode has no function for was accepted")
	}
}

func TestMicroResults(t *testing.T) {
	rs := MicroResults([]txn.MicroResult{{F: txn.Read, Key: "a", Value: "1\x1f", Found: true, List: []string{"1"}}})
	if !reflect.DeepEqual(rs, []workloads.MicroResult{{Value: "1\x1f", Found: true, List: []string{"1"}}}) {
		t.Fatalf("results %v", rs)
	}
}
