package protocols

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	p, err := Lookup("paxos")
	if err != nil || p.Name != "paxos" || p.New == nil || p.Codec == nil {
		t.Fatalf("paxos: %+v, %v", p, err)
	}
	if p, err := Lookup("vr"); err != nil || p.Name != "vr" || p.New == nil || p.Codec == nil {
		t.Fatalf("vr: %+v, %v", p, err)
	}
	if _, err := Lookup("raft"); err == nil || !strings.Contains(err.Error(), "paxos") {
		t.Fatalf("unknown protocol: %v, want an error listing the known ones", err)
	}
}

func TestReconfigurable(t *testing.T) {
	if ok, err := Reconfigurable("paxos"); err != nil || !ok {
		t.Fatalf("paxos: %v, %v; want reconfigurable", ok, err)
	}
	// VR's answer changes when it gains membership changes; it must be
	// an answer either way.
	if _, err := Reconfigurable("vr"); err != nil {
		t.Fatalf("vr: %v", err)
	}
	if _, err := Reconfigurable("raft"); err == nil {
		t.Fatal("unknown protocol: no error")
	}
}
