package main

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/docker/lazyfs"
	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "run",
		Usage: "run a test against a kvnode cluster in Docker containers",
		Description: "Starts a kvnode cluster as Docker containers, runs the workload's clients while the\n" +
			"nemesis injects faults, heals, performs final reads, checks the history and writes\n" +
			"the run to the store (store/<name>/<timestamp>/, store/latest). Exits 0 valid, 1\n" +
			"invalid, 2 unknown, 130 interrupted (SIGINT or SIGTERM), 254 bad arguments or an unusable\n" +
			"--store or --kvnode-binary (nothing is written to the store), 255 internal error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workload", Value: "register", Usage: "workload: " + strings.Join(workloads.Names(), ", ")},
			&cli.StringFlag{Name: "nemesis", Value: "partition", Usage: nemesisUsage(nemesis.Docker)},
			&cli.DurationFlag{Name: "nemesis-interval", Value: nemesis.DefaultInterval, Usage: "mean time between faults and mean fault duration"},
			&cli.IntFlag{Name: "nodes", Value: 5, Usage: "nodes in the cluster"},
			&cli.IntFlag{Name: "replicas", Value: 3, Usage: "nodes per replica group (fewer than --nodes: one group per node, placed round the ring; list-append, rw-register and bank default to one group of every node)"},
			&cli.IntFlag{Name: "spares", Usage: "extra nodes that host every replica group outside its configuration, for membership changes (default 2 with --nemesis membership, else 0)"},
			&cli.IntFlag{Name: "groups", Usage: "shard groups of --replicas nodes each, plus a shard controller group (0: no sharding)"},
			&cli.IntFlag{Name: "shards", Usage: "shards of a sharded cluster (0: kvnode's fixed count)"},
			&cli.StringFlag{Name: "consistency-models", Value: "strict-serializable", Usage: "list-append, rw-register: comma-separated consistency models the history must satisfy (Elle's names)"},
			&cli.StringFlag{Name: "replication", Value: "paxos", Usage: "replication protocol: " + strings.Join(kvnodedb.Protocols, ", ")},
			&cli.DurationFlag{Name: "time-limit", Value: 60 * time.Second, Usage: "how long the workload runs"},
			&cli.IntFlag{Name: "concurrency", Value: 10, Usage: "concurrent client processes"},
			&cli.Float64Flag{Name: "rate", Value: 100, Usage: "total invocations per second (0: as fast as the clients go)"},
			&cli.Int64Flag{Name: "seed", Usage: "seed for the generator and the nemesis (default: random, printed and recorded)"},
			&cli.StringFlag{Name: "store", Value: "store", Usage: "the run store's directory"},
			&cli.IntFlag{Name: "test-count", Value: 1, Usage: "run the test this many times (seeds seed, seed+1, ...), stopping at the first invalid run"},
			&cli.BoolFlag{Name: "leave-running", Usage: "leave the cluster running after the test (remove it with chaos clean)"},
			&cli.StringFlag{Name: "name", Usage: "test name in the store (default: <workload>-<nemesis kinds>)"},
			&cli.StringFlag{Name: "kvnode-binary", Usage: "the static kvnode executable for the node image (default: kvnode next to chaos)"},
			&cli.DurationFlag{Name: "op-timeout", Value: 5 * time.Second, Usage: "a client operation's timeout (then its outcome is unknown)"},
			&cli.DurationFlag{Name: "check-timeout", Value: 5 * time.Minute, Usage: "give up the checker after this long (verdict unknown)"},
			&cli.StringFlag{Name: "junit", Usage: "also write the runs' verdicts as JUnit XML to this file (for CI)"},
			&cli.StringFlag{Name: "kill-policy", Value: "minority", Usage: "how many nodes the kill and lose-unsynced faults may take down at once: minority, or any (the results note runs that had more than a minority down); with any, membership changes also go ahead without a healthy majority"},
			&cli.BoolFlag{Name: "tear-writes", Usage: "lose-unsynced also keeps a random prefix of each victim's newest unsynced write (a torn write)"},
			&cli.DurationFlag{Name: "clock-skew", Value: nemesis.DefaultClockSkew, Usage: "clock-bump and clock-strobe shift a node's clock by up to this much either way"},
			&cli.DurationFlag{Name: "strobe-period", Value: nemesis.DefaultStrobePeriod, Usage: "clock-strobe flips the clock this often"},
			&cli.StringSliceFlag{Name: "kvnode-arg", Usage: "an extra kvnode flag for every node (repeatable), e.g. --kvnode-arg=--fsync=once"},
		},
		Action: runAction,
	})
}

// nemesisUsage is --nemesis's help text for backend b: the same kinds and
// the same "all" rule in chaos run and chaos sim.
func nemesisUsage(b nemesis.Backend) string {
	var can, cannot []string
	for _, k := range nemesis.Kinds() {
		if b.Supported(k) == nil {
			can = append(can, string(k))
		} else {
			cannot = append(cannot, string(k))
		}
	}
	s := "comma-separated fault kinds, none, or all (" + nemesis.FormatKinds(b.All()) + "; every kind here but those needing extra setup): " + strings.Join(can, ", ")
	if len(cannot) > 0 {
		s += "; not here (see the README's fault table): " + strings.Join(cannot, ", ")
	}
	return s
}

// runSpec is a validated chaos run command line.
type runSpec struct {
	workload  workloads.Workload
	kinds     []nemesis.Kind
	killPol   nemesis.KillPolicy
	tear      bool
	skew      time.Duration
	strobe    time.Duration
	interval  time.Duration
	cluster   kvnodedb.Options
	timeLimit time.Duration
	conc      int
	rate      float64
	seed      int64
	store     string
	count     int
	leave     bool
	name      string
	opTimeout time.Duration
	checkTO   time.Duration
}

// parseRun validates every flag, naming the flag in each error.
func parseRun(c *cli.Context) (*runSpec, error) {
	if c.Args().Present() {
		return nil, badArgs("run takes no arguments (got %q)", c.Args().Slice())
	}
	s := &runSpec{
		interval:  c.Duration("nemesis-interval"),
		timeLimit: c.Duration("time-limit"),
		conc:      c.Int("concurrency"),
		rate:      c.Float64("rate"),
		store:     c.String("store"),
		count:     c.Int("test-count"),
		leave:     c.Bool("leave-running"),
		opTimeout: c.Duration("op-timeout"),
		checkTO:   c.Duration("check-timeout"),
		tear:      c.Bool("tear-writes"),
		skew:      c.Duration("clock-skew"),
		strobe:    c.Duration("strobe-period"),
	}
	w, err := newWorkload(c)
	if err != nil {
		return nil, err
	}
	s.workload = w
	if s.kinds, err = nemesis.ParseFor(c.String("nemesis"), nemesis.Docker); err != nil {
		return nil, badArgs("--nemesis: %v", err)
	}
	if s.killPol, err = nemesis.ParseKillPolicy(c.String("kill-policy")); err != nil {
		return nil, badArgs("--kill-policy: %v", err)
	}
	s.cluster = kvnodedb.Options{Nodes: c.Int("nodes"), Replicas: c.Int("replicas"), Protocol: c.String("replication"),
		Groups: c.Int("groups"), Shards: c.Int("shards"), Spares: c.Int("spares")}
	if slices.Contains(s.kinds, nemesis.Membership) {
		if err := kvnodedb.MembershipPossible(s.cluster.Protocol, s.cluster.Groups); err != nil {
			return nil, badArgs("--nemesis membership: %v", err)
		}
		if !c.IsSet("spares") {
			s.cluster.Spares = defaultSpares
		}
	}
	if workloads.IsTransactional(w.Name()) && !c.IsSet("replicas") && s.cluster.Groups == 0 {
		// Without a shard controller, a transaction can only be atomic
		// inside one replica group.
		s.cluster.Replicas = s.cluster.Nodes
	}
	if err := s.cluster.Validate(); err != nil {
		return nil, badArgs("%v", err)
	}
	s.cluster.NodeArgs = c.StringSlice("kvnode-arg")
	if slices.Contains(s.kinds, nemesis.LoseUnsynced) {
		// Every other kind runs without FUSE; only this one needs it.
		if err := fuseAvailable(); err != nil {
			return nil, badArgs("--nemesis lose-unsynced needs FUSE for its lazyfs data directories (%v); run chaos as root on a host with %s, or leave lose-unsynced out", err, lazyfs.DevFUSE)
		}
		if s.leave {
			return nil, badArgs("--leave-running: a cluster under lose-unsynced cannot be left running, since chaos itself serves its lazyfs data directories")
		}
		s.cluster.LazyFS = true
	}
	if s.tear && !slices.Contains(s.kinds, nemesis.LoseUnsynced) {
		return nil, badArgs("--tear-writes: only lose-unsynced tears writes; add it to --nemesis")
	}
	if s.skew < time.Millisecond || s.skew > 24*time.Hour || s.strobe < time.Millisecond {
		return nil, badArgs("--clock-skew must be within 1ms..24h and --strobe-period at least 1ms (got %v, %v)", s.skew, s.strobe)
	}
	if workloads.IsTransactional(w.Name()) && s.cluster.Groups == 0 && len(kvnodedb.Groups(s.cluster.Nodes, s.cluster.Replicas)) > 1 {
		return nil, badArgs("--workload %s: transactions need one replica group or a sharded cluster (--groups); "+
			"--replicas %d of --nodes %d makes %d groups placed by key hash", w.Name(), s.cluster.Replicas, s.cluster.Nodes,
			len(kvnodedb.Groups(s.cluster.Nodes, s.cluster.Replicas)))
	}
	if !workloads.IsTransactional(w.Name()) && s.cluster.Groups > 0 {
		return nil, badArgs("--groups: a sharded cluster serves transactions only; --workload %s needs --groups 0", w.Name())
	}
	if slices.Contains(s.kinds, nemesis.Reconfig) && s.cluster.Groups < 2 {
		return nil, badArgs("--nemesis: reconfig needs a sharded cluster of at least 2 shard groups (--groups), got %d", s.cluster.Groups)
	}
	for _, k := range s.kinds {
		min := 2
		if k == nemesis.PartitionMajoritiesRing || k == nemesis.PartitionBridge {
			min = 3
		}
		if k.IsPartition() && s.cluster.Nodes < min {
			return nil, badArgs("--nemesis: %s needs at least %d nodes, --nodes is %d", k, min, s.cluster.Nodes)
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"nemesis-interval", s.interval}, {"time-limit", s.timeLimit}, {"op-timeout", s.opTimeout}, {"check-timeout", s.checkTO}} {
		if d.v <= 0 {
			return nil, badArgs("--%s: must be positive (got %v)", d.flag, d.v)
		}
	}
	switch {
	case s.conc < 1 || s.conc > 10000:
		return nil, badArgs("--concurrency: %d is outside 1..10000", s.conc)
	case !(s.rate >= 0) || s.rate > 1e9:
		return nil, badArgs("--rate: %v is not a rate in 0..1e9 ops/s", s.rate)
	case s.count < 1:
		return nil, badArgs("--test-count: must be at least 1 (got %d)", s.count)
	case s.store == "":
		return nil, badArgs("--store: empty directory name")
	}
	s.name = c.String("name")
	if s.name == "" {
		parts := []string{w.Name()}
		for _, k := range s.kinds {
			parts = append(parts, string(k))
		}
		if len(s.kinds) == 0 {
			parts = append(parts, "none")
		}
		s.name = strings.Join(parts, "-")
	}
	if err := results.ValidateName(s.name); err != nil {
		return nil, badArgs("--name: %v", err)
	}
	if c.IsSet("seed") {
		s.seed = c.Int64("seed")
	} else {
		s.seed = time.Now().UnixNano() & (1<<53 - 1)
	}
	bin := c.String("kvnode-binary")
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, badArgs("--kvnode-binary: not given, and chaos cannot find its own directory: %v", err)
		}
		bin = filepath.Join(filepath.Dir(exe), "kvnode")
	}
	if err := checkExecutable(bin); err != nil {
		return nil, badArgs("--kvnode-binary: %v (build kvnode with `make build`, or name it with --kvnode-binary)", err)
	}
	s.cluster.Binary = bin
	if err := probeStore(s.store); err != nil {
		return nil, badArgs("--store: %v", err)
	}
	return s, nil
}

// checkExecutable refuses a kvnode binary that cannot be the node image's
// entry point: it must be a regular, executable ELF program file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("no kvnode executable at %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is an ELF %s, not an executable", path, f.Type)
	}
	return nil
}

// probeStore makes sure directories can be created under root (a run
// store, a report's directory) without leaving anything behind: it creates and removes a scratch directory in root,
// or in root's nearest existing ancestor when root does not exist yet.
func probeStore(root string) error {
	dir := filepath.Clean(root)
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", dir, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("%s: %w", root, err)
		}
		dir = parent
	}
	probe, err := os.MkdirTemp(dir, ".chaos-probe-")
	if err != nil {
		return fmt.Errorf("cannot create directories under %s: %w", dir, err)
	}
	if err := os.Remove(probe); err != nil {
		return fmt.Errorf("cannot clean up the probe %s: %w", probe, err)
	}
	return nil
}

// newWorkload builds the --workload with the flags that tune it.
func newWorkload(c *cli.Context) (workloads.Workload, error) {
	name := c.String("workload")
	models, err := parseModels(c.String("consistency-models"))
	if err != nil {
		return nil, badArgs("--consistency-models: %v", err)
	}
	if c.IsSet("consistency-models") && name != "list-append" && name != "rw-register" {
		return nil, badArgs("--consistency-models: only list-append and rw-register are checked against consistency models, not %s", name)
	}
	switch name {
	case "list-append":
		return workloads.NewListAppend(workloads.ElleOptions{ConsistencyModels: models}), nil
	case "rw-register":
		return workloads.NewRWRegister(workloads.ElleOptions{ConsistencyModels: models}), nil
	}
	w, err := workloads.New(name)
	if err != nil {
		return nil, badArgs("--workload: %v", err)
	}
	return w, nil
}

// parseModels splits a comma-separated list of consistency models and
// checks each name with the Elle checker.
func parseModels(s string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			return nil, fmt.Errorf("empty model name in %q", s)
		}
		out = append(out, m)
	}
	if _, err := elle.Check("list-append", nil, elle.Options{ConsistencyModels: out}); err != nil {
		return nil, err
	}
	return out, nil
}

// defaultSpares is how many spare nodes a membership run starts unless
// --spares says otherwise: as many as chaos sim's membership runs have.
const defaultSpares = 2

// fuseAvailable says whether lazyfs can mount here; tests replace it.
var fuseAvailable = lazyfs.Available

// runBackend connects the backend a run uses; tests replace it.
var runBackend = func(ctx context.Context, opts kvnodedb.Options) (harness.Backend, func(), error) {
	d, err := docker.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	b, err := kvnodedb.New(d, opts)
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return b, func() { d.Close() }, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func runAction(c *cli.Context) (err error) {
	s, err := parseRun(c)
	if err != nil {
		return err
	}
	junit, err := junitFlag(c)
	if err != nil {
		return err
	}
	var junitRuns []results.JUnitRun
	defer func() { err = writeJUnit(junit, junitRuns, err) }()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()

	sum, err := fileSHA256(s.cluster.Binary)
	if err != nil {
		return internal(fmt.Errorf("hash the kvnode binary: %w", err))
	}
	backend, closeBackend, err := runBackend(ctx, s.cluster)
	if err != nil {
		return internal(fmt.Errorf("backend: %w", err))
	}
	defer closeBackend()

	terminal := false
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		terminal = true
		// Log lines must not run on from the status line: clear it first;
		// the next progress tick redraws it.
		var lvl slog.Level
		_ = lvl.UnmarshalText([]byte(c.String("log-level")))
		old := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(lineClearer{os.Stderr}, &slog.HandlerOptions{Level: lvl})))
		defer slog.SetDefault(old)
	}
	var kinds []string
	for _, k := range s.kinds {
		kinds = append(kinds, string(k))
	}
	worst := checker.Valid
	for i := range s.count {
		seed := s.seed + int64(i)
		cfg := harness.Config{
			Name:     s.name,
			Workload: s.workload,
			Backend:  backend,
			Nemesis: nemesis.Config{Kinds: s.kinds, Interval: s.interval, KillPolicy: s.killPol,
				TearWrites: s.tear, ClockSkew: s.skew, StrobePeriod: s.strobe},
			CheckTimeout: s.checkTO,
			Concurrency:  s.conc,
			Rate:         s.rate,
			TimeLimit:    s.timeLimit,
			Seed:         seed,
			Store:        s.store,
			LeaveRunning: s.leave,
			OpTimeout:    s.opTimeout,
			Parameters: map[string]any{
				"nemesis":          kinds,
				"nemesis-interval": s.interval.String(),
				"nodes":            s.cluster.Nodes,
				"replicas":         s.cluster.Replicas,
				"replication":      s.cluster.Protocol,
				"groups":           s.cluster.Groups,
				"spares":           s.cluster.Spares,
				"shards":           s.cluster.Shards,
				"kvnode-binary":    s.cluster.Binary,
				"kvnode-args":      s.cluster.NodeArgs,
				"tear-writes":      s.tear,
				"clock-skew":       s.skew.String(),
				"strobe-period":    s.strobe.String(),
				"test-count":       s.count,
				"test-index":       i + 1,
				"store":            s.store,
				"check-timeout":    s.checkTO.String(),
				"first-seed":       s.seed,
				"command":          strings.Join(os.Args, " "),
			},
			KvnodeVersion: "sha256:" + sum,
			Progress:      os.Stderr,
			Terminal:      terminal,
		}
		if s.count > 1 {
			slog.Info("test run", "n", i+1, "of", s.count, "seed", seed)
		} else {
			slog.Info("test run", "seed", seed)
		}
		began := time.Now()
		out, err := harness.Run(ctx, cfg)
		if junit != "" {
			jr := results.JUnitRun{Name: s.name, Duration: time.Since(began), Err: err}
			if out != nil {
				jr.Dir, jr.Summary = out.Dir, out.Summary
			}
			junitRuns = append(junitRuns, jr)
		}
		if err != nil && out != nil && out.Summary.Results != nil {
			// Checked, but then the teardown failed: the verdict still
			// stands, and the internal error follows it.
			printOutcome(c.App.Writer, out)
		}
		if err != nil {
			where := ""
			if out != nil {
				where = " (partial results in " + out.Dir + ")"
			}
			if errors.Is(err, harness.ErrInterrupted) {
				return cli.Exit(fmt.Sprintf("interrupted%s: %v", where, err), exitInterrupted)
			}
			if errors.Is(err, harness.ErrConfig) {
				return badArgs("%v", err)
			}
			if errors.Is(err, docker.ErrNoNetem) {
				// The host cannot do what was asked: bad input, found at
				// setup because only the first container's kernel can tell.
				return badArgs("--nemesis latency: %v%s", err, where)
			}
			return internal(fmt.Errorf("%w%s", err, where))
		}
		printOutcome(c.App.Writer, out)
		worst = worse(worst, out.Valid)
		if out.Valid == checker.Invalid {
			break
		}
	}
	if code := worst.ExitCode(); code != exitValid {
		return cli.Exit("", code)
	}
	return nil
}

// lineClearer erases the terminal's current line before each write.
type lineClearer struct{ w io.Writer }

func (l lineClearer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(l.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	return l.w.Write(p)
}

// worse returns the worse of two verdicts: invalid, then unknown, then
// valid.
func worse(a, b checker.Validity) checker.Validity {
	return checker.Merge(a, b)
}

func printOutcome(w io.Writer, out *harness.Outcome) {
	fmt.Fprintf(w, "valid: %s\n", out.Valid)
	for name, r := range out.Summary.Results {
		fmt.Fprintf(w, "  %s: %s\n", name, r.Summary)
	}
	for _, n := range out.Summary.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintf(w, "results: %s\n", out.Dir)
}
