package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

// The tests run nodes as real processes by re-executing the test binary,
// which then behaves as kvnode.
func TestMain(m *testing.M) {
	if os.Getenv("KVNODE_TEST_AS_NODE") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(t *testing.T, logPath string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KVNODE_TEST_AS_NODE=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

type testCluster struct {
	t    *testing.T
	path string
	c    *config.Cluster
	dir  string
	ps   []*proc
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	var ls []net.Listener
	for i := 0; i < 2*n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	c := &config.Cluster{Protocol: "paxos", TickMS: 10, ElectionTicks: 20, HeartbeatTicks: 3}
	g := config.Group{ID: 1}
	for i := 1; i <= n; i++ {
		c.Nodes = append(c.Nodes, config.Node{ID: replica.NodeID(i), Addr: ls[i-1].Addr().String(), AdminAddr: ls[n+i-1].Addr().String()})
		g.Members = append(g.Members, replica.NodeID(i))
	}
	for _, l := range ls {
		l.Close()
	}
	c.Groups = []config.Group{g}
	dir := t.TempDir()
	b, _ := json.Marshal(c)
	path := filepath.Join(dir, "cluster.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, path: path, c: c, dir: dir, ps: make([]*proc, n)}
	t.Cleanup(func() {
		if t.Failed() {
			for i := range tc.ps {
				b, _ := os.ReadFile(tc.logPath(i))
				t.Logf("node %d log (tail):\n%s", i+1, tail(string(b), 3000))
			}
		}
	})
	return tc
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (tc *testCluster) logPath(i int) string {
	return filepath.Join(tc.dir, fmt.Sprintf("n%d.log", i+1))
}

func (tc *testCluster) start(i int) {
	tc.ps[i] = startProc(tc.t, tc.logPath(i), "--cluster", tc.path, "--id", fmt.Sprint(i+1),
		"--data", filepath.Join(tc.dir, fmt.Sprintf("n%d", i+1)), "--log-level", "debug",
		// Small enough that the tests restart from snapshots too.
		"--snapshot-every", "20")
}

func (tc *testCluster) startAll() {
	for i := range tc.ps {
		tc.start(i)
	}
}

func (tc *testCluster) client() *client.Client {
	cfg, err := client.FromCluster(tc.c, 1)
	if err != nil {
		tc.t.Fatal(err)
	}
	cl, err := client.New(cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { cl.Close() })
	return cl
}

// put retries until one put succeeds or the deadline passes.
func (tc *testCluster) waitWritable(cl *client.Client, within time.Duration) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		octx, ocancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := cl.Put(octx, "probe", "x")
		ocancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			tc.t.Fatalf("cluster not writable within %v: %v", within, err)
		}
	}
}

// TestKillAllNodesLosesNoAcknowledgedWrite appends unique tokens from
// concurrent clients, SIGKILLs every node in the middle of it, restarts
// them from their data directories, and checks that every acknowledged
// append is there exactly once, and that nothing appears that was never
// attempted or certainly failed.
func TestKillAllNodesLosesNoAcknowledgedWrite(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.startAll()
	tc.waitWritable(tc.client(), 10*time.Second)

	const workers, keys = 8, 4
	var mu sync.Mutex
	acked := map[string]bool{}   // token -> acknowledged
	unknown := map[string]bool{} // token -> outcome unknown
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			cl := tc.client()
			for n := 0; ctx.Err() == nil; n++ {
				tok := fmt.Sprintf("w%d-%d;", w, n)
				octx, ocancel := context.WithTimeout(ctx, 300*time.Millisecond)
				_, err := cl.Append(octx, fmt.Sprintf("k%d", n%keys), tok)
				ocancel()
				mu.Lock()
				switch {
				case err == nil:
					acked[tok] = true
				case errors.Is(err, client.ErrUnknown):
					unknown[tok] = true
				}
				mu.Unlock()
				if errors.Is(err, client.ErrUnknown) {
					cl = tc.client() // a new session, as a retired process would
				}
			}
		})
	}
	// Kill in the middle of the traffic, once recovery will have to start
	// from snapshots as well as from the log.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		snaps, _ := filepath.Glob(filepath.Join(tc.dir, "n*", "group-1", "snap-*.snap"))
		if n >= 100 && len(snaps) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d appends acknowledged, %d snapshots", n, len(snaps))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range tc.ps {
		p.kill()
	}
	time.Sleep(100 * time.Millisecond) // let in-flight appends fail
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	tc.startAll()
	cl := tc.client()
	tc.waitWritable(cl, 10*time.Second)
	seen := map[string]int{}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	for k := 0; k < keys; k++ {
		r, err := cl.Get(rctx, fmt.Sprintf("k%d", k))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range strings.SplitAfter(r.Value, ";") {
			if tok != "" {
				seen[tok]++
			}
		}
	}
	for tok := range acked {
		if seen[tok] != 1 {
			t.Errorf("acknowledged append %q appears %d times after the restart", tok, seen[tok])
		}
	}
	for tok, n := range seen {
		if n != 1 {
			t.Errorf("append %q applied %d times", tok, n)
		}
		if !acked[tok] && !unknown[tok] {
			t.Errorf("append %q is present but was never acknowledged nor left unknown", tok)
		}
	}
	t.Logf("%d acknowledged, %d unknown, %d present after restart", len(acked), len(unknown), len(seen))
}

// TestLeaderKillFailover kills the leader's process and measures how long
// until the group takes writes again.
func TestLeaderKillFailover(t *testing.T) {
	const bound = 2 * time.Second
	tc := newTestCluster(t, 3)
	tc.startAll()
	cl := tc.client()
	tc.waitWritable(cl, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Put(ctx, "before", "1"); err != nil {
		t.Fatal(err)
	}
	leader := cl.Leader() // the node that just answered
	tc.ps[leader-1].kill()
	killed := time.Now()
	tc.waitWritable(cl, 5*time.Second)
	took := time.Since(killed)
	t.Logf("leader %d killed; writes resumed after %v (new leader %d)", leader, took, cl.Leader())
	if took > bound {
		t.Fatalf("service resumed after %v, want < %v", took, bound)
	}
	if cl.Leader() == leader {
		t.Fatalf("client still believes the killed node %d leads", leader)
	}
	if r, err := cl.Get(ctx, "before"); err != nil || r.Value != "1" {
		t.Fatalf("write from before the failover: %+v, %v", r, err)
	}
	// The survivors stop gracefully on SIGTERM.
	for i, p := range tc.ps {
		if replica.NodeID(i+1) == leader {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("node %d exited with %v after SIGTERM", i+1, p.err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("node %d did not stop within 5s of SIGTERM", i+1)
		}
	}
}

func TestCommandLine(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.startAll()
	tc.waitWritable(tc.client(), 10*time.Second)
	cases := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"client", "--cluster", tc.path, "put", "a", "1"}, exitOK, "ok", ""},
		{[]string{"client", "--cluster", tc.path, "append", "a", "2"}, exitOK, "12", ""},
		{[]string{"client", "--cluster", tc.path, "get", "a"}, exitOK, "12", ""},
		{[]string{"client", "--cluster", tc.path, "get", "missing"}, exitOK, "(not found)", ""},
		{[]string{"client", "--cluster", tc.path, "cas", "a", "x", "y"}, exitOK, `not swapped: current value "12"`, ""},
		{[]string{"client", "--cluster", tc.path, "cas", "a", "12", "y"}, exitOK, "ok", ""},
		{[]string{"client", "--cluster", tc.path, "get"}, exitBadArgs, "", "get takes 1 arguments"},
		{[]string{"client", "--cluster", tc.path, "frob"}, exitBadArgs, "", "want one of"},
		{[]string{"client", "--cluster", tc.path, "--group", "7", "get", "a"}, exitBadArgs, "", "group 7"},
		{[]string{"client", "get", "a"}, exitBadArgs, "", "--cluster is required"},
		{[]string{"--id", "1", "--data", "x"}, exitBadArgs, "", "--cluster is required"},
		{[]string{"--cluster", tc.path, "--data", "x"}, exitBadArgs, "", "--id"},
		{[]string{"--cluster", tc.path, "--id", "1"}, exitBadArgs, "", "--data is required"},
		{[]string{"--cluster", tc.path + ".missing", "--id", "1", "--data", "x"}, exitBadArgs, "", "cluster file"},
		{[]string{"--cluster", tc.path, "--id", "1", "--data", "x", "--listen", "nonsense"}, exitBadArgs, "", "--listen"},
		{[]string{"--cluster", tc.path, "--id", "9", "--data", t.TempDir()}, exitError, "", "node id 9"},
		{[]string{"--bogus"}, exitBadArgs, "", "bogus"},
		{[]string{"--help"}, exitOK, "", "usage: kvnode"},
		{[]string{"client", "-h"}, exitOK, "", "exit codes"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || strings.TrimSpace(out.String()) != c.out || !strings.Contains(errb.String(), c.err) {
			t.Errorf("kvnode %q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
				c.args, code, out.String(), errb.String(), c.code, c.out, c.err)
		}
	}
}
