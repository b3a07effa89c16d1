package kvnodedb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/internal/dockertest"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

// dockerOrSkip connects to the engine, skipping the test in -short mode or
// when no engine is reachable (failing instead under CI=true, where Docker
// is part of the contract).
func dockerOrSkip(t testing.TB) *docker.Docker {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker integration test; -short runs unit tests only")
	}
	return dockertest.Connect(t)
}

// buildKvnode builds the static node binary into a temporary directory.
func buildKvnode(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kvnode")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/chaoskv/chaos/cmd/kvnode")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kvnode: %v\n%s", err, out)
	}
	return bin
}

// launched is a healthy kvnode cluster in Docker, removed when the test
// ends.
type launched struct {
	ctx    context.Context // bounds the test's Docker work
	db     *DB
	b      *dockerbackend.Backend
	cl     *harness.Cluster
	target *dockerbackend.Target
	file   *config.Cluster
}

// launch starts a cluster of the given shape and waits until it is
// healthy; whatever happens next, nothing labelled with its run survives
// the test.
func launch(t *testing.T, d *docker.Docker, opts Options) *launched {
	t.Helper()
	db, err := NewDB(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dockerbackend.New(d, db, dockerbackend.Options{Nodes: opts.Nodes, LazyFS: opts.LazyFS})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "kvnodedb", time.Now().UTC().Format("20060102T150405.000"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		rep, err := d.Clean(ctx, dockerbackend.RunID(dir), false)
		if err != nil {
			t.Errorf("clean: %v", err)
		}
		if rep.Containers+rep.Networks > 0 {
			t.Errorf("Close left %d containers and %d networks behind", rep.Containers, rep.Networks)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	start := time.Now()
	cl, err := b.Setup(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster healthy after %v", time.Since(start).Round(time.Millisecond))
	tg, ok := cl.Target.(*dockerbackend.Target)
	if !ok {
		t.Fatalf("the backend's target is a %T, not the Docker backend's", cl.Target)
	}
	file, err := db.clusterFile(tg.Members())
	if err != nil {
		t.Fatal(err)
	}
	return &launched{ctx: ctx, db: db, b: b, cl: cl, target: tg, file: file}
}

// outcome is what a writer learnt about one append.
type outcome int

const (
	acked   outcome = iota // the append returned a value: it must survive
	failed                 // certainly not applied: it must never appear
	unknown                // may or may not have been applied
)

// ledger records every append the writers attempted, by token.
type ledger struct {
	mu  sync.Mutex
	ops map[string]outcome // token -> outcome
	key map[string]string  // token -> key
}

func (l *ledger) record(key, token string, o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops[token] = o
	l.key[token] = key
}

func (l *ledger) count(o outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.ops {
		if v == o {
			n++
		}
	}
	return n
}

// writers appends unique tokens to keys from several sessions until stop
// is closed.
type writers struct {
	wg   sync.WaitGroup
	stop chan struct{}
}

func startWriters(t *testing.T, file *config.Cluster, keys []string, n int, l *ledger) *writers {
	t.Helper()
	w := &writers{stop: make(chan struct{})}
	for i := range n {
		cfg, err := client.FromCluster(file, file.Groups[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		cfg.AttemptTimeout = 500 * time.Millisecond
		c, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		w.wg.Go(func() {
			defer c.Close()
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				key := keys[(i+seq)%len(keys)]
				token := fmt.Sprintf("w%d.%d", i, seq)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := c.Append(ctx, key, token+";")
				cancel()
				switch {
				case err == nil:
					l.record(key, token, acked)
				case errors.Is(err, client.ErrFailed):
					l.record(key, token, failed)
				default:
					l.record(key, token, unknown)
				}
				if err != nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	return w
}

func (w *writers) halt() {
	close(w.stop)
	w.wg.Wait()
}

// waitAcks waits until at least n more appends have been acknowledged.
func waitAcks(t *testing.T, l *ledger, n int, within time.Duration) {
	t.Helper()
	want := l.count(acked) + n
	deadline := time.Now().Add(within)
	for l.count(acked) < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d acknowledged appends within %v", l.count(acked), want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillRestartKeepsAcknowledgedWrites SIGKILLs a replica group's nodes
// under a stream of appends, first all at once and then a minority, and
// reads every key back once they run again: each acknowledged append must
// be there exactly once, and nothing that was never attempted, or that
// certainly failed, may be.
func TestKillRestartKeepsAcknowledgedWrites(t *testing.T) {
	d := dockerOrSkip(t)
	lc := launch(t, d, Options{Binary: buildKvnode(t), Nodes: 3, Replicas: 3, Protocol: "paxos", AttemptTimeout: 500 * time.Millisecond})
	ctx, b, target, nt := lc.ctx, lc.b, lc.cl.Target, lc.target
	group := target.Nodes()

	keys := []string{"crash-a", "crash-b", "crash-c"}
	l := &ledger{ops: map[string]outcome{}, key: map[string]string{}}
	w := startWriters(t, lc.file, keys, 4, l)
	defer func() {
		select {
		case <-w.stop:
		default:
			w.halt()
		}
	}()

	each := func(nodes []string, f func(context.Context, string) error) {
		t.Helper()
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() { errs[i] = f(ctx, n) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	pids := func(nodes []string) map[string]int {
		t.Helper()
		out := map[string]int{}
		for _, n := range nodes {
			pid, err := nt.PID(n)
			if err != nil {
				t.Fatal(err)
			}
			out[n] = pid
		}
		return out
	}
	round := func(name string, victims []string, down time.Duration) {
		t.Helper()
		waitAcks(t, l, 30, 10*time.Second)
		before := l.count(acked)
		old := pids(victims)
		began := time.Now()
		each(victims, target.Kill)
		time.Sleep(down)
		each(victims, target.Start)
		for n, pid := range pids(victims) {
			if pid == 0 || pid == old[n] {
				t.Fatalf("%s: %s has pid %d after restart (was %d): it was not killed and started again", name, n, pid, old[n])
			}
		}
		if err := b.WaitHealthy(ctx); err != nil {
			t.Fatalf("%s: not healthy after restart: %v", name, err)
		}
		waitAcks(t, l, 30, 10*time.Second)
		t.Logf("%s: killed %v with %d appends acknowledged; writes flowing again after %v",
			name, victims, before, time.Since(began).Round(time.Millisecond))
	}
	// The whole group stays down longer than an append's timeout, so that
	// some appends end without an answer and their outcome is unknown.
	round("whole group", group, 2500*time.Millisecond)
	// The minority is the leader when one is known, so that the group
	// must also elect a new one.
	minority := group[:len(group)/2]
	if ls, err := lc.cl.Leaders(ctx); err == nil && len(ls) == 1 {
		minority = ls
	}
	round("minority", minority, 300*time.Millisecond)
	w.halt()

	// Reads go through a fresh session after every node was restarted at
	// least once.
	cfg, err := client.FromCluster(lc.file, lc.file.Groups[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	seen := map[string]int{}
	for _, k := range keys {
		var r client.GetResult
		for attempt := 0; ; attempt++ {
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			r, err = rc.Get(rctx, k)
			rcancel()
			if err == nil {
				break
			}
			if attempt == 5 {
				t.Fatalf("read %s: %v", k, err)
			}
		}
		for _, tok := range strings.Split(r.Value, ";") {
			if tok == "" {
				continue
			}
			seen[tok]++
			o, ok := l.ops[tok]
			switch {
			case !ok:
				t.Errorf("key %s holds %q, which no writer ever appended", k, tok)
			case l.key[tok] != k:
				t.Errorf("key %s holds %q, which was appended to %s", k, tok, l.key[tok])
			case o == failed:
				t.Errorf("key %s holds %q, whose append certainly failed", k, tok)
			}
		}
	}
	lost, doubled := 0, 0
	for tok, o := range l.ops {
		switch {
		case seen[tok] > 1:
			doubled++
			t.Errorf("%q appears %d times", tok, seen[tok])
		case o == acked && seen[tok] == 0:
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged append %q to %s is lost", tok, l.key[tok])
			}
		}
	}
	if lost > 10 {
		t.Errorf("... %d acknowledged appends lost in all", lost)
	}
	t.Logf("%d appends acknowledged, %d failed, %d unknown; %d tokens read back; %d lost, %d doubled",
		l.count(acked), l.count(failed), l.count(unknown), len(seen), lost, doubled)
}
