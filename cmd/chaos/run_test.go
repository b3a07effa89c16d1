package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

// runCLI runs chaos with args and returns its exit code and stderr.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	var buf strings.Builder
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(&buf, r) })
	code := run(append([]string{"chaos"}, args...))
	os.Stderr = old
	w.Close()
	wg.Wait()
	r.Close()
	return code, buf.String()
}

func TestRunBadFlags(t *testing.T) {
	bin := os.Args[0] // any regular file stands in for the kvnode binary
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"--nodes", "five"}, "nodes"},
		{[]string{"--nodes", "0"}, "--nodes"},
		{[]string{"--replicas", "7"}, "--replicas"},
		{[]string{"--replication", "raft"}, "--replication"},
		{[]string{"--workload", "bank2"}, "--workload"},
		{[]string{"--nemesis", "partition,flood"}, "--nemesis"},
		{[]string{"--nemesis", ""}, "--nemesis"},
		{[]string{"--nemesis", "partition-bridge", "--nodes", "2", "--replicas", "2"}, "--nemesis"},
		{[]string{"--nemesis-interval", "0s"}, "--nemesis-interval"},
		{[]string{"--nemesis-interval", "soon"}, "nemesis-interval"},
		{[]string{"--time-limit", "-1s"}, "--time-limit"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--rate", "-5"}, "--rate"},
		{[]string{"--rate", "NaN"}, "--rate"},
		{[]string{"--test-count", "0"}, "--test-count"},
		{[]string{"--name", "a/b"}, "--name"},
		{[]string{"--store", ""}, "--store"},
		{[]string{"--op-timeout", "0s"}, "--op-timeout"},
		{[]string{"--kvnode-binary", "/nonexistent/kvnode"}, "--kvnode-binary"},
		{[]string{"extra-arg"}, "arguments"},
		{[]string{"--tear-writes"}, "--tear-writes"},
		{[]string{"--nemesis", "clock-bump", "--clock-skew", "0s"}, "--clock-skew"},
		{[]string{"--nemesis", "clock-strobe", "--strobe-period", "100us"}, "--strobe-period"},
		{[]string{"--nemesis", "lose-unsynced", "--leave-running"}, "--leave-running"},
		{[]string{"--spares", "-1"}, "--spares"},
		{[]string{"--nemesis", "membership", "--workload", "list-append", "--groups", "2"}, "--nemesis membership: membership changes need --groups 0"},
	}
	for _, tt := range tests {
		args := append([]string{"run", "--kvnode-binary", bin}, tt.args...)
		code, stderr := runCLI(t, args...)
		if code != exitBadArgs {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tt.args, code, exitBadArgs, stderr)
			continue
		}
		if !strings.Contains(stderr, tt.flag) {
			t.Errorf("%v: message %q does not name %s", tt.args, stderr, tt.flag)
		}
	}
}

// Without FUSE, lose-unsynced is refused as a bad argument naming what is
// missing, and a run without it does not need FUSE at all.
func TestRunRefusesLoseUnsyncedWithoutFUSE(t *testing.T) {
	old := fuseAvailable
	fuseAvailable = func() error {
		return errors.New("lazyfs: FUSE is unavailable: open /dev/fuse: no such file or directory")
	}
	defer func() { fuseAvailable = old }()
	code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", "partition,lose-unsynced")
	if code != exitBadArgs || !strings.Contains(stderr, "lose-unsynced needs FUSE") || !strings.Contains(stderr, "/dev/fuse") {
		t.Fatalf("exit %d, stderr %q; want %d naming lose-unsynced and /dev/fuse", code, stderr, exitBadArgs)
	}
	oldBackend := runBackend
	defer func() { runBackend = oldBackend }()
	asked := false
	runBackend = func(_ context.Context, o kvnodedb.Options) (harness.Backend, func(), error) {
		asked = true
		if o.LazyFS {
			t.Error("a run without lose-unsynced asks for lazyfs")
		}
		return nil, nil, errors.New("no backend in this test")
	}
	if code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", "partition,kill,clock-bump"); !asked || code != exitInternal {
		t.Fatalf("a run without lose-unsynced was refused: exit %d, %s", code, stderr)
	}
}

// memBackend serves a fresh in-memory SUT on every Setup, as a real
// backend starts a fresh cluster.
type memBackend struct {
	sut    func() workloads.SUT
	closed int
}

func (b *memBackend) Setup(context.Context, string) (*harness.Cluster, error) {
	return &harness.Cluster{SUT: b.sut()}, nil
}
func (b *memBackend) WaitHealthy(context.Context) error     { return nil }
func (b *memBackend) Collect(context.Context, string) error { return nil }
func (b *memBackend) Close(context.Context) error           { b.closed++; return nil }

// liarSUT answers every read with a value nobody wrote.
type liarSUT struct{ workloads.SUT }

func (s liarSUT) OpenKV(ctx context.Context) (workloads.KV, error) {
	kv, err := s.SUT.OpenKV(ctx)
	return liarKV{kv}, err
}

type liarKV struct{ workloads.KV }

func (liarKV) Get(context.Context, string) (string, bool, error) { return "999999999", true, nil }

func TestRunExitCodeByVerdict(t *testing.T) {
	old := runBackend
	t.Cleanup(func() { runBackend = old })
	tests := []struct {
		name string
		sut  func() workloads.SUT
		code int
	}{
		{"linearizable store", func() workloads.SUT { return memkv.New(memkv.Options{LoseRate: 0.05, RefuseRate: 0.05}) }, exitValid},
		{"lying store", func() workloads.SUT { return liarSUT{memkv.New(memkv.Options{})} }, exitInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &memBackend{sut: tt.sut}
			runBackend = func(context.Context, kvnodedb.Options) (harness.Backend, func(), error) {
				return b, func() {}, nil
			}
			store := t.TempDir()
			code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", "none",
				"--time-limit", "300ms", "--rate", "300", "--store", store, "--seed", "5", "--test-count", "3")
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			runs, _ := filepath.Glob(filepath.Join(store, "register-none", "*"))
			want := 3
			if tt.code == exitInvalid {
				want = 1 // stops at the first invalid run
			}
			if len(runs) != want || b.closed != want {
				t.Fatalf("%d runs, %d teardowns; want %d", len(runs), b.closed, want)
			}
			latest, err := results.Latest(store)
			if err != nil {
				t.Fatal(err)
			}
			test, err := results.ReadTest(latest)
			if err != nil {
				t.Fatal(err)
			}
			if test.Seed != int64(5+want-1) || test.Parameters["nodes"] != int64(5) {
				t.Fatalf("test.json seed %d parameters %v", test.Seed, test.Parameters)
			}
		})
	}
}

// TestRunUnusablePathsLeaveNothing: an unusable --kvnode-binary or --store
// is a bad argument, refused before the store is touched.
func TestRunUnusablePathsLeaveNothing(t *testing.T) {
	tmp := t.TempDir()
	notExec := writeFile(t, tmp, "kvnode-text", "#!/bin/sh\n")
	script := writeFile(t, tmp, "kvnode-script", "#!/bin/sh\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	storeFile := writeFile(t, tmp, "store-file", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"text file", []string{"--kvnode-binary", "/etc/passwd"}, "--kvnode-binary"},
		{"not executable", []string{"--kvnode-binary", notExec}, "not executable"},
		{"script", []string{"--kvnode-binary", script}, "not an ELF"},
		{"directory", []string{"--kvnode-binary", tmp}, "not a regular file"},
		{"proc store", []string{"--store", "/proc/nope"}, "--store"},
		{"store is a file", []string{"--store", storeFile}, "not a directory"},
		{"store under a file", []string{"--store", filepath.Join(storeFile, "runs")}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			args := append([]string{"run", "--kvnode-binary", os.Args[0], "--store", store, "--nemesis", "none"}, tt.args...)
			code, stderr := runCLI(t, args...)
			if code != exitBadArgs {
				t.Fatalf("exit %d, want %d; stderr %q", code, exitBadArgs, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("message %q does not say %q", stderr, tt.want)
			}
			if _, err := os.Stat(store); !os.IsNotExist(err) {
				t.Fatalf("the store %s was created (%v)", store, err)
			}
			if _, err := os.Stat("/proc/nope"); !os.IsNotExist(err) {
				t.Fatalf("/proc/nope exists")
			}
		})
	}
}

// TestRunInterruptedExitCode: a run whose context ends exits 130, not as
// an internal error.
func TestRunInterruptedExitCode(t *testing.T) {
	old := runBackend
	t.Cleanup(func() { runBackend = old })
	runBackend = func(context.Context, kvnodedb.Options) (harness.Backend, func(), error) {
		return interruptingBackend{}, func() {}, nil
	}
	store := t.TempDir()
	code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", "none", "--time-limit", "1s", "--store", store, "--seed", "1")
	if code != exitInterrupted || !strings.Contains(stderr, "interrupted") {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitInterrupted, stderr)
	}
	latest, err := results.Latest(store)
	if err != nil {
		t.Fatal(err)
	}
	if test, err := results.ReadTest(latest); err != nil || test.Status != results.StatusInterrupted {
		t.Fatalf("test.json status %q (%v), want %q", test.Status, err, results.StatusInterrupted)
	}
}

// interruptingBackend stands for a user pressing Ctrl-C during setup: it
// sends the process SIGINT and waits for the run's context to end.
type interruptingBackend struct{}

func (interruptingBackend) Setup(ctx context.Context, _ string) (*harness.Cluster, error) {
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		return nil, err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}
func (interruptingBackend) WaitHealthy(context.Context) error     { return nil }
func (interruptingBackend) Collect(context.Context, string) error { return nil }
func (interruptingBackend) Close(context.Context) error           { return nil }
