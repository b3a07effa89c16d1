package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
)

// TestMembers adds a spare to a one-node group and then removes the first
// node with chaos members, against two real nodes, and checks the
// refusals of bad arguments.
func TestMembers(t *testing.T) {
	var addrs []string
	for range 4 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	c := &config.Cluster{TickMS: 5, ElectionTicks: 20, HeartbeatTicks: 2,
		Nodes:  []config.Node{{ID: 1, Addr: addrs[0], AdminAddr: addrs[1]}, {ID: 2, Addr: addrs[2], AdminAddr: addrs[3]}},
		Groups: []config.Group{{ID: 1, Members: []replica.NodeID{1}, Spares: []replica.NodeID{2}}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	path := filepath.Join(t.TempDir(), "cluster.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := protocols.Lookup("paxos")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []replica.NodeID{1, 2} {
		n, err := server.New(server.Options{Cluster: c, ID: id, DataDir: t.TempDir(), Protocol: p,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
		})
		<-n.Ready()
	}
	members := func(want int, wantOut string, args ...string) {
		t.Helper()
		var out strings.Builder
		code, stderr := runCLIOut(t, &out, append([]string{"members", "--cluster", path, "--timeout", "10s"}, args...)...)
		if code != want || !strings.Contains(out.String()+stderr, wantOut) {
			t.Fatalf("members %q: exit %d, stdout %q, stderr %q; want exit %d and %q", args, code, out.String(), stderr, want, wantOut)
		}
	}
	members(exitValid, "group 1: members 1 (leader 1, in force)")
	members(exitValid, "group 1: members 1,2 in force", "1,2")
	members(exitValid, "group 1: members 2 in force", "2")
	members(exitValid, "group 1: members 2 (leader 2, in force)")
	members(exitBadArgs, "does not host group 1", "2,3")
	members(exitBadArgs, "comma-separated node IDs", "2,x")
	members(exitBadArgs, "--group", "--group", "7")
}

// runCLIOut is runCLI that also copies chaos's stdout to out.
func runCLIOut(t *testing.T, out io.Writer, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	copied := make(chan struct{})
	go func() {
		io.Copy(out, r)
		close(copied)
	}()
	code, stderr := runCLI(t, args...)
	os.Stdout = old
	w.Close()
	<-copied
	r.Close()
	return code, stderr
}
