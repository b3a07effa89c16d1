package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

// storeOneRun runs a short test against the in-memory store and returns
// the store directory.
func storeOneRun(t *testing.T) string {
	t.Helper()
	old := runBackend
	t.Cleanup(func() { runBackend = old })
	b := &memBackend{sut: func() workloads.SUT { return memkv.New(memkv.Options{}) }}
	runBackend = func(context.Context, kvnodedb.Options) (harness.Backend, func(), error) {
		return b, func() {}, nil
	}
	store := t.TempDir()
	if code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", "none", "--time-limit", "200ms",
		"--rate", "200", "--store", store, "--seed", "1"); code != exitValid {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	return store
}

func TestServeCommandShutsDownOnInterrupt(t *testing.T) {
	store := storeOneRun(t)
	addr := make(chan string, 1)
	serveListening = func(a string) { addr <- a }
	t.Cleanup(func() { serveListening = nil })
	done := make(chan int, 1)
	go func() { done <- run([]string{"chaos", "serve", "--addr", "127.0.0.1:0", "--store", store}) }()
	var a string
	select {
	case a = <-addr:
	case code := <-done:
		t.Fatalf("serve exited %d before listening", code)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start listening")
	}
	resp, err := http.Get("http://" + a + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "register-none") || !strings.Contains(string(body), `class="valid"`) {
		t.Fatalf("GET /: %d\n%s", resp.StatusCode, body)
	}
	// serve has its own SIGINT handler installed by now, so the signal
	// stops it, not the test binary.
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitValid {
			t.Fatalf("serve exited %d after Ctrl-C, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not shut down on SIGINT")
	}
}

func TestServeCommandBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--store", "/nonexistent/store"},
		{"serve", "--store", t.TempDir(), "--addr", "not an address"},
		{"serve", "extra"},
	} {
		if code, stderr := runCLI(t, args...); code != exitBadArgs {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitBadArgs, stderr)
		}
	}
}

func TestReportCommandRebuilds(t *testing.T) {
	store := storeOneRun(t)
	latest, err := results.Latest(store)
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(latest, results.ReportFile)
	before, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(report)
	if code, stderr := runCLI(t, "report", latest); code != exitValid {
		t.Fatalf("report: exit %d\n%s", code, stderr)
	}
	after, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) < len(before)/2 {
		t.Errorf("the rebuilt report (%d bytes) is much smaller than the one the run wrote (%d bytes)", len(after), len(before))
	}
	if !strings.Contains(string(after), "VALID") || !strings.Contains(string(after), "latency of") {
		t.Error("the rebuilt report lacks the verdict or the plots")
	}
	for _, args := range [][]string{{"report"}, {"report", "/nonexistent"}, {"report", t.TempDir()}, {"report", report}} {
		if code, _ := runCLI(t, args...); code != exitBadArgs {
			t.Errorf("%v: exit %d, want %d", args, code, exitBadArgs)
		}
	}
}
