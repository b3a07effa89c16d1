package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
	"github.com/chaoskv/chaos/kvnode/shardctl"
)

// Fsync modes of a node's storage.
const (
	// FsyncFull: two syncs per storage transaction; survives power loss.
	FsyncFull = "full"
	// FsyncOnce: one sync per batch; survives process crashes only.
	FsyncOnce = "once"
)

// LocalConfig describes a throwaway loopback cluster.
type LocalConfig struct {
	// Nodes is the number of nodes (default 3).
	Nodes int
	// Protocol is the replication protocol (protocols.Names).
	Protocol string
	// Fsync is FsyncFull or FsyncOnce.
	Fsync string
	// ShardGroups, when positive, makes the cluster sharded: a controller
	// group and so many shard groups, each replicated on every node, all
	// joined before Start returns.
	ShardGroups int
	// Dir holds the nodes' data; Close removes it. Empty: a new temporary
	// directory.
	Dir string
	// Logger receives the nodes' logs (default: discarded).
	Logger *slog.Logger
	// Binary, when set, is a kvnode executable: every node runs as a
	// process of it (its output in Dir/nK.log) instead of inside this
	// process.
	Binary string
}

// Local is a running loopback cluster in this process.
type Local struct {
	// File is its cluster file.
	File   *config.Cluster
	dir    string
	cancel context.CancelFunc
	done   []chan error
	procs  []*exec.Cmd

	closeOnce sync.Once
	closeErr  error
}

// StartLocal starts a loopback cluster and waits until it serves requests.
func StartLocal(ctx context.Context, cfg LocalConfig) (*Local, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("nodes must be at least 1, got %d", cfg.Nodes)
	}
	if cfg.Fsync != FsyncFull && cfg.Fsync != FsyncOnce {
		return nil, fmt.Errorf("fsync: want %s or %s, got %q", FsyncFull, FsyncOnce, cfg.Fsync)
	}
	proto, err := protocols.Lookup(cfg.Protocol)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	file, err := localFile(cfg)
	if err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		dir, err = os.MkdirTemp("", "kvnode-bench-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l := &Local{File: file, dir: dir, cancel: cancel}
	if cfg.Binary != "" {
		if err := l.startProcesses(cfg); err != nil {
			l.Close()
			return nil, err
		}
	}
	for _, nd := range file.Nodes {
		if cfg.Binary != "" {
			break
		}
		n, err := server.New(server.Options{
			Cluster: file, ID: nd.ID, DataDir: filepath.Join(dir, fmt.Sprintf("n%d", nd.ID)), Protocol: proto,
			SyncOnce: cfg.Fsync == FsyncOnce, ShardController: file.ShardController, Logger: cfg.Logger,
		})
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("node %d: %w", nd.ID, err)
		}
		done := make(chan error, 1)
		l.done = append(l.done, done)
		go func() { done <- n.Run(runCtx) }()
		select {
		case <-n.Ready():
		case err := <-done:
			done <- err
			l.Close()
			return nil, fmt.Errorf("node %d did not start: %w", nd.ID, err)
		}
	}
	if err := l.waitServing(ctx, cfg); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// startProcesses starts every node as a process of cfg.Binary.
func (l *Local) startProcesses(cfg LocalConfig) error {
	path := filepath.Join(l.dir, "cluster.json")
	b, err := json.Marshal(l.File)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("cluster file: %w", err)
	}
	for _, nd := range l.File.Nodes {
		logf, err := os.Create(filepath.Join(l.dir, fmt.Sprintf("n%d.log", nd.ID)))
		if err != nil {
			return fmt.Errorf("node %d log: %w", nd.ID, err)
		}
		cmd := exec.Command(cfg.Binary, "--cluster", path, "--id", strconv.Itoa(int(nd.ID)),
			"--data", filepath.Join(l.dir, fmt.Sprintf("n%d", nd.ID)), "--fsync", cfg.Fsync, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = logf, logf
		err = cmd.Start()
		logf.Close() // the child holds its own descriptor
		if err != nil {
			return fmt.Errorf("node %d: start %s: %w", nd.ID, cfg.Binary, err)
		}
		l.procs = append(l.procs, cmd)
	}
	return nil
}

// localFile writes the cluster file: free loopback ports, fast ticks.
func localFile(cfg LocalConfig) (*config.Cluster, error) {
	addrs, err := freePorts(cfg.Nodes)
	if err != nil {
		return nil, err
	}
	c := &config.Cluster{Protocol: cfg.Protocol, TickMS: 10, ElectionTicks: 30, HeartbeatTicks: 3}
	var members []replica.NodeID
	for i := 1; i <= cfg.Nodes; i++ {
		c.Nodes = append(c.Nodes, config.Node{ID: replica.NodeID(i), Name: fmt.Sprintf("n%d", i), Addr: addrs[i-1]})
		members = append(members, replica.NodeID(i))
	}
	c.Groups = []config.Group{{ID: 1, Members: members}}
	if cfg.ShardGroups > 0 {
		c.ShardController = 1
		for g := 2; g <= cfg.ShardGroups+1; g++ {
			c.Groups = append(c.Groups, config.Group{ID: replica.GroupID(g), Members: members})
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	return c, nil
}

func freePorts(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a loopback port: %w", err)
		}
		out = append(out, l.Addr().String())
		defer l.Close()
	}
	return out, nil
}

// waitServing waits until every group has a leader that applies requests
// and, for a sharded cluster, joins the shard groups.
func (l *Local) waitServing(ctx context.Context, cfg LocalConfig) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if cfg.ShardGroups == 0 {
		ccfg, err := client.FromCluster(l.File, 1)
		if err != nil {
			return err
		}
		c, err := client.New(ccfg)
		if err != nil {
			return err
		}
		defer c.Close()
		return retry(ctx, func(ctx context.Context) error { _, err := c.Get(ctx, "bench-ready"); return err })
	}
	admin, err := client.NewSharded(client.ShardedConfig{Cluster: l.File, Controller: l.File.ShardController})
	if err != nil {
		return err
	}
	defer admin.Close()
	join := shardctl.Op{Kind: shardctl.Join, Groups: map[replica.GroupID][]replica.NodeID{}}
	for _, g := range l.File.Groups {
		if g.ID != l.File.ShardController {
			join.Groups[g.ID] = g.Members
		}
	}
	joined := func(ctx context.Context) error {
		// A join whose answer was lost may have taken effect: look first.
		c, err := admin.Admin(ctx, shardctl.Op{Kind: shardctl.Query, Num: -1})
		if err != nil {
			return err
		}
		missing := false
		for g := range join.Groups {
			if _, ok := c.Groups[g]; !ok {
				missing = true
			}
		}
		if !missing {
			return nil
		}
		_, err = admin.Admin(ctx, join)
		return err
	}
	if err := retry(ctx, joined); err != nil {
		return fmt.Errorf("join the shard groups: %w", err)
	}
	return nil
}

// retry runs f with a short deadline until it succeeds or ctx ends.
func retry(ctx context.Context, f func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster not serving: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops the nodes and removes their data; later calls return the
// first call's error.
func (l *Local) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Local) close() error {
	l.cancel()
	var errs []error
	for _, p := range l.procs {
		// SIGTERM is a graceful stop; a node that ignores it is killed.
		p.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(10*time.Second, func() { p.Process.Kill() })
		if err := p.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("node process %d: %w", p.Process.Pid, err))
		}
		t.Stop()
	}
	for _, d := range l.done {
		if err := <-d; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(l.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", l.dir, err))
	}
	return errors.Join(errs...)
}
