package kvnodedb

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/workloads"
)

func TestShardedGroups(t *testing.T) {
	gs, err := ShardedGroups(5, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Group{
		{ID: 1, Members: []replica.NodeID{1, 2, 3}},
		{ID: 2, Members: []replica.NodeID{4, 5, 1}},
		{ID: 3, Members: []replica.NodeID{2, 3, 4}},
		{ID: 4, Members: []replica.NodeID{5, 1, 2}},
		{ID: 5, Members: []replica.NodeID{1, 2, 3}}, // the controller
	}
	if !reflect.DeepEqual(gs, want) {
		t.Fatalf("got %v, want %v", gs, want)
	}
	// Every node hosts replicas of several groups, each group's members
	// are distinct nodes.
	hosted := map[replica.NodeID]int{}
	for _, g := range gs[:4] {
		seen := map[replica.NodeID]bool{}
		for _, m := range g.Members {
			if seen[m] {
				t.Fatalf("group %d has node %d twice", g.ID, m)
			}
			seen[m] = true
			hosted[m]++
		}
	}
	for n := replica.NodeID(1); n <= 5; n++ {
		if hosted[n] < 2 {
			t.Errorf("node %d hosts %d shard groups", n, hosted[n])
		}
	}
	for _, bad := range [][3]int{{0, 1, 1}, {3, 4, 1}, {3, 0, 1}, {3, 3, 0}, {3, 3, 17}} {
		if _, err := ShardedGroups(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("ShardedGroups%v accepted", bad)
		}
	}
}

func TestValidateShardFlags(t *testing.T) {
	base := Options{Nodes: 5, Replicas: 3, Protocol: "paxos"}
	for _, tc := range []struct {
		groups, shards int
		want           string
	}{
		{0, 0, ""},
		{-1, 0, "--groups"},
		{17, 0, "--groups"},
		{0, 16, "--shards: needs --groups"},
		{2, 8, "--shards: kvnode has a fixed 16"},
		{3, 16, ""},
		{6, 0, ""},
	} {
		o := base
		o.Groups, o.Shards = tc.groups, tc.shards
		err := o.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("groups %d shards %d: %v", tc.groups, tc.shards, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("groups %d shards %d: err %v, want one naming %q", tc.groups, tc.shards, err, tc.want)
		}
	}
}

func TestOpenTxnNeedsOneGroup(t *testing.T) {
	f, err := ClusterFile("paxos", nodes(5), 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := &sut{file: f}
	if _, err := s.OpenTxn(context.Background()); !errors.Is(err, workloads.ErrNoTxn) || !strings.Contains(err.Error(), "--replicas") {
		t.Fatalf("multi-group OpenTxn: %v", err)
	}
	one, err := ClusterFile("paxos", nodes(3), 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := (&sut{file: one}).OpenTxn(context.Background())
	if err != nil {
		t.Fatalf("single-group OpenTxn: %v", err)
	}
	kv.Close()
}
