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
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
)

func TestKV(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := &config.Cluster{Nodes: []config.Node{{ID: 1, Addr: addr}}, Groups: []config.Group{{ID: 1, Members: []replica.NodeID{1}}}}
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
	n, err := server.New(server.Options{Cluster: c, ID: 1, DataDir: t.TempDir(), Protocol: p,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-n.Ready()

	if code, stderr := runCLI(t, "kv", "--cluster", path, "--timeout", "5s", "put", "a", "hello"); code != exitValid {
		t.Fatalf("put: exit %d, stderr %q", code, stderr)
	}
	cfg, _ := client.FromCluster(c, 1)
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if r, err := cl.Get(rctx, "a"); err != nil || r.Value != "hello" {
		t.Fatalf("after chaos kv put: %+v, %v", r, err)
	}
	// Nobody listens at a closed port: the op certainly did not happen.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := &config.Cluster{Nodes: []config.Node{{ID: 1, Addr: l2.Addr().String()}}, Groups: c.Groups}
	l2.Close()
	b, _ = json.Marshal(dead)
	deadPath := filepath.Join(t.TempDir(), "dead.json")
	if err := os.WriteFile(deadPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"kv", "get", "a"}, exitBadArgs, "cluster"},
		{[]string{"kv", "--cluster", deadPath, "--timeout", "200ms", "put", "a", "b"}, exitInvalid, "failed"},
		{[]string{"kv", "--cluster", path + ".missing", "get", "a"}, exitBadArgs, "--cluster"},
		{[]string{"kv", "--cluster", path, "--group", "5", "get", "a"}, exitBadArgs, "--group"},
		{[]string{"kv", "--cluster", path, "frob", "a"}, exitBadArgs, "want one of"},
		{[]string{"kv", "--cluster", path, "put", "a"}, exitBadArgs, "put takes 2 arguments"},
	} {
		code, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("chaos %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}
