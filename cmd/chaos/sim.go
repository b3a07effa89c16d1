package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/kvnode/sim"
	"github.com/chaoskv/chaos/nemesis"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "sim",
		Usage: "run kvnode's protocol cores in the deterministic simulator and check the histories",
		Description: "Runs seeds 1..N (or one --seed) of a simulated test: a replica group on virtual time,\n" +
			"clients running the workload, the nemesis injecting faults, then final reads and a\n" +
			"linearizability check. A run is a pure function of its flags and seed; every failing\n" +
			"seed is printed with the command that replays it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workload", Value: sim.WorkloadRegister, Usage: "register, append, or list-append / rw-register / bank (transactions on a sharded cluster)"},
			&cli.StringFlag{Name: "nemesis", Value: "all", Usage: "comma-separated faults: all, " + strings.Join(sim.NemesisKinds, ", ")},
			&cli.DurationFlag{Name: "clock-skew", Value: nemesis.DefaultClockSkew, Usage: "clock-bump and clock-strobe step a node's clock by up to this much"},
			&cli.DurationFlag{Name: "strobe-period", Value: nemesis.DefaultStrobePeriod, Usage: "clock-strobe flips the clock this often"},
			&cli.IntFlag{Name: "seeds", Value: 500, Usage: "run seeds 1..N"},
			&cli.Int64Flag{Name: "seed", Usage: "run this one seed (overrides --seeds)"},
			&cli.StringFlag{Name: "history", Usage: "write the history of --seed to this file as JSON lines"},
			&cli.IntFlag{Name: "ops", Value: 1000, Usage: "client operations per seed (final reads not counted)"},
			&cli.IntFlag{Name: "replicas", Value: 5, Usage: "replicas in the group"},
			&cli.StringFlag{Name: "replication", Value: "paxos", Usage: "replication protocol: " + strings.Join(sim.Protocols(), ", ")},
			&cli.IntFlag{Name: "clients", Value: 10, Usage: "concurrent clients"},
			&cli.IntFlag{Name: "keys", Value: 5, Usage: "independent keys"},
			&cli.IntFlag{Name: "reads", Value: 4, Usage: "register workload: reads in every ten ops (the rest are half writes, half cas)"},
			&cli.IntFlag{Name: "snapshot-every", Value: 500, Usage: "replicas snapshot and truncate their logs every so many entries"},
			&cli.DurationFlag{Name: "check-timeout", Value: 30 * time.Second, Usage: "give up a seed's linearizability check after this long (verdict unknown)"},
			&cli.IntFlag{Name: "workers", Value: runtime.GOMAXPROCS(0), Usage: "seeds simulated in parallel"},
		},
		Action: simAction,
	})
}

// simArgs is the replay-relevant part of the command line, in the form the
// replay command repeats it.
func simArgs(c *cli.Context) string {
	s := fmt.Sprintf("chaos sim --workload %s --nemesis %s --replicas %d --replication %s --clients %d --keys %d --ops %d --snapshot-every %d",
		c.String("workload"), c.String("nemesis"), c.Int("replicas"), c.String("replication"), c.Int("clients"), c.Int("keys"), c.Int("ops"), c.Int("snapshot-every"))
	if c.IsSet("reads") {
		s += fmt.Sprintf(" --reads %d", c.Int("reads"))
	}
	if c.IsSet("clock-skew") || c.IsSet("strobe-period") {
		s += fmt.Sprintf(" --clock-skew %v --strobe-period %v", c.Duration("clock-skew"), c.Duration("strobe-period"))
	}
	return s
}

type seedResult struct {
	seed int64
	res  *sim.Result
	err  error
}

func simAction(c *cli.Context) error {
	if c.Args().Present() {
		return badArgs("sim takes no arguments (got %q)", c.Args().Slice())
	}
	nem, err := sim.ParseNemesis(c.String("nemesis"))
	if err != nil {
		return badArgs("--nemesis: %v", err)
	}
	if _, err := sim.Lookup(c.String("replication")); err != nil {
		return badArgs("--replication: %v", err)
	}
	switch w := c.String("workload"); w {
	case sim.WorkloadRegister, sim.WorkloadAppend, sim.WorkloadListAppend, sim.WorkloadRWRegister, sim.WorkloadBank:
	default:
		return badArgs("--workload: unknown workload %q (want %s, %s, %s, %s or %s)", w, sim.WorkloadRegister, sim.WorkloadAppend, sim.WorkloadListAppend, sim.WorkloadRWRegister, sim.WorkloadBank)
	}
	for _, f := range []string{"ops", "replicas", "clients", "keys", "workers", "snapshot-every"} {
		if c.Int(f) < 1 {
			return badArgs("--%s must be at least 1 (got %d)", f, c.Int(f))
		}
	}
	if r := c.Int("reads"); r < 1 || r > 10 {
		return badArgs("--reads must be within 1..10 (got %d)", r)
	}
	if c.Int("replicas") > 64 {
		return badArgs("--replicas must be at most 64 (got %d)", c.Int("replicas"))
	}
	if skew, strobe := c.Duration("clock-skew"), c.Duration("strobe-period"); skew < time.Millisecond || skew > 24*time.Hour || strobe < time.Millisecond {
		return badArgs("--clock-skew must be within 1ms..24h and --strobe-period at least 1ms (got %v, %v)", skew, strobe)
	}
	if c.Duration("check-timeout") <= 0 {
		return badArgs("--check-timeout must be positive")
	}
	var seeds []int64
	if c.IsSet("seed") {
		seeds = []int64{c.Int64("seed")}
	} else {
		if c.Int("seeds") < 1 {
			return badArgs("--seeds must be at least 1 (got %d)", c.Int("seeds"))
		}
		for s := 1; s <= c.Int("seeds"); s++ {
			seeds = append(seeds, int64(s))
		}
	}
	if c.IsSet("history") && len(seeds) != 1 {
		return badArgs("--history needs --seed (it writes one seed's history)")
	}
	checkDir := ""
	if path := c.String("history"); path != "" {
		// Refuse an unusable path before simulating, not after.
		if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
			return badArgs("--history %s: directory %s does not exist", path, filepath.Dir(path))
		}
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			return badArgs("--history %s is a directory", path)
		}
		// A failing seed's visualization goes next to its history.
		checkDir = filepath.Dir(path)
	}
	base := sim.Config{
		Protocol: c.String("replication"), Replicas: c.Int("replicas"), Workload: c.String("workload"),
		Nemesis: nem, Ops: c.Int("ops"), Clients: c.Int("clients"), Keys: c.Int("keys"), Reads: c.Int("reads"),
		Schedule:     sim.NemesisSchedule{ClockSkew: c.Duration("clock-skew"), StrobePeriod: c.Duration("strobe-period")},
		CheckTimeout: c.Duration("check-timeout"), SnapshotEvery: uint64(c.Int("snapshot-every")), CheckDir: checkDir,
	}
	out := c.App.Writer
	start := time.Now()
	var valid, invalid, unknown, broken int
	var ops, ok, fail, info int
	args := simArgs(c)
	prog := newProgress(c.App.ErrWriter, len(seeds), start)
	// Failing seeds are printed as soon as every earlier seed is done, so
	// the output is in seed order and does not wait for the whole run.
	results := runSeeds(base, seeds, c.Int("workers"), prog, func(r seedResult) {
		if r.err != nil {
			broken++
			prog.println(out, fmt.Sprintf("seed %d: simulation error: %v; replay: %s --seed %d", r.seed, r.err, args, r.seed))
			return
		}
		ops, ok, fail, info = ops+r.res.Ops, ok+r.res.Ok, fail+r.res.Fail, info+r.res.Info
		switch r.res.Valid {
		case checker.Valid:
			valid++
			return
		case checker.Invalid:
			invalid++
		default:
			unknown++
		}
		why := r.res.Check.Summary
		if len(r.res.Problems) > 0 {
			why = strings.Join(r.res.Problems, "; ") + "; " + why
		}
		prog.println(out, fmt.Sprintf("seed %d: %s: %s; replay: %s --seed %d --history seed-%d.jsonl",
			r.seed, verdictWord(r.res.Valid), why, args, r.seed, r.seed))
	})
	wall := time.Since(start)
	if len(seeds) == 1 && broken == 0 {
		r := results[0].res
		fmt.Fprintf(out, "seed %d: %s (%v simulated, %d protocol messages)\n", r.Seed, r.Check.Summary, r.Virtual.Round(time.Millisecond), r.Net.Sent)
		if path := c.String("history"); path != "" {
			if err := os.WriteFile(path, r.HistoryJSONL(), 0o644); err != nil {
				return internal(fmt.Errorf("write history: %w", err))
			}
			fmt.Fprintf(out, "history written to %s\n", path)
			for _, f := range r.Check.Files {
				fmt.Fprintf(out, "visualization written to %s\n", filepath.Join(checkDir, f))
			}
		}
	}
	fmt.Fprintf(out, "seeds: %d (valid %d, invalid %d, unknown %d, errors %d); ops: %d (ok %d, fail %d, info %d); wall %v; %.0f simulated ops/s\n",
		len(seeds), valid, invalid, unknown, broken, ops, ok, fail, info, wall.Round(time.Millisecond), float64(ops)/wall.Seconds())
	switch {
	case broken > 0:
		return cli.Exit("", exitInternal)
	case invalid > 0:
		return cli.Exit("", exitInvalid)
	case unknown > 0:
		return cli.Exit("", exitUnknown)
	}
	return nil
}

func verdictWord(v checker.Validity) string {
	switch v {
	case checker.Invalid:
		return "INVALID"
	case checker.Valid:
		return "valid"
	}
	return "UNKNOWN"
}

// runSeeds simulates the seeds on a pool of workers. emit sees each result
// in seed order, whatever order they finish in, on one goroutine at a time.
func runSeeds(base sim.Config, seeds []int64, workers int, prog *progress, emit func(seedResult)) []seedResult {
	results := make([]seedResult, len(seeds))
	finished := make([]bool, len(seeds))
	next := 0
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(seeds)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				cfg := base
				cfg.Seed = seeds[i]
				res, err := sim.Run(cfg)
				mu.Lock()
				results[i] = seedResult{seed: seeds[i], res: res, err: err}
				finished[i] = true
				for next < len(seeds) && finished[next] {
					emit(results[next])
					next++
				}
				prog.done(res, err)
				mu.Unlock()
			}
		}()
	}
	for i := range seeds {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	prog.finish()
	return results
}

// progress reports how far a run is: a status line redrawn in place on a
// terminal, otherwise a log line every few seconds.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	total    int
	finished int
	bad      int
	ops      int
	start    time.Time
	last     time.Time
}

func newProgress(w io.Writer, total int, start time.Time) *progress {
	p := &progress{w: w, total: total, start: start, last: start}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) done(res *sim.Result, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finished++
	if err != nil || res.Valid != checker.Valid {
		p.bad++
	}
	if res != nil {
		p.ops += res.Ops
	}
	now := time.Now()
	el := now.Sub(p.start).Seconds()
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r\x1b[K[%d/%d seeds] %d not valid, %d ops, %.0f ops/s", p.finished, p.total, p.bad, p.ops, float64(p.ops)/el)
	case now.Sub(p.last) >= 5*time.Second:
		p.last = now
		slog.Info("sim progress", "seeds", p.finished, "of", p.total, "not-valid", p.bad, "ops", p.ops, "ops-per-sec", int(float64(p.ops)/el))
	}
}

// println writes a line to w without tearing the status line.
func (p *progress) println(w io.Writer, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintln(w, line)
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
