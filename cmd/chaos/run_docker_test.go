package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness/dockerbackend"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/results"
)

// dockerOrSkip connects to Docker, skipping the test when no engine is
// reachable, unless CI=true demands one.
func dockerOrSkip(t *testing.T) *docker.Docker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := docker.Connect(ctx)
	if err != nil {
		if errors.Is(err, docker.ErrUnreachable) && os.Getenv("CI") != "true" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestRunDockerPartition is the product's main job end to end: a 30-second
// chaos run --nemesis partition against a real kvnode cluster in Docker. It
// must be valid, have partitions in its history, and leave nothing running.
func TestRunDockerPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the Docker end-to-end run in -short mode")
	}
	d := dockerOrSkip(t)
	bin := filepath.Join(t.TempDir(), "kvnode")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/chaoskv/chaos/cmd/kvnode")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kvnode: %v\n%s", err, out)
	}
	store := t.TempDir()
	leftovers := func() docker.CleanReport {
		dir, err := results.Latest(store)
		if err != nil {
			return docker.CleanReport{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, err := d.Clean(ctx, dockerbackend.RunID(dir), false)
		if err != nil {
			t.Errorf("clean: %v", err)
		}
		return rep
	}
	t.Cleanup(func() { leftovers() })

	code, stderr := runCLI(t, "run", "--nemesis", "partition", "--nemesis-interval", "4s",
		"--time-limit", "30s", "--kvnode-binary", bin, "--store", store, "--seed", "1")
	if code != exitValid {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitValid, stderr)
	}
	if rep := leftovers(); rep.Containers != 0 || rep.Networks != 0 {
		t.Fatalf("the run left %d containers and %d networks behind", rep.Containers, rep.Networks)
	}
	dir, err := results.Latest(store)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, results.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := history.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	partitions, oks := 0, 0
	for _, op := range ops {
		switch {
		case op.Process.IsNemesis() && op.F == "start-partition" && op.Type == history.Info && op.Error == "":
			partitions++
		case !op.Process.IsNemesis() && op.Type == history.Ok:
			oks++
		}
	}
	if partitions == 0 {
		t.Fatal("no partition took effect during the run")
	}
	if oks < 500 {
		t.Fatalf("only %d ok ops in 30s at 100 ops/s", oks)
	}
	sum, err := results.ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d partitions, %d ok ops; %v", partitions, oks, sum.Results)
	for _, n := range []string{"n1", "n5"} {
		if _, err := os.Stat(filepath.Join(dir, results.NodesDir, n, "log")); err != nil {
			t.Errorf("node log missing: %v", err)
		}
	}
}
