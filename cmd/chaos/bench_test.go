package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/bench"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

func TestBenchBadArgs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"nodes":[{"id":1,"addr":"127.0.0.1:1"}],"groups":[{"id":1,"members":[1]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"scan"},
		{"put", "extra"},
		{"put", "--clients", "0"},
		{"put", "--total", "0"},
		{"put", "--total", "10", "--duration", "1s"},
		{"put", "--duration", "0s"},
		{"put", "--val-size", "-1"},
		{"put", "--key-space", "0"},
		{"put", "--timeout", "0s"},
		{"put", "--replication", "raft"},
		{"put", "--fsync", "never"},
		{"put", "--shard-groups", "2"},
		{"put", "--group", "2"},
		{"txn-cross", "--shard-groups", "1"},
		{"put", "--cluster", file, "--fsync", "once"},
		{"put", "--cluster", file, "--group", "7"},
		{"txn", "--cluster", file},
		{"put", "--cluster", filepath.Join(t.TempDir(), "missing.json")},
		{"get", "--clients", "many"},
		{"put", "--kvnode", filepath.Join(t.TempDir(), "no-kvnode")},
		{"put", "--cluster", file, "--kvnode", "/bin/true"},
		{"--no-such-flag"},
	} {
		if code := run(append([]string{"chaos", "bench"}, args...)); code != exitBadArgs {
			t.Errorf("chaos bench %q: exit %d, want %d", args, code, exitBadArgs)
		}
	}
}

func TestBenchLocalJSON(t *testing.T) {
	var out bytes.Buffer
	code := runWithOutput([]string{"chaos", "bench", "put", "--clients", "2", "--total", "40", "--fsync", "once", "--replication", "vr", "--json"}, &out)
	if code != exitValid {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	var r benchJSON
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if r.Mode != "put" || r.Ops != 40 || r.Failed+r.Unknown != 0 || r.OpsPerSec <= 0 || r.Replication != "vr" || r.Fsync != "once" || r.Cluster != "local" || r.LatencyMS.P99 < r.LatencyMS.P50 || r.LatencyMS.P50 <= 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestBenchExistingCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := bench.StartLocal(ctx, bench.LocalConfig{Protocol: "paxos", Fsync: bench.FsyncOnce, Dir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := json.Marshal(l.File)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := runWithOutput([]string{"chaos", "bench", "get", "--cluster", file, "--clients", "3", "--duration", "1s", "--key-space", "20"}, &out); code != exitValid {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("bench get: 3 clients")) || !bytes.Contains(out.Bytes(), []byte("p99")) {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestBenchNothingServes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := config.Cluster{Nodes: []config.Node{{ID: 1, Addr: addr}}, Groups: []config.Group{{ID: 1, Members: []replica.NodeID{1}}}}
	b, _ := json.Marshal(c)
	file := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := runWithOutput([]string{"chaos", "bench", "put", "--cluster", file, "--total", "3", "--timeout", "50ms"}, &out); code != exitInvalid {
		t.Fatalf("exit %d, want %d: %s", code, exitInvalid, out.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("0 ok, 3 failed")) {
		t.Fatalf("output:\n%s", out.String())
	}
}
