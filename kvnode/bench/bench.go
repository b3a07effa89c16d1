// Package bench is kvnode's load generator: many concurrent client
// sessions issuing puts, linearizable gets or transactions against a
// cluster, measuring throughput and latency. It drives the store through
// kvnode/client exactly as an application would; Local starts a throwaway
// loopback cluster to aim it at.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/shardctl"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// Mode is what each op of a run does.
type Mode string

// The modes.
const (
	// Put writes a random key of the key space.
	Put Mode = "put"
	// Get reads a random key of the key space, linearizably (the key
	// space is written once before the measured run).
	Get Mode = "get"
	// Txn writes two keys owned by one shard group in one transaction.
	Txn Mode = "txn"
	// TxnCross writes two keys owned by two different shard groups in
	// one transaction (two-phase commit).
	TxnCross Mode = "txn-cross"
)

// Modes lists every mode.
var Modes = []Mode{Put, Get, Txn, TxnCross}

// ParseMode returns the mode named s.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown mode %q (want %s)", s, strings.Join(names, ", "))
}

// Sharded reports whether m needs a sharded cluster.
func (m Mode) Sharded() bool { return m == Txn || m == TxnCross }

// Config describes a run.
type Config struct {
	Mode    Mode
	Clients int
	// Total ends the run after so many ops; when zero, Duration does.
	Total    int
	Duration time.Duration
	// ValSize is the size of every written value in bytes.
	ValSize int
	// KeySpace is the number of distinct keys.
	KeySpace int
	// Timeout bounds each op.
	Timeout time.Duration
	// Group is the replica group of put and get (default 1).
	Group replica.GroupID
	// Progress, when set, is called about every ProgressEvery during the
	// measured run, from a goroutine of its own.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Validate reports the first thing wrong with c.
func (c *Config) Validate() error {
	switch {
	case c.Mode == "":
		return errors.New("no mode")
	case c.Clients < 1:
		return fmt.Errorf("clients must be at least 1, got %d", c.Clients)
	case c.Total < 0:
		return fmt.Errorf("total must not be negative, got %d", c.Total)
	case c.Total == 0 && c.Duration <= 0:
		return errors.New("give a total op count or a positive duration")
	case c.Total > 0 && c.Duration > 0:
		return errors.New("give a total op count or a duration, not both")
	case c.ValSize < 0:
		return fmt.Errorf("value size must not be negative, got %d", c.ValSize)
	case c.KeySpace < 1:
		return fmt.Errorf("key space must hold at least 1 key, got %d", c.KeySpace)
	case c.Mode.Sharded() && c.KeySpace < 2:
		return fmt.Errorf("transactions write two keys: key space must hold at least 2, got %d", c.KeySpace)
	case c.Timeout <= 0:
		return fmt.Errorf("op timeout must be positive, got %v", c.Timeout)
	}
	_, err := ParseMode(string(c.Mode))
	return err
}

// Progress is a snapshot of a run in progress.
type Progress struct {
	Elapsed time.Duration
	Ops     int64   // completed ops, ok or not
	Errors  int64   // ops that did not succeed
	Rate    float64 // ok ops per second since the last snapshot
}

// Latency summarizes the latencies of successful ops.
type Latency struct {
	P50, P90, P99, Max, Mean time.Duration
}

// Result is a finished run.
type Result struct {
	Mode    Mode
	Clients int
	Ops     int64  // successful ops
	Failed  int64  // ops that certainly did not take effect
	Unknown int64  // ops whose outcome is unknown
	Aborts  uint64 // aborted transaction attempts (retried)
	Elapsed time.Duration
	// Throughput is successful ops per second.
	Throughput float64
	Latency    Latency
	// FirstError is the first error an op met, if any.
	FirstError string
}

// session runs ops of one mode for one worker.
type session interface {
	do(ctx context.Context, rng *rand.Rand) error
	aborts() uint64
	close()
}

// Run runs cfg against the cluster described by file and returns the
// measurements. ctx ends the run early (the ops done by then count).
func Run(ctx context.Context, file *config.Cluster, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Group == 0 {
		cfg.Group = 1
	}
	value := strings.Repeat("v", cfg.ValSize)
	open, err := opener(ctx, file, cfg, value)
	if err != nil {
		return Result{}, err
	}
	sessions := make([]session, cfg.Clients)
	for i := range sessions {
		s, err := open()
		if err != nil {
			for _, s := range sessions[:i] {
				s.close()
			}
			return Result{}, err
		}
		sessions[i] = s
	}
	defer func() {
		for _, s := range sessions {
			s.close()
		}
	}()
	if cfg.Mode == Get {
		if err := preload(ctx, file, cfg, value); err != nil {
			return Result{}, err
		}
	}
	return measure(ctx, cfg, sessions), nil
}

// measure runs the sessions until the op budget or the duration is spent.
func measure(ctx context.Context, cfg Config, sessions []session) Result {
	var (
		next, done, errs atomic.Int64
		failed, unknown  atomic.Int64
		firstMu          sync.Mutex
		first            error
	)
	lat := make([][]time.Duration, len(sessions))
	start := time.Now()
	// The run's end is checked against the clock, not only through a
	// context: an op's context derived from a run context with the same
	// deadline can expire a moment before its parent does, and would make
	// the end of the run look like failed ops.
	end := start.Add(cfg.Duration)
	over := func() bool { return ctx.Err() != nil || cfg.Duration > 0 && !time.Now().Before(end) }
	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	stopProgress := progress(cfg, start, &done, &errs)
	var wg sync.WaitGroup
	for i, s := range sessions {
		rng := rand.New(rand.NewPCG(uint64(i)+1, uint64(start.UnixNano())))
		wg.Go(func() {
			for !over() {
				if cfg.Total > 0 && next.Add(1) > int64(cfg.Total) {
					return
				}
				octx, cancel := context.WithTimeout(runCtx, cfg.Timeout)
				t := time.Now()
				err := s.do(octx, rng)
				d := time.Since(t)
				cancel()
				if err != nil && over() {
					// Cut off by the end of the run, not by the cluster.
					return
				}
				done.Add(1)
				if err != nil {
					errs.Add(1)
					if errors.Is(err, client.ErrFailed) {
						failed.Add(1)
					} else {
						unknown.Add(1)
					}
					firstMu.Lock()
					if first == nil {
						first = err
					}
					firstMu.Unlock()
					continue
				}
				lat[i] = append(lat[i], d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := Result{Mode: cfg.Mode, Clients: cfg.Clients, Ops: int64(len(all)), Failed: failed.Load(), Unknown: unknown.Load(), Elapsed: elapsed}
	for _, s := range sessions {
		r.Aborts += s.aborts()
	}
	if elapsed > 0 {
		r.Throughput = float64(len(all)) / elapsed.Seconds()
	}
	r.Latency = summarize(all)
	if first != nil {
		r.FirstError = first.Error()
	}
	return r
}

// progress calls cfg.Progress every cfg.ProgressEvery until the returned
// function is called.
func progress(cfg Config, start time.Time, done, errs *atomic.Int64) (stop func()) {
	if cfg.Progress == nil || cfg.ProgressEvery <= 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(cfg.ProgressEvery)
		defer t.Stop()
		lastOK, lastAt := int64(0), start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				d, e := done.Load(), errs.Load()
				ok := d - e
				rate := float64(ok-lastOK) / now.Sub(lastAt).Seconds()
				lastOK, lastAt = ok, now
				cfg.Progress(Progress{Elapsed: now.Sub(start), Ops: d, Errors: e, Rate: rate})
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// summarize returns the percentiles of lat (which it sorts).
func summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	at := func(q float64) time.Duration {
		i := int(q*float64(len(lat))+0.5) - 1
		return lat[min(max(i, 0), len(lat)-1)]
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: lat[len(lat)-1], Mean: sum / time.Duration(len(lat))}
}

func key(i int) string { return "k" + strconv.Itoa(i) }

// opener returns a function that opens one worker's session.
func opener(ctx context.Context, file *config.Cluster, cfg Config, value string) (func() (session, error), error) {
	if !cfg.Mode.Sharded() {
		ccfg, err := client.FromCluster(file, cfg.Group)
		if err != nil {
			return nil, err
		}
		return func() (session, error) {
			c, err := client.New(ccfg)
			if err != nil {
				return nil, err
			}
			return &kvSession{c: c, mode: cfg.Mode, keys: cfg.KeySpace, value: value}, nil
		}, nil
	}
	if file.ShardController == 0 {
		return nil, errors.New("transaction modes need a sharded cluster (a cluster file with shard_controller)")
	}
	owned, err := keysByOwner(ctx, file, cfg)
	if err != nil {
		return nil, err
	}
	return func() (session, error) {
		c, err := client.NewSharded(client.ShardedConfig{Cluster: file, Controller: file.ShardController})
		if err != nil {
			return nil, err
		}
		return &txnSession{c: c, cross: cfg.Mode == TxnCross, owned: owned, value: value}, nil
	}, nil
}

// keysByOwner groups the key space by the shard group that owns each key
// under the controller's latest configuration.
func keysByOwner(ctx context.Context, file *config.Cluster, cfg Config) ([][]string, error) {
	admin, err := client.NewSharded(client.ShardedConfig{Cluster: file, Controller: file.ShardController})
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	qctx, cancel := context.WithTimeout(ctx, 10*cfg.Timeout)
	defer cancel()
	sc, err := admin.Admin(qctx, shardctl.Op{Kind: shardctl.Query, Num: -1})
	if err != nil {
		return nil, fmt.Errorf("read the shard configuration: %w", err)
	}
	by := map[replica.GroupID][]string{}
	for i := range cfg.KeySpace {
		k := key(i)
		if g := sc.Shards[shardctl.ShardOf(k)]; g != 0 {
			by[g] = append(by[g], k)
		}
	}
	var owned [][]string
	for _, g := range slices.Sorted(func(yield func(replica.GroupID) bool) {
		for g := range by {
			if !yield(g) {
				return
			}
		}
	}) {
		if len(by[g]) >= 2 {
			owned = append(owned, by[g])
		}
	}
	switch {
	case len(owned) == 0:
		return nil, fmt.Errorf("no shard group owns two keys of the %d-key space (configuration %d)", cfg.KeySpace, sc.Num)
	case cfg.Mode == TxnCross && len(owned) < 2:
		return nil, fmt.Errorf("cross-group transactions need two shard groups owning keys; configuration %d has %d", sc.Num, len(owned))
	}
	return owned, nil
}

type kvSession struct {
	c     *client.Client
	mode  Mode
	keys  int
	value string
}

func (s *kvSession) do(ctx context.Context, rng *rand.Rand) error {
	k := key(rng.IntN(s.keys))
	if s.mode == Get {
		_, err := s.c.Get(ctx, k)
		return err
	}
	return s.c.Put(ctx, k, s.value)
}

func (s *kvSession) aborts() uint64 { return 0 }
func (s *kvSession) close()         { s.c.Close() }

type txnSession struct {
	c     *client.Sharded
	cross bool
	owned [][]string // keys of each shard group
	value string
	ops   [2]txn.MicroOp
}

func (s *txnSession) do(ctx context.Context, rng *rand.Rand) error {
	g1 := rng.IntN(len(s.owned))
	g2 := g1
	if s.cross {
		g2 = (g1 + 1 + rng.IntN(len(s.owned)-1)) % len(s.owned)
	}
	k1 := s.owned[g1][rng.IntN(len(s.owned[g1]))]
	k2 := s.owned[g2][rng.IntN(len(s.owned[g2]))]
	for k2 == k1 {
		k2 = s.owned[g2][rng.IntN(len(s.owned[g2]))]
	}
	s.ops[0] = txn.MicroOp{F: txn.Write, Key: k1, Value: s.value}
	s.ops[1] = txn.MicroOp{F: txn.Write, Key: k2, Value: s.value}
	_, err := s.c.Txn(ctx, s.ops[:])
	return err
}

func (s *txnSession) aborts() uint64 { return s.c.Aborts() }
func (s *txnSession) close()         { s.c.Close() }

// preload writes every key of the key space once, so that gets find
// values of the configured size.
func preload(ctx context.Context, file *config.Cluster, cfg Config, value string) error {
	ccfg, err := client.FromCluster(file, cfg.Group)
	if err != nil {
		return err
	}
	workers := min(cfg.Clients, 64, cfg.KeySpace)
	var next atomic.Int64
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			c, err := client.New(ccfg)
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			for i := next.Add(1) - 1; i < int64(cfg.KeySpace); i = next.Add(1) - 1 {
				octx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				err := c.Put(octx, key(int(i)), value)
				cancel()
				if err != nil {
					errc <- fmt.Errorf("preload %s: %w", key(int(i)), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}
