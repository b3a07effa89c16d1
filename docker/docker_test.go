package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testDocker connects to the engine, skipping the test when there is none
// (failing instead under CI=true, where Docker is part of the contract) and
// in -short mode.
func testDocker(t testing.TB) *Docker {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker integration test; -short runs unit tests only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := Connect(ctx)
	if err != nil {
		if errors.Is(err, ErrUnreachable) && os.Getenv("CI") != "true" {
			t.Skipf("skipping Docker test: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

var (
	probeOnce sync.Once
	probeBin  string
	probeErr  error
	probeDir  string
)

// netprobeBinary builds the static test program once per test binary.
func netprobeBinary(t testing.TB) string {
	t.Helper()
	probeOnce.Do(func() {
		probeDir, probeErr = os.MkdirTemp("", "netprobe")
		if probeErr != nil {
			return
		}
		probeBin = filepath.Join(probeDir, "netprobe")
		cmd := exec.Command("go", "build", "-trimpath", "-o", probeBin, "./internal/netprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("build netprobe: %v\n%s", err, out)
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probeBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if probeDir != "" {
		_ = os.RemoveAll(probeDir)
	}
	os.Exit(code)
}

func newRunID(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "test-" + hex.EncodeToString(b[:])
}

// launchProbes starts n netprobe nodes and registers their teardown, with
// a label sweep behind it so nothing survives a failing test. It returns
// the time from Launch until every node answered.
func launchProbes(t testing.TB, d *Docker, n int) (*Cluster, time.Duration) {
	t.Helper()
	ctx := context.Background()
	ref, err := d.EnsureImage(ctx, netprobeBinary(t), "netprobe")
	if err != nil {
		t.Fatal(err)
	}
	runID := newRunID(t)
	t.Cleanup(func() {
		if _, err := d.Clean(context.Background(), runID, false); err != nil {
			t.Errorf("clean run %s: %v", runID, err)
		}
	})
	start := time.Now()
	c, err := d.Launch(ctx, Options{
		RunID: runID, Dir: t.TempDir(), Image: ref, Nodes: n,
		Cmd:    func(Node) []string { return []string{"serve"} },
		Config: func(nodes []Node) ([]byte, error) { return json.Marshal(nodes) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	for _, m := range c.Members() {
		waitUp(t, c, m.Name)
	}
	return c, time.Since(start)
}

var httpc = &http.Client{Timeout: 10 * time.Second}

// ask sends a control request to node's netprobe and decodes the reply.
func ask(c *Cluster, node, path string, timeout time.Duration) (map[string]any, error) {
	ip, err := c.IP(node)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: timeout}
	resp, err := hc.Get(fmt.Sprintf("http://%s:8080%s", ip, path))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v map[string]any
	if strings.HasPrefix(path, "/ping") {
		return map[string]any{"ok": resp.StatusCode == 200}, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// waitUp waits until node answers its control port.
func waitUp(t testing.TB, c *Cluster, node string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := ask(c, node, "/ping", time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", node, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// canDial asks from to open a TCP connection to to's port 7000.
func canDial(t testing.TB, c *Cluster, from, to string) bool {
	t.Helper()
	ip, err := c.IP(to)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ask(c, from, fmt.Sprintf("/dial?addr=%s:7000&timeout=2s", ip), 10*time.Second)
	if err != nil {
		t.Fatalf("ask %s to dial %s: %v", from, to, err)
	}
	return v["ok"] == true
}
