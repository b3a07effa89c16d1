package main

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

// TestRunWarnsBelowRate: a run that cannot reach --rate says so in the
// lines chaos run prints.
func TestRunWarnsBelowRate(t *testing.T) {
	old := runBackend
	t.Cleanup(func() { runBackend = old })
	b := &memBackend{sut: func() workloads.SUT { return memkv.New(memkv.Options{}) }}
	runBackend = func(context.Context, kvnodedb.Options) (harness.Backend, func(), error) {
		return b, func() {}, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldOut := os.Stdout
	os.Stdout = w
	var out strings.Builder
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(&out, r) })
	code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", "none", "--concurrency", "1",
		"--time-limit", "300ms", "--rate", "100000000", "--store", t.TempDir(), "--seed", "5")
	os.Stdout = oldOut
	w.Close()
	wg.Wait()
	r.Close()
	if code != exitValid {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(out.String(), "note: the achieved rate stayed below --rate") {
		t.Errorf("the summary lacks the rate warning:\n%s", out.String())
	}
}
