package main

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/kvnode/sim"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "sim",
		Usage: "run kvnode's protocol cores in the deterministic simulator and check the histories",
		Description: "Runs seeds 1..N (or one --seed) of a simulated test on virtual time: clients running\n" +
			"chaos run's workload (the register on a replica group, the transactional workloads on a\n" +
			"sharded cluster), the nemesis injecting faults, then the workload's final reads and its\n" +
			"checker, as chaos run has them. A run is a pure function of its flags and seed; every failing\n" +
			"seed is printed with the command that replays it, and stored in the run store with its\n" +
			"report, as chaos run stores its runs. Exits 0 valid, 1 invalid (or not deterministic\n" +
			"under --check-determinism), 2 unknown, 254 bad arguments, 255 simulation error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workload", Value: "register", Usage: strings.Join(workloads.Names(), ", ") + " (as chaos run has them; the register runs on one replica group, the transactional workloads on a sharded cluster)"},
			&cli.StringFlag{Name: "nemesis", Value: "all", Usage: nemesisUsage(nemesis.Sim) + "; with a transactional workload, all includes reconfig"},
			&cli.DurationFlag{Name: "nemesis-interval", Value: sim.DefaultNemesisInterval, Usage: "mean time between faults and mean fault duration, per class of faults (half the faults flap: much shorter)"},
			&cli.DurationFlag{Name: "clock-skew", Value: nemesis.DefaultClockSkew, Usage: "clock-bump and clock-strobe step a node's clock by up to this much"},
			&cli.DurationFlag{Name: "strobe-period", Value: nemesis.DefaultStrobePeriod, Usage: "clock-strobe flips the clock this often"},
			&cli.IntFlag{Name: "seeds", Value: 500, Usage: "run seeds 1..N"},
			&cli.Int64Flag{Name: "seed", Usage: "run this one seed (overrides --seeds)"},
			&cli.StringFlag{Name: "history", Usage: "write the history of --seed to this file as JSON lines"},
			&cli.IntFlag{Name: "ops", Value: 1000, Usage: "client operations per seed (final reads not counted)"},
			&cli.IntFlag{Name: "replicas", Value: 5, Usage: "replicas in the group"},
			&cli.StringFlag{Name: "replication", Value: "paxos", Usage: "replication protocol: " + strings.Join(sim.Protocols(), ", ")},
			&cli.IntFlag{Name: "clients", Value: 10, Usage: "concurrent clients"},
			&cli.IntFlag{Name: "keys", Value: 5, Usage: "keys in use at once (bank: accounts, at least 2)"},
			&cli.IntFlag{Name: "reads", Value: 4, Usage: "register workload: reads in every ten ops (the rest are half writes, half cas)"},
			&cli.IntFlag{Name: "snapshot-every", Value: 500, Usage: "replicas snapshot and truncate their logs every so many entries"},
			&cli.DurationFlag{Name: "check-timeout", Value: 30 * time.Second, Usage: "give up a seed's linearizability check after this long (verdict unknown)"},
			&cli.IntFlag{Name: "workers", Value: runtime.GOMAXPROCS(0), Usage: "seeds simulated in parallel"},
			&cli.IntFlag{Name: "max-faults", Usage: "end the fault schedule after this many faults (0: no limit)"},
			&cli.DurationFlag{Name: "fault-cap", Usage: "cut every fault short at this length (0: no cap)"},
			&cli.StringFlag{Name: "store", Value: "store", Usage: "the run store's directory: every failing seed's run is stored there as chaos run stores its runs"},
			&cli.StringFlag{Name: "name", Usage: "test name in the store (default: sim-<workload>-<nemesis>)"},
			&cli.StringFlag{Name: "shard", Usage: "run only part I of N of the seeds, as I/N: seed s belongs to part (s-1) mod N + 1"},
			&cli.BoolFlag{Name: "check-determinism", Usage: "run every seed twice and report the first step where the two runs differ"},
			&cli.BoolFlag{Name: "shrink", Usage: "search for a smaller run that fails as the first failing seed does; print its replay command and store its run"},
			&cli.IntFlag{Name: "shrink-runs", Value: 200, Usage: "simulations --shrink may run"},
		},
		Action: simAction,
	})
}

// replayCommand is the command line that reruns cfg exactly: every flag
// that shapes a run, so that a shrunk run, whose flags differ from the
// sweep's, replays too. nemesis is the list as the user wrote it ("all"
// stays "all").
func replayCommand(cfg sim.Config, nemesisList string) string {
	s := fmt.Sprintf("chaos sim --workload %s --nemesis %s --replicas %d --replication %s --clients %d --keys %d --ops %d --snapshot-every %d",
		cfg.Workload, nemesisList, cfg.Replicas, cfg.Protocol, cfg.Clients, cfg.Keys, cfg.Ops, cfg.SnapshotEvery)
	if cfg.Reads != 0 && cfg.Reads != 4 {
		s += fmt.Sprintf(" --reads %d", cfg.Reads)
	}
	if sk, st := cfg.Schedule.ClockSkew, cfg.Schedule.StrobePeriod; sk != 0 && sk != nemesis.DefaultClockSkew || st != 0 && st != nemesis.DefaultStrobePeriod {
		s += fmt.Sprintf(" --clock-skew %v --strobe-period %v", cmp.Or(sk, nemesis.DefaultClockSkew), cmp.Or(st, nemesis.DefaultStrobePeriod))
	}
	if iv := cfg.Schedule.Interval; iv != 0 && iv != sim.DefaultNemesisInterval {
		s += fmt.Sprintf(" --nemesis-interval %v", iv)
	}
	if cfg.Schedule.MaxFaults > 0 {
		s += fmt.Sprintf(" --max-faults %d", cfg.Schedule.MaxFaults)
	}
	if cfg.Schedule.FaultCap > 0 {
		s += fmt.Sprintf(" --fault-cap %v", cfg.Schedule.FaultCap)
	}
	return s + fmt.Sprintf(" --seed %d", cfg.Seed)
}

// parseShard parses --shard's I/N.
func parseShard(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("%q is not I/N, such as 2/8", s)
	}
	if n < 1 || i < 1 || i > n {
		return 0, 0, fmt.Errorf("%q: want 1 <= I <= N", s)
	}
	return i, n, nil
}

// shard returns part i (1-based) of n of seeds. The parts interleave
// (seeds[i-1], seeds[i-1+n], ...) rather than cut the range in blocks, so
// every part gets as many of the early and the late seeds and a part's
// seeds do not depend on where the range ends.
func shard(seeds []int64, i, n int) []int64 {
	var out []int64
	for k := i - 1; k < len(seeds); k += n {
		out = append(out, seeds[k])
	}
	return out
}

type seedResult struct {
	seed       int64
	res        *sim.Result
	div        *sim.Divergence // --check-determinism found the runs differ
	err        error
	start, end time.Time
}

func simAction(c *cli.Context) error {
	if c.Args().Present() {
		return badArgs("sim takes no arguments (got %q)", c.Args().Slice())
	}
	nem, err := nemesis.ParseFor(c.String("nemesis"), nemesis.Sim)
	if err != nil {
		return badArgs("--nemesis: %v", err)
	}
	if c.Duration("nemesis-interval") < time.Millisecond {
		return badArgs("--nemesis-interval must be at least 1ms (got %v)", c.Duration("nemesis-interval"))
	}
	if _, err := sim.Lookup(c.String("replication")); err != nil {
		return badArgs("--replication: %v", err)
	}
	// The simulator runs the harness's workloads, so the harness says
	// which exist and what tuning each takes.
	if _, err := workloads.NewTuned(c.String("workload"), workloads.Tuning{Keys: c.Int("keys")}); err != nil {
		return badArgs("--workload: %v", err)
	}
	if c.IsSet("reads") && c.String("workload") != "register" {
		return badArgs("--reads tunes the register workload, not %s", c.String("workload"))
	}
	nem = simAll(c.String("nemesis"), c.String("workload"), nem)
	if err := sim.CheckNemesis(c.String("workload"), nem); err != nil {
		return badArgs("--nemesis: %v", err)
	}
	for _, f := range []string{"ops", "replicas", "clients", "keys", "workers", "snapshot-every", "shrink-runs"} {
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
	if c.Int("max-faults") < 0 || c.Duration("fault-cap") < 0 {
		return badArgs("--max-faults and --fault-cap must not be negative (got %d, %v)", c.Int("max-faults"), c.Duration("fault-cap"))
	}
	store := c.String("store")
	if store == "" {
		return badArgs("--store: empty directory name")
	}
	// A failing seed is stored when it is found, perhaps hours into a
	// sweep: refuse an unusable store now.
	if err := probeStore(store); err != nil {
		return badArgs("--store: %v", err)
	}
	name := c.String("name")
	if name == "" {
		name = "sim-" + c.String("workload") + "-" + strings.Join(strings.Fields(strings.ReplaceAll(c.String("nemesis"), ",", " ")), "-")
	}
	if err := results.ValidateName(name); err != nil {
		return badArgs("--name: %v", err)
	}
	var seeds []int64
	if c.IsSet("seed") {
		if c.IsSet("shard") {
			return badArgs("--shard splits the range of --seeds; --seed runs one seed")
		}
		seeds = []int64{c.Int64("seed")}
	} else {
		if c.Int("seeds") < 1 {
			return badArgs("--seeds must be at least 1 (got %d)", c.Int("seeds"))
		}
		for s := 1; s <= c.Int("seeds"); s++ {
			seeds = append(seeds, int64(s))
		}
	}
	if c.IsSet("shard") {
		i, n, err := parseShard(c.String("shard"))
		if err != nil {
			return badArgs("--shard: %v", err)
		}
		seeds = shard(seeds, i, n)
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
		Schedule: sim.NemesisSchedule{Interval: c.Duration("nemesis-interval"), Flap: sim.DefaultFlap,
			ClockSkew: c.Duration("clock-skew"), StrobePeriod: c.Duration("strobe-period"),
			MaxFaults: c.Int("max-faults"), FaultCap: c.Duration("fault-cap")},
		CheckTimeout: c.Duration("check-timeout"), SnapshotEvery: uint64(c.Int("snapshot-every")), CheckDir: checkDir,
	}
	sv := &simStore{root: store, name: name, checkTimeout: c.Duration("check-timeout")}
	out := c.App.Writer
	start := time.Now()
	var valid, invalid, unknown, broken, nondet int
	var ops, ok, fail, info int
	var firstFailing *seedResult
	prog := newProgress(c.App.ErrWriter, len(seeds), start)
	simulate := func(cfg sim.Config) (*sim.Result, *sim.Divergence, error) {
		if c.Bool("check-determinism") {
			return sim.CheckDeterminism(cfg, divergenceLines)
		}
		res, err := sim.Run(cfg)
		return res, nil, err
	}
	// Failing seeds are printed as soon as every earlier seed is done, so
	// the output is in seed order and does not wait for the whole run.
	done := runSeeds(base, seeds, c.Int("workers"), prog, simulate, func(r seedResult) {
		cfg := base
		cfg.Seed = r.seed
		replay := replayCommand(cfg, c.String("nemesis"))
		if r.div != nil {
			nondet++
			prog.println(out, fmt.Sprintf("%s\n  replay: %s --check-determinism", r.div, replay))
		}
		if r.err != nil {
			broken++
			prog.println(out, fmt.Sprintf("seed %d: simulation error: %v; replay: %s", r.seed, r.err, replay))
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
		if firstFailing == nil {
			firstFailing = &r
		}
		line := fmt.Sprintf("seed %d: %s %v: %s; replay: %s --history seed-%d.jsonl", r.seed, verdictWord(r.res.Valid), r.res.Failure(), failureWhy(r.res), replay, r.seed)
		dir, err := sv.save(cfg, r.res, replay, r.start, r.end)
		if err != nil {
			broken++
			line += fmt.Sprintf("; not stored: %v", err)
		} else {
			line += "; report: " + filepath.Join(dir, results.ReportFile)
		}
		prog.println(out, line)
	})
	wall := time.Since(start)
	if len(seeds) == 1 && broken == 0 && done[0].res != nil {
		r := done[0].res
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
	detNote := ""
	if c.Bool("check-determinism") {
		detNote = fmt.Sprintf(", not deterministic %d", nondet)
	}
	fmt.Fprintf(out, "seeds: %d (valid %d, invalid %d, unknown %d, errors %d%s); ops: %d (ok %d, fail %d, info %d); wall %v; %.0f simulated ops/s\n",
		len(seeds), valid, invalid, unknown, broken, detNote, ops, ok, fail, info, wall.Round(time.Millisecond), float64(ops)/wall.Seconds())
	if c.Bool("shrink") {
		if firstFailing == nil {
			fmt.Fprintln(out, "shrink: no seed failed, nothing to shrink")
		} else if err := shrinkSeed(out, sv, base, firstFailing.seed, c.Int("shrink-runs")); err != nil {
			fmt.Fprintf(out, "shrink seed %d: %v\n", firstFailing.seed, err)
			broken++
		}
	}
	switch {
	case broken > 0:
		return cli.Exit("", exitInternal)
	case invalid > 0 || nondet > 0:
		return cli.Exit("", exitInvalid)
	case unknown > 0:
		return cli.Exit("", exitUnknown)
	}
	return nil
}

// divergenceLines is how many steps of each run --check-determinism shows
// from the first difference on.
const divergenceLines = 8

// failureWhy says in a line why a run failed.
func failureWhy(res *sim.Result) string {
	why := res.Check.Summary
	if len(res.Problems) > 0 {
		why = strings.Join(res.Problems, "; ") + "; " + why
	}
	return why
}

// shrinkSeed shrinks a failing seed, prints how much smaller the run got
// with the command that replays it, and stores the shrunk run.
func shrinkSeed(out io.Writer, sv *simStore, base sim.Config, seed int64, maxRuns int) error {
	cfg := base
	cfg.Seed = seed
	fmt.Fprintf(out, "shrinking seed %d (at most %d runs)\n", seed, maxRuns)
	start := time.Now()
	s, err := sim.Shrink(cfg, sim.ShrinkOptions{MaxRuns: maxRuns, Tried: func(cfg sim.Config, res *sim.Result, kept bool) {
		var failure []string
		if res != nil {
			failure = res.Failure()
		}
		slog.Debug("shrink candidate", "ops", cfg.Ops, "clients", cfg.Clients, "nemesis", cfg.Nemesis, "max-faults", cfg.Schedule.MaxFaults, "fault-cap", cfg.Schedule.FaultCap, "failure", failure, "kept", kept)
	}})
	if err != nil {
		return err
	}
	end := time.Now()
	o, n := s.Original, s.Config
	replay := replayCommand(n, nemesis.FormatFor(n.Nemesis, nemesis.Sim))
	fmt.Fprintf(out, "shrunk seed %d (%s) in %d runs, %v: ops %d -> %d (%.1f%%; invoked %d -> %d), clients %d -> %d, faults %d -> %d, fault kinds %d -> %d, simulated %v -> %v\n",
		seed, s.Failure, s.Runs, end.Sub(start).Round(time.Millisecond), o.Ops, n.Ops, 100*float64(n.Ops)/float64(o.Ops), s.First.Ops, s.Result.Ops, o.Clients, n.Clients,
		s.First.Faults, s.Result.Faults, len(o.Nemesis), len(n.Nemesis), s.First.Virtual.Round(time.Millisecond), s.Result.Virtual.Round(time.Millisecond))
	line := "shrunk replay: " + replay
	dir, err := sv.save(n, s.Result, replay, start, end)
	if err != nil {
		return fmt.Errorf("store the shrunk run: %w", err)
	}
	fmt.Fprintf(out, "%s; report: %s\n", line, filepath.Join(dir, results.ReportFile))
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
func runSeeds(base sim.Config, seeds []int64, workers int, prog *progress, simulate func(sim.Config) (*sim.Result, *sim.Divergence, error), emit func(seedResult)) []seedResult {
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
				start := time.Now()
				res, div, err := simulate(cfg)
				end := time.Now()
				mu.Lock()
				results[i] = seedResult{seed: seeds[i], res: res, div: div, err: err, start: start, end: end}
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

// simAll returns kinds, what --nemesis list parsed to, with reconfig added
// when list uses "all" and workload is transactional: the simulator runs
// such a workload on a sharded cluster, which is the setup reconfig
// needs, and shard migration (hand-offs, session tables moving with their
// shards) is reached by no other fault.
func simAll(list, workload string, kinds []nemesis.Kind) []nemesis.Kind {
	all := false
	for _, part := range strings.Split(list, ",") {
		all = all || strings.TrimSpace(part) == "all"
	}
	if !all || !workloads.IsTransactional(workload) || slices.Contains(kinds, nemesis.Reconfig) {
		return kinds
	}
	return append(kinds, nemesis.Reconfig)
}
