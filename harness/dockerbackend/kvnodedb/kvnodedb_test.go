package kvnodedb

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"testing"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
	"github.com/chaoskv/chaos/workloads"
)

func TestGroups(t *testing.T) {
	ids := func(ns ...int) []replica.NodeID {
		out := make([]replica.NodeID, len(ns))
		for i, n := range ns {
			out[i] = replica.NodeID(n)
		}
		return out
	}
	tests := []struct {
		nodes, replicas int
		want            [][]replica.NodeID
	}{
		{1, 1, [][]replica.NodeID{ids(1)}},
		{3, 3, [][]replica.NodeID{ids(1, 2, 3)}},
		{5, 5, [][]replica.NodeID{ids(1, 2, 3, 4, 5)}},
		{5, 3, [][]replica.NodeID{ids(1, 2, 3), ids(2, 3, 4), ids(3, 4, 5), ids(4, 5, 1), ids(5, 1, 2)}},
		{4, 1, [][]replica.NodeID{ids(1), ids(2), ids(3), ids(4)}},
	}
	for _, tt := range tests {
		gs := Groups(tt.nodes, tt.replicas)
		var got [][]replica.NodeID
		for i, g := range gs {
			if g.ID != replica.GroupID(i+1) {
				t.Fatalf("%d/%d: group %d has id %d", tt.nodes, tt.replicas, i, g.ID)
			}
			got = append(got, g.Members)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Groups(%d, %d) = %v, want %v", tt.nodes, tt.replicas, got, tt.want)
		}
	}
}

func nodes(n int) []docker.Node {
	out := make([]docker.Node, n)
	for i := range out {
		out[i] = docker.Node{Name: fmt.Sprintf("n%d", i+1), ID: i + 1, IP: netip.AddrFrom4([4]byte{10, 100, 0, byte(i + 2)})}
	}
	return out
}

func TestClusterFile(t *testing.T) {
	f, err := ClusterFile("paxos", nodes(5), 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Nodes) != 5 || len(f.Groups) != 5 || f.Protocol != "paxos" {
		t.Fatalf("cluster file = %+v", f)
	}
	if f.Nodes[2].Addr != "10.100.0.4:7000" || f.Nodes[2].AdminAddr != "10.100.0.4:7080" || f.Nodes[2].Name != "n3" {
		t.Fatalf("node 3 = %+v", f.Nodes[2])
	}
	cfg, err := client.FromCluster(f, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := map[replica.NodeID]string{4: "10.100.0.5:7000", 5: "10.100.0.6:7000", 1: "10.100.0.2:7000"}
	if !reflect.DeepEqual(cfg.Nodes, want) {
		t.Fatalf("group 4 client nodes = %v, want %v", cfg.Nodes, want)
	}
	if _, err := ClusterFile("paxos", nil, 3, 0); err == nil {
		t.Fatal("empty cluster accepted")
	}
	// Two spares after three nodes: every group names them, and its
	// clients reach them.
	f, err = ClusterFile("paxos", nodes(5), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Groups) != 1 || !slices.Equal(f.Groups[0].Members, []replica.NodeID{1, 2, 3}) || !slices.Equal(f.Groups[0].Spares, []replica.NodeID{4, 5}) {
		t.Fatalf("groups with spares = %+v", f.Groups)
	}
	if cfg, err := client.FromCluster(f, 1); err != nil || len(cfg.Nodes) != 5 {
		t.Fatalf("client of a group with spares: %+v, %v", cfg, err)
	}
	if _, err := ClusterFile("paxos", nodes(3), 3, 3); err == nil {
		t.Fatal("a cluster of spares only accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	// A protocol without membership changes refuses spares; which ones
	// have them is the cores' say.
	vrSpares := "--spares"
	if ok, err := protocols.Reconfigurable("vr"); err != nil {
		t.Fatal(err)
	} else if ok {
		vrSpares = ""
	}
	tests := []struct {
		o    Options
		flag string
	}{
		{Options{Nodes: 3, Spares: 1, Replicas: 3, Protocol: "vr"}, vrSpares},
		{Options{Nodes: 5, Replicas: 3, Protocol: "paxos"}, ""},
		{Options{Nodes: 3, Replicas: 3, Protocol: "vr"}, ""},
		{Options{Nodes: 0, Replicas: 1, Protocol: "paxos"}, "--nodes"},
		{Options{Nodes: 3, Replicas: 4, Protocol: "paxos"}, "--replicas"},
		{Options{Nodes: 3, Replicas: 0, Protocol: "paxos"}, "--replicas"},
		{Options{Nodes: 3, Replicas: 3, Protocol: "raft"}, "--replication"},
		{Options{Nodes: 3, Spares: 2, Replicas: 3, Protocol: "paxos"}, ""},
		{Options{Nodes: 3, Spares: -1, Replicas: 3, Protocol: "paxos"}, "--spares"},
		{Options{Nodes: 199, Spares: 2, Replicas: 3, Protocol: "paxos"}, "--spares"},
		{Options{Nodes: 7, Spares: 1, Replicas: 3, Groups: 2, Protocol: "paxos"}, "--spares"},
	}
	for _, tt := range tests {
		err := tt.o.Validate()
		if tt.flag == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.o, err)
			}
			continue
		}
		if err == nil || !regexp.MustCompile("^"+tt.flag+":").MatchString(err.Error()) {
			t.Errorf("%+v: err %v, want one naming %s", tt.o, err, tt.flag)
		}
	}
}

func TestGroupOf(t *testing.T) {
	gs := Groups(5, 3)
	count := map[replica.GroupID]int{}
	for k := range 1000 {
		key := fmt.Sprintf("r%d", k)
		g := GroupOf(key, gs)
		if g != GroupOf(key, gs) {
			t.Fatal("GroupOf is not stable")
		}
		count[g]++
	}
	for _, g := range gs {
		if count[g.ID] < 120 {
			t.Errorf("group %d got %d of 1000 keys", g.ID, count[g.ID])
		}
	}
	if GroupOf("x", []config.Group{{ID: 7}}) != 7 {
		t.Fatal("single group not chosen")
	}
}

func TestClassify(t *testing.T) {
	failed := &client.FailedError{Op: "put", Cause: errors.New("not leader")}
	unknown := &client.UnknownError{Op: "put", Cause: errors.New("timeout")}
	if !workloads.IsDefinite(classify(failed)) {
		t.Error("failed error not definite")
	}
	if workloads.IsDefinite(classify(unknown)) || workloads.IsDefinite(classify(errors.New("x"))) {
		t.Error("unknown error marked definite")
	}
	if classify(nil) != nil {
		t.Error("nil error changed")
	}
}

// TestDBRendersNodesAndClusterFile: the adapter's side of a launch, the
// image, each node's command line and the cluster file, for a hash-placed
// and a sharded cluster.
func TestDBRendersNodesAndClusterFile(t *testing.T) {
	tests := []struct {
		opts       Options
		groups     int
		controller replica.GroupID
	}{
		{Options{Binary: "/bin/kvnode", Nodes: 5, Replicas: 3, Protocol: "vr", NodeArgs: []string{"--fsync=once"}}, 5, 0},
		{Options{Binary: "/bin/kvnode", Nodes: 5, Replicas: 3, Protocol: "paxos", Groups: 2}, 3, 3},
	}
	for _, tt := range tests {
		db, err := NewDB(tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if img := db.Image(); img.Name != "kvnode" || img.Binary != "/bin/kvnode" {
			t.Errorf("image %+v", img)
		}
		want := append([]string{"--cluster", docker.ConfigPath, "--id", "4", "--data", docker.DataDir}, tt.opts.NodeArgs...)
		if got := db.Node(nodes(5)[3]); !reflect.DeepEqual(got.Args, want) || got.Env != nil {
			t.Errorf("node n4 runs %+v, want args %v", got, want)
		}
		b, err := db.ConfigFile(nodes(5))
		if err != nil {
			t.Fatal(err)
		}
		var f config.Cluster
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if err := f.Validate(); err != nil {
			t.Fatalf("rendered cluster file: %v", err)
		}
		if f.Protocol != tt.opts.Protocol || len(f.Nodes) != 5 || len(f.Groups) != tt.groups || f.ShardController != tt.controller {
			t.Errorf("%+v: cluster file %s", tt.opts, b)
		}
	}
	if _, err := NewDB(Options{Nodes: 3, Replicas: 3, Protocol: "raft"}); err == nil {
		t.Error("a bad protocol was accepted")
	}
}
