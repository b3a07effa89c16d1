package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Mode: Put, Clients: 1, Total: 10, ValSize: 1, KeySpace: 1, Timeout: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cases := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Mode = "" }, "no mode"},
		{func(c *Config) { c.Mode = "scan" }, "unknown mode"},
		{func(c *Config) { c.Clients = 0 }, "clients"},
		{func(c *Config) { c.Total = -1 }, "negative"},
		{func(c *Config) { c.Total = 0 }, "total op count or a positive duration"},
		{func(c *Config) { c.Duration = time.Second }, "not both"},
		{func(c *Config) { c.ValSize = -1 }, "value size"},
		{func(c *Config) { c.KeySpace = 0 }, "key space"},
		{func(c *Config) { c.Mode = TxnCross }, "at least 2"},
		{func(c *Config) { c.Timeout = 0 }, "timeout"},
	}
	for _, c := range cases {
		cfg := good
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", cfg, err, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	got := summarize(lat)
	want := Latency{P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if got != want {
		t.Fatalf("summarize(1..100ms) = %+v, want %+v", got, want)
	}
	if got := summarize([]time.Duration{7}); got != (Latency{7, 7, 7, 7, 7}) {
		t.Fatalf("one sample: %+v", got)
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Fatalf("no samples: %+v", got)
	}
}

func startLocal(t *testing.T, cfg LocalConfig) *Local {
	t.Helper()
	cfg.Dir = t.TempDir() + "/data"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := StartLocal(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(cfg.Dir); !os.IsNotExist(err) {
			t.Errorf("data directory %s left behind (%v)", cfg.Dir, err)
		}
	})
	return l
}

func TestRunAgainstLocalCluster(t *testing.T) {
	for _, proto := range []string{"paxos", "vr"} {
		t.Run(proto, func(t *testing.T) {
			l := startLocal(t, LocalConfig{Protocol: proto, Fsync: FsyncOnce})
			for _, mode := range []Mode{Put, Get} {
				var calls atomic.Int64
				cfg := Config{Mode: mode, Clients: 4, Total: 200, ValSize: 10, KeySpace: 50, Timeout: 5 * time.Second,
					Progress: func(Progress) { calls.Add(1) }, ProgressEvery: time.Millisecond}
				r, err := Run(context.Background(), l.File, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if r.Ops != 200 || r.Failed+r.Unknown != 0 || r.Throughput <= 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 || r.Latency.P99 < r.Latency.P50 {
					t.Fatalf("%s: %+v", mode, r)
				}
				if calls.Load() == 0 {
					t.Errorf("%s: no progress reported", mode)
				}
			}
		})
	}
}

func TestRunTransactions(t *testing.T) {
	l := startLocal(t, LocalConfig{Protocol: "paxos", Fsync: FsyncOnce, ShardGroups: 2})
	for _, mode := range []Mode{Txn, TxnCross} {
		r, err := Run(context.Background(), l.File, Config{Mode: mode, Clients: 3, Total: 12, ValSize: 10, KeySpace: 100, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if r.Ops != 12 || r.Failed+r.Unknown != 0 {
			t.Fatalf("%s: %+v", mode, r)
		}
	}
	// Put and get need a plain group; the txn modes refuse a cluster
	// without a controller.
	plain := *l.File
	plain.ShardController = 0
	if _, err := Run(context.Background(), &plain, Config{Mode: Txn, Clients: 1, Total: 1, KeySpace: 10, Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "sharded") {
		t.Fatalf("txn against a cluster without a controller: %v", err)
	}
}

func TestRunCountsFailures(t *testing.T) {
	// Nothing listens: every op fails before it is sent.
	addrs, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	file := &config.Cluster{Nodes: []config.Node{{ID: 1, Addr: addrs[0]}}, Groups: []config.Group{{ID: 1, Members: []replica.NodeID{1}}}}
	r, err := Run(context.Background(), file, Config{Mode: Put, Clients: 2, Total: 6, KeySpace: 10, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 0 || r.Failed != 6 || r.Unknown != 0 || !strings.Contains(r.FirstError, "failed") {
		t.Fatalf("%+v, want 6 failed ops", r)
	}
}

func TestStartLocalValidates(t *testing.T) {
	for _, cfg := range []LocalConfig{
		{Protocol: "raft", Fsync: FsyncFull},
		{Protocol: "paxos", Fsync: "never"},
		{Protocol: "paxos", Fsync: FsyncFull, Nodes: -1},
	} {
		if _, err := StartLocal(context.Background(), cfg); err == nil {
			t.Errorf("StartLocal(%+v) accepted", cfg)
		}
	}
}

func TestLocalProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/kvnode")
	}
	bin := filepath.Join(t.TempDir(), "kvnode")
	build := exec.Command("go", "build", "-o", bin, "github.com/chaoskv/chaos/cmd/kvnode")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kvnode: %v\n%s", err, out)
	}
	l := startLocal(t, LocalConfig{Protocol: "vr", Fsync: FsyncOnce, Binary: bin})
	if len(l.procs) != 3 {
		t.Fatalf("%d node processes, want 3", len(l.procs))
	}
	r, err := Run(context.Background(), l.File, Config{Mode: Put, Clients: 2, Total: 50, KeySpace: 10, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 50 {
		t.Fatalf("%+v", r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range l.procs {
		if p.ProcessState == nil || !p.ProcessState.Exited() {
			t.Fatalf("node process %d still running after Close", p.Process.Pid)
		}
	}
}
