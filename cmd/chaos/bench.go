package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/kvnode/bench"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
)

func init() {
	var modes []*cli.Command
	for _, m := range bench.Modes {
		modes = append(modes, &cli.Command{
			Name:         string(m),
			Usage:        benchModeUsage[m],
			Flags:        benchFlags(),
			OnUsageError: usageError,
			Action:       func(c *cli.Context) error { return benchAction(c, m) },
		})
	}
	commands = append(commands, &cli.Command{
		Name:      "bench",
		Usage:     "load a kvnode cluster and measure throughput and latency",
		ArgsUsage: "put | get | txn | txn-cross (default put)",
		Description: "Runs --clients concurrent sessions, each issuing one op at a time, for --total ops or\n" +
			"for --duration, and reports successful ops per second and the latency percentiles of\n" +
			"successful ops.\n\n" +
			"Without --cluster it starts a 3-node loopback cluster in this process (sharded, with a\n" +
			"controller and --shard-groups groups, for the txn modes), in a temporary directory it\n" +
			"removes afterwards. Exits 0 when ops succeeded, 1 when none did, 254 on bad arguments.",
		Flags:       benchFlags(),
		Subcommands: modes,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				_, err := bench.ParseMode(c.Args().First())
				return badArgs("%v", err)
			}
			return benchAction(c, bench.Put)
		},
	})
}

var benchModeUsage = map[bench.Mode]string{
	bench.Put:      "write random keys of the key space",
	bench.Get:      "read random keys linearizably (each key is written once first)",
	bench.Txn:      "transactions writing two keys of one shard group",
	bench.TxnCross: "transactions writing two keys of two shard groups (two-phase commit)",
}

func benchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "clients", Value: 16, Usage: "concurrent client sessions"},
		&cli.IntFlag{Name: "total", Usage: "stop after so many ops (instead of --duration)"},
		&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to run (when --total is not given)"},
		&cli.IntFlag{Name: "val-size", Value: 100, Usage: "bytes per written value"},
		&cli.IntFlag{Name: "key-space", Value: 1000, Usage: "distinct keys"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "deadline of each op"},
		&cli.StringFlag{Name: "cluster", Usage: "cluster file of an existing cluster (default: start a local one)"},
		&cli.UintFlag{Name: "group", Value: 1, Usage: "replica group for put and get (with --cluster)"},
		&cli.StringFlag{Name: "replication", Value: "paxos", Usage: "local cluster's protocol: " + strings.Join(protocols.Names(), " or ")},
		&cli.StringFlag{Name: "fsync", Value: bench.FsyncFull, Usage: "local cluster's fsync mode: full (survives power loss) or once (one sync per batch; survives process crashes)"},
		&cli.IntFlag{Name: "shard-groups", Value: 2, Usage: "local sharded cluster's shard groups (txn modes)"},
		&cli.StringFlag{Name: "kvnode", Usage: "run the local cluster's nodes as processes of this kvnode binary (default: inside this process)"},
		&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object"},
	}
}

// benchSetup is a parsed bench command line.
type benchSetup struct {
	cfg         bench.Config
	clusterFile string
	replication string
	fsync       string
	shardGroups int
	kvnode      string
	json        bool
}

func parseBench(c *cli.Context, mode bench.Mode) (benchSetup, error) {
	var s benchSetup
	if c.Args().Present() {
		return s, badArgs("unexpected argument %q", c.Args().First())
	}
	s.cfg = bench.Config{
		Mode: mode, Clients: c.Int("clients"), Total: c.Int("total"), Duration: c.Duration("duration"),
		ValSize: c.Int("val-size"), KeySpace: c.Int("key-space"), Timeout: c.Duration("timeout"),
		Group: replica.GroupID(c.Uint("group")),
	}
	switch {
	case c.IsSet("total") && c.IsSet("duration"):
		return s, badArgs("give --total or --duration, not both")
	case c.IsSet("total"):
		s.cfg.Duration = 0
		if s.cfg.Total < 1 {
			return s, badArgs("--total must be at least 1, got %d", s.cfg.Total)
		}
	}
	if err := s.cfg.Validate(); err != nil {
		return s, badArgs("%v", err)
	}
	if s.cfg.Group == 0 || s.cfg.Group > 1<<32-1 {
		return s, badArgs("--group must be a group id, got %d", c.Uint("group"))
	}
	s.clusterFile, s.json = c.String("cluster"), c.Bool("json")
	s.replication, s.fsync, s.shardGroups = c.String("replication"), c.String("fsync"), c.Int("shard-groups")
	if s.clusterFile != "" {
		for _, f := range []string{"replication", "fsync", "shard-groups", "kvnode"} {
			if c.IsSet(f) {
				return s, badArgs("--%s configures a local cluster; it does not apply with --cluster", f)
			}
		}
		return s, nil
	}
	if c.IsSet("group") {
		return s, badArgs("--group applies with --cluster only")
	}
	if s.kvnode = c.String("kvnode"); s.kvnode != "" {
		if fi, err := os.Stat(s.kvnode); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return s, badArgs("--kvnode %s: not an executable file", s.kvnode)
		}
	}
	if _, err := protocols.Lookup(s.replication); err != nil {
		return s, badArgs("--replication: %v", err)
	}
	if s.fsync != bench.FsyncFull && s.fsync != bench.FsyncOnce {
		return s, badArgs("--fsync: want %s or %s, got %q", bench.FsyncFull, bench.FsyncOnce, s.fsync)
	}
	if mode.Sharded() {
		if s.shardGroups < 1 || s.shardGroups > 16 || mode == bench.TxnCross && s.shardGroups < 2 {
			return s, badArgs("--shard-groups: %s needs 1 to 16 groups (txn-cross at least 2), got %d", mode, s.shardGroups)
		}
	} else if c.IsSet("shard-groups") {
		return s, badArgs("--shard-groups applies to the txn modes only")
	}
	return s, nil
}

func benchAction(c *cli.Context, mode bench.Mode) error {
	s, err := parseBench(c, mode)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	var file *config.Cluster
	where := "cluster " + s.clusterFile
	if s.clusterFile != "" {
		if file, err = config.Load(s.clusterFile); err != nil {
			return badArgs("--cluster: %v", err)
		}
		if s.cfg.Mode.Sharded() && file.ShardController == 0 {
			return badArgs("--cluster %s: %s needs a sharded cluster (shard_controller)", s.clusterFile, s.cfg.Mode)
		}
		if _, ok := file.Group(s.cfg.Group); !ok && !s.cfg.Mode.Sharded() {
			return badArgs("--group %d is not in %s", s.cfg.Group, s.clusterFile)
		}
	} else {
		lc := bench.LocalConfig{Protocol: s.replication, Fsync: s.fsync, Binary: s.kvnode}
		if s.cfg.Mode.Sharded() {
			lc.ShardGroups = s.shardGroups
		}
		local, err := bench.StartLocal(ctx, lc)
		if err != nil {
			return internal(fmt.Errorf("start a local cluster: %w", err))
		}
		defer local.Close()
		file = local.File
		how := "in-process"
		if s.kvnode != "" {
			how = "processes"
		}
		where = fmt.Sprintf("local %d-node cluster (%s, %s, fsync %s", len(file.Nodes), how, s.replication, s.fsync)
		if lc.ShardGroups > 0 {
			where += fmt.Sprintf(", %d shard groups", lc.ShardGroups)
		}
		where += ")"
	}
	var endProgress func()
	s.cfg.Progress, s.cfg.ProgressEvery, endProgress = progressPrinter(os.Stderr)
	res, err := bench.Run(ctx, file, s.cfg)
	endProgress()
	if err != nil {
		return internal(fmt.Errorf("bench: %w", err))
	}
	if s.json {
		err = writeBenchJSON(c.App.Writer, s, where, res)
	} else {
		err = writeBenchText(c.App.Writer, s, where, res)
	}
	if err != nil {
		return internal(err)
	}
	if res.Ops == 0 {
		return cli.Exit(fmt.Sprintf("no op succeeded (first error: %s)", res.FirstError), exitInvalid)
	}
	return nil
}

// progressPrinter returns the progress callback and its period: a line
// rewritten in place every second on a terminal, a line every five
// seconds otherwise (logs, pipes).
func progressPrinter(w *os.File) (progress func(bench.Progress), every time.Duration, end func()) {
	if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		shown := false
		return func(p bench.Progress) {
				shown = true
				fmt.Fprintf(w, "\r%6.1fs  %10d ops  %8d errors  %10.0f ops/s ", p.Elapsed.Seconds(), p.Ops, p.Errors, p.Rate)
			}, time.Second, func() {
				if shown {
					fmt.Fprintln(w)
				}
			}
	}
	return func(p bench.Progress) {
		fmt.Fprintf(w, "bench: %.0fs: %d ops, %d errors, %.0f ops/s\n", p.Elapsed.Seconds(), p.Ops, p.Errors, p.Rate)
	}, 5 * time.Second, func() {}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func writeBenchText(w io.Writer, s benchSetup, where string, r bench.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bench %s: %d clients, %d-byte values, %d keys, %s\n", r.Mode, r.Clients, s.cfg.ValSize, s.cfg.KeySpace, where)
	fmt.Fprintf(&b, "  ops         %d ok, %d failed, %d unknown in %.2fs", r.Ops, r.Failed, r.Unknown, r.Elapsed.Seconds())
	if r.Mode.Sharded() {
		fmt.Fprintf(&b, " (%d aborted attempts retried)", r.Aborts)
	}
	fmt.Fprintf(&b, "\n  throughput  %.0f ops/s\n", r.Throughput)
	l := r.Latency
	fmt.Fprintf(&b, "  latency     p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ms(l.Mean))
	if r.FirstError != "" {
		fmt.Fprintf(&b, "  first error %s\n", r.FirstError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// benchJSON is the --json output.
type benchJSON struct {
	Mode        string      `json:"mode"`
	Clients     int         `json:"clients"`
	ValSize     int         `json:"val_size"`
	KeySpace    int         `json:"key_space"`
	Cluster     string      `json:"cluster"`
	Replication string      `json:"replication,omitempty"`
	Fsync       string      `json:"fsync,omitempty"`
	Nodes       string      `json:"nodes,omitempty"` // a local cluster's nodes: in-process or processes
	Ops         int64       `json:"ops"`
	Failed      int64       `json:"failed"`
	Unknown     int64       `json:"unknown"`
	Aborts      uint64      `json:"aborts"`
	ElapsedS    float64     `json:"elapsed_s"`
	OpsPerSec   float64     `json:"ops_per_sec"`
	LatencyMS   latencyJSON `json:"latency_ms"`
	FirstError  string      `json:"first_error,omitempty"`
}

type latencyJSON struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func writeBenchJSON(w io.Writer, s benchSetup, where string, r bench.Result) error {
	out := benchJSON{
		Mode: string(r.Mode), Clients: r.Clients, ValSize: s.cfg.ValSize, KeySpace: s.cfg.KeySpace, Cluster: where,
		Ops: r.Ops, Failed: r.Failed, Unknown: r.Unknown, Aborts: r.Aborts,
		ElapsedS: r.Elapsed.Seconds(), OpsPerSec: r.Throughput, FirstError: r.FirstError,
		LatencyMS: latencyJSON{P50: ms(r.Latency.P50), P90: ms(r.Latency.P90), P99: ms(r.Latency.P99), Max: ms(r.Latency.Max), Mean: ms(r.Latency.Mean)},
	}
	if s.clusterFile == "" {
		out.Cluster, out.Replication, out.Fsync, out.Nodes = "local", s.replication, s.fsync, "in-process"
		if s.kvnode != "" {
			out.Nodes = "processes"
		}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(out)
}
