package docker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/docker/lazyfs"
	"github.com/chaoskv/chaos/nemesis"
)

// mounted reports whether path is a mount point of this process's view.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// TestLazyFSDataDirectories launches a node on a lazyfs: its data
// directory is mounted while the cluster lives, a file the container
// writes and never syncs is gone after LoseUnsynced, the node starts again,
// and Close unmounts everything.
func TestLazyFSDataDirectories(t *testing.T) {
	d := testDocker(t)
	if _, err := os.Stat(lazyfs.DevFUSE); errors.Is(err, fs.ErrNotExist) && os.Getenv("CI") == "" {
		t.Skipf("skipping: %s is missing", lazyfs.DevFUSE)
	}
	ctx := context.Background()
	ref, err := d.EnsureImage(ctx, netprobeBinary(t), "netprobe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Launch(ctx, Options{RunID: newRunID(t), Dir: t.TempDir(), Image: ref, Nodes: 1, LazyFS: true, LeaveRunning: true}); err == nil {
		t.Fatal("a lazyfs cluster was allowed to be left running")
	}
	runID := newRunID(t)
	t.Cleanup(func() { _, _ = d.Clean(context.Background(), runID, false) })
	dir := t.TempDir()
	c, err := d.Launch(ctx, Options{RunID: runID, Dir: dir, Image: ref, Nodes: 1, LazyFS: true,
		Cmd: func(Node) []string { return []string{"serve"} }})
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "nodes", "n1", "lazyfs")
	t.Cleanup(func() {
		c.Close(context.Background())
		if mounted(t, mnt) {
			t.Errorf("%s still mounted after Close", mnt)
		}
	})
	if !mounted(t, mnt) {
		t.Fatalf("%s is not mounted", mnt)
	}
	if err := c.Supports(ctx, nemesis.LoseUnsynced); err != nil {
		t.Fatal(err)
	}
	waitUp(t, c, "n1")
	// A write through the mount stands in for the node's own: unsynced, it
	// must be lost; the synced one must stay.
	if err := os.WriteFile(filepath.Join(mnt, "unsynced"), []byte("lost"), 0o644); err != nil {
		t.Fatal(err)
	}
	lost, err := c.LoseUnsynced(ctx, "n1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pid, _ := c.PID("n1"); pid != 0 || lost.Files != 1 || lost.Changes == 0 {
		t.Fatalf("after LoseUnsynced: pid %d, lost %+v", pid, lost)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "nodes", "n1", "data", "unsynced")); err != nil || len(b) != 0 {
		t.Fatalf("unsynced file after the loss: %q, %v; want it empty", b, err)
	}
	if err := c.Start(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	waitUp(t, c, "n1")
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if mounted(t, mnt) {
		t.Fatalf("%s still mounted after Close", mnt)
	}
	assertNoLeftovers(t, d, runID)
}

// Without LazyFS the cluster refuses lose-unsynced up front.
func TestLoseUnsyncedNeedsLazyFS(t *testing.T) {
	c := &Cluster{}
	if err := c.Supports(context.Background(), nemesis.LoseUnsynced); err == nil {
		t.Fatal("a cluster without lazyfs claims lose-unsynced")
	}
}
