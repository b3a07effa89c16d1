package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/internal/testcore"
)

var testProtocol = server.Protocol{Name: "testcore", New: testcore.New, Codec: testcore.Codec{}}

// freePorts returns n loopback addresses that were free a moment ago.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var ls []net.Listener
	var out []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// testCluster builds a cluster file for n nodes and one group on loopback.
func testCluster(t testing.TB, n int, admin bool) *config.Cluster {
	t.Helper()
	addrs := freePorts(t, 2*n)
	c := &config.Cluster{TickMS: 5, ElectionTicks: 20, HeartbeatTicks: 2}
	g := config.Group{ID: 1}
	for i := 1; i <= n; i++ {
		nd := config.Node{ID: replica.NodeID(i), Addr: addrs[i-1]}
		if admin {
			nd.AdminAddr = addrs[n+i-1]
		}
		c.Nodes = append(c.Nodes, nd)
		g.Members = append(g.Members, replica.NodeID(i))
	}
	c.Groups = []config.Group{g}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

type running struct {
	node   *server.Node
	cancel context.CancelFunc
	done   chan error
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("node stopped with error: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node did not stop within 10s")
	}
}

func quietLogger() *slog.Logger {
	if os.Getenv("KVNODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startNode(t testing.TB, c *config.Cluster, id replica.NodeID, dir string, p server.Protocol, tune ...func(*server.Options)) *running {
	t.Helper()
	opts := server.Options{Cluster: c, ID: id, DataDir: dir, Protocol: p, Logger: quietLogger()}
	for _, f := range tune {
		f(&opts)
	}
	n, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-r.done:
		t.Fatalf("node %d did not start: %v", id, err)
	}
	return r
}

func startCluster(t testing.TB, c *config.Cluster, dirs []string, p server.Protocol, tune ...func(*server.Options)) []*running {
	t.Helper()
	var rs []*running
	for i, nd := range c.Nodes {
		r := startNode(t, c, nd.ID, dirs[i], p, tune...)
		rs = append(rs, r)
		t.Cleanup(func() {
			r.cancel()
			<-r.done
		})
	}
	return rs
}

func dataDirs(t testing.TB, n int) []string {
	base := t.TempDir()
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, filepath.Join(base, fmt.Sprintf("n%d", i)))
	}
	return out
}

func newClient(t testing.TB, c *config.Cluster) *client.Client {
	t.Helper()
	cfg, err := client.FromCluster(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestClusterServesOps(t *testing.T) {
	c := testCluster(t, 3, false)
	startCluster(t, c, dataDirs(t, 3), testProtocol)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := newClient(t, c)
	if r, err := cl.Get(ctx, "k"); err != nil || r.Found {
		t.Fatalf("get of a missing key: %+v, %v", r, err)
	}
	if err := cl.Put(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	if v, err := cl.Append(ctx, "k", "b"); err != nil || v != "ab" {
		t.Fatalf("append: %q, %v", v, err)
	}
	if r, err := cl.Cas(ctx, "k", "x", "y"); err != nil || r.Swapped || r.Current != "ab" {
		t.Fatalf("failing cas: %+v, %v", r, err)
	}
	if r, err := cl.Cas(ctx, "k", "ab", "c"); err != nil || !r.Swapped {
		t.Fatalf("cas: %+v, %v", r, err)
	}
	// A second client, whose first guess may be a follower, is redirected.
	for i := 0; i < 3; i++ {
		cl2 := newClient(t, c)
		if r, err := cl2.Get(ctx, "k"); err != nil || r.Value != "c" || !r.Found {
			t.Fatalf("get: %+v, %v", r, err)
		}
		if cl2.Leader() != 1 {
			t.Fatalf("client believes node %d leads, want 1", cl2.Leader())
		}
	}
}

func TestUnknownGroupIsDefiniteFailure(t *testing.T) {
	c := testCluster(t, 1, false)
	startCluster(t, c, dataDirs(t, 1), testProtocol)
	cl, err := client.New(client.Config{Nodes: map[replica.NodeID]string{1: c.Nodes[0].Addr}, Group: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = cl.Put(ctx, "k", "v")
	if !errors.Is(err, client.ErrFailed) || errors.Is(err, client.ErrUnknown) {
		t.Fatalf("got %v, want a definite failure", err)
	}
}

func TestNoServerIsDefiniteFailure(t *testing.T) {
	addr := freePorts(t, 1)[0]
	cl, err := client.New(client.Config{Nodes: map[replica.NodeID]string{1: addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := cl.Put(ctx, "k", "v"); !errors.Is(err, client.ErrFailed) {
		t.Fatalf("got %v, want a definite failure", err)
	}
}

func TestSilentServerIsUnknown(t *testing.T) {
	// A node that accepts the request and never answers: the request may
	// have been applied, so the outcome is unknown.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	cl, err := client.New(client.Config{Nodes: map[replica.NodeID]string{1: l.Addr().String()}, AttemptTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = cl.Put(ctx, "k", "v")
	var ue *client.UnknownError
	if !errors.As(err, &ue) || !errors.Is(err, client.ErrUnknown) || errors.Is(err, client.ErrFailed) {
		t.Fatalf("got %v, want an unknown outcome", err)
	}
}

func TestGracefulRestartKeepsData(t *testing.T) {
	c := testCluster(t, 3, false)
	dirs := dataDirs(t, 3)
	var rs []*running
	for i, nd := range c.Nodes {
		rs = append(rs, startNode(t, c, nd.ID, dirs[i], testProtocol))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := newClient(t, c)
	for i := 0; i < 50; i++ {
		if err := cl.Put(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		r.stop(t)
	}
	startCluster(t, c, dirs, testProtocol)
	cl2 := newClient(t, c)
	for i := 0; i < 50; i++ {
		r, err := cl2.Get(ctx, fmt.Sprintf("k%d", i))
		if err != nil || r.Value != fmt.Sprintf("v%d", i) {
			t.Fatalf("after restart k%d = %+v, %v", i, r, err)
		}
	}
}

// TestMultipleGroups runs two Paxos groups over three nodes (node 1 hosts
// only the first) and checks that they are independent and that /status
// describes every local replica.
func TestMultipleGroups(t *testing.T) {
	c := testCluster(t, 3, true)
	c.Groups = append(c.Groups, config.Group{ID: 2, Members: []replica.NodeID{2, 3}})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	startCluster(t, c, dataDirs(t, 3), paxosProtocol(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cls []*client.Client
	for _, g := range []replica.GroupID{1, 2} {
		cfg, err := client.FromCluster(c, g)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Put(ctx, "k", fmt.Sprintf("group%d", g)); err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		cls = append(cls, cl)
	}
	for i, cl := range cls {
		r, err := cl.Get(ctx, "k")
		if want := fmt.Sprintf("group%d", i+1); err != nil || r.Value != want {
			t.Fatalf("group %d: got %+v, %v; want %q", i+1, r, err, want)
		}
	}
	resp, err := http.Get("http://" + c.Nodes[1].AdminAddr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st server.NodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.ID != 2 || st.Protocol != "paxos" || len(st.Groups) != 2 || st.Groups[0].Group != 1 || st.Groups[1].Group != 2 {
		t.Fatalf("status of node 2: %+v", st)
	}
	for _, g := range st.Groups {
		if g.Leader == 0 || g.Applied == 0 || g.Commit < g.Applied {
			t.Fatalf("status of node 2, group %d: %+v", g.Group, g)
		}
	}
}

func TestClockOffset(t *testing.T) {
	t.Setenv(server.ClockOffsetEnv, "-1h")
	d, err := server.ClockOffsetFromEnv()
	if err != nil || d != -time.Hour {
		t.Fatalf("offset %v, %v", d, err)
	}
	server.SetClockOffset(d)
	defer server.SetClockOffset(0)
	if skew := time.Since(server.Now()); skew < 59*time.Minute || skew > 61*time.Minute {
		t.Fatalf("Now is %v behind, want 1h", skew)
	}
	t.Setenv(server.ClockOffsetEnv, "soon")
	if _, err := server.ClockOffsetFromEnv(); err == nil || !strings.Contains(err.Error(), server.ClockOffsetEnv) {
		t.Fatalf("bad offset: %v", err)
	}
}
