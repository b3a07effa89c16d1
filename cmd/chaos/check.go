package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/checker/linear"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/results"
)

// checkWorkloads lists the workloads `chaos check` knows, in help order.
var checkWorkloads = []string{"list-append", "rw-register", "register", "cas-register", "kv", "bank"}

func init() {
	commands = append(commands, &cli.Command{
		Name:      "check",
		Usage:     "check a recorded history (ours or Jepsen's) and print the verdict",
		ArgsUsage: "PATH (a history file, or a run directory holding history.jsonl or history.edn)",
		Description: "Checks a history with the checker its workload calls for: Elle's cycle search for\n" +
			"list-append and rw-register, porcupine linearizability for register, cas-register and kv,\n" +
			"the bank invariants for bank. Exits 0 valid, 1 invalid, 2 unknown, 254 bad arguments or\n" +
			"a malformed history, 255 internal error. Given a run directory it also writes results.json\n" +
			"(and artifacts such as porcupine's visualization) there.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "workload", Aliases: []string{"w"}, Usage: strings.Join(checkWorkloads, ", ")},
			&cli.StringFlag{Name: "consistency-models", Usage: "list-append, rw-register: comma-separated models the history must satisfy (default strict-serializable)"},
			&cli.StringFlag{Name: "anomalies", Usage: "list-append, rw-register: comma-separated extra anomalies to report (default G0)"},
			&cli.StringFlag{Name: "format", Usage: "history format: jsonl or edn (default: by file name, then by content)"},
			&cli.BoolFlag{Name: "json", Usage: "print the whole result as JSON instead of one line"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "give up the search after this long (verdict unknown)"},
			&cli.Int64Flag{Name: "total", Usage: "bank: the constant total of all balances (default: what most reads agree on)"},
			&cli.BoolFlag{Name: "allow-negative", Usage: "bank: allow negative balances"},
			&cli.StringFlag{Name: "junit", Usage: "also write the verdict as JUnit XML to this file (for CI)"},
		},
		Action: checkAction,
	})
}

// checkFunc checks ops of one workload and may write artifacts into dir.
type checkFunc func(ops []history.Op, dir string) (checker.Result, error)

// elleCheck is the transactional checker behind list-append and
// rw-register.
var elleCheck = (*elle.Builder).Check

func checkAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return badArgs("check takes exactly one PATH (a history file or a run directory), got %d arguments", c.NArg())
	}
	workload := c.String("workload")
	if workload == "" {
		return badArgs("--workload is required: %s", strings.Join(checkWorkloads, ", "))
	}
	format := c.String("format")
	if format != "" && format != history.FormatJSONL && format != history.FormatEDN {
		return badArgs("--format %q: want jsonl or edn", format)
	}
	timeout := c.Duration("timeout")
	if timeout < 0 {
		return badArgs("--timeout %s is negative", timeout)
	}
	models, anomalies := splitList(c.String("consistency-models")), splitList(c.String("anomalies"))
	isElle := workload == "list-append" || workload == "rw-register"
	if !isElle && (models != nil || anomalies != nil) {
		return badArgs("--consistency-models and --anomalies apply to list-append and rw-register only, not %s", workload)
	}
	var check checkFunc
	var take func(*history.Op) error // streams ops into a checker's own form
	switch workload {
	case "list-append", "rw-register":
		b := elle.NewBuilder(workload)
		take = b.Take
		// Decoding leaves short-lived garbage at every op while the
		// checker's own form grows; collecting it sooner keeps the peak
		// near what is live, at no measurable cost (make bench-check).
		defer debug.SetGCPercent(debug.SetGCPercent(25))
		check = func(_ []history.Op, dir string) (checker.Result, error) {
			return elleCheck(b, elle.Options{
				ConsistencyModels: models, Anomalies: anomalies, CycleSearchTimeout: timeout, Directory: dir,
			})
		}
	case "register", "cas-register", "kv":
		check = func(ops []history.Op, dir string) (checker.Result, error) {
			return linear.Check(workload, ops, linear.Options{Timeout: timeout, Directory: dir})
		}
	case "bank":
		opts := bank.Options{AllowNegative: c.Bool("allow-negative")}
		if c.IsSet("total") {
			t := c.Int64("total")
			opts.Total = &t
		}
		check = func(ops []history.Op, _ string) (checker.Result, error) { return bank.Check(ops, opts) }
	default:
		return badArgs("unknown workload %q: want %s", workload, strings.Join(checkWorkloads, ", "))
	}

	path, runDir, err := historyPath(c.Args().First())
	if err != nil {
		return err
	}
	start := time.Now()
	ops, err := history.ReadFileFunc(path, format, take)
	if err != nil {
		return readError(err)
	}
	// Pairing errors are the history's fault whichever checker runs, so
	// name them here, with their line, before dispatching.
	if _, err := history.Pair(ops); err != nil {
		return badArgs("%s: %v", path, err)
	}
	res, err := check(ops, runDir)
	if err != nil {
		var pe *fs.PathError
		if errors.Is(err, history.ErrMalformed) || (isElle && !errors.As(err, &pe)) {
			return badArgs("%s: %v", path, err)
		}
		return internal(fmt.Errorf("check %s: %w", path, err))
	}
	elapsed := time.Since(start)
	normalize(&res)
	if runDir != "" {
		if err := writeResults(runDir, res); err != nil {
			return internal(err)
		}
	}
	out := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return internal(fmt.Errorf("encode result: %w", err))
		}
	} else {
		fmt.Fprintln(out, verdictLine(workload, len(ops), res, elapsed))
	}
	if junit, err := junitFlag(c); err != nil {
		return err
	} else if junit != "" {
		sum := results.Summary{Valid: res.Valid, Results: map[string]checker.Result{workload: res}}
		if err := writeJUnit(junit, []results.JUnitRun{{Name: workload, Dir: path, Summary: sum, Duration: elapsed}}, nil); err != nil {
			return err
		}
	}
	if code := res.Valid.ExitCode(); code != exitValid {
		return cli.Exit("", code)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// historyPath resolves PATH to a history file and, when PATH is a run
// directory, that directory.
func historyPath(arg string) (path, runDir string, err error) {
	st, err := os.Stat(arg)
	if err != nil {
		return "", "", badArgs("history %s: %v", arg, err)
	}
	if !st.IsDir() {
		return arg, "", nil
	}
	for _, name := range []string{"history.jsonl", "history.edn"} {
		p := filepath.Join(arg, name)
		if _, err := os.Stat(p); err == nil {
			return p, arg, nil
		}
	}
	return "", "", badArgs("directory %s holds neither history.jsonl nor history.edn", arg)
}

// readError maps a history read failure to its exit code: a malformed
// history is a bad argument, anything else is internal.
func readError(err error) error {
	if errors.Is(err, history.ErrMalformed) {
		return badArgs("%v", err)
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return badArgs("%v", err)
	}
	return internal(err)
}

// normalize makes the JSON form carry every field Jepsen's tools expect,
// as empty lists and maps rather than null.
func normalize(res *checker.Result) {
	if res.AnomalyTypes == nil {
		res.AnomalyTypes = []string{}
	}
	if res.Anomalies == nil {
		res.Anomalies = map[string][]any{}
	}
	if res.Not == nil {
		res.Not = []string{}
	}
}

// verdictLine is the one line a person reads: verdict, anomaly types with
// counts, ops and time.
func verdictLine(workload string, ops int, res checker.Result, elapsed time.Duration) string {
	verdict := map[checker.Validity]string{checker.Valid: "valid", checker.Invalid: "invalid", checker.Unknown: "unknown"}[res.Valid]
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", verdict, workload)
	if len(res.AnomalyTypes) > 0 {
		types := append([]string(nil), res.AnomalyTypes...)
		sort.Strings(types)
		parts := make([]string, len(types))
		for i, t := range types {
			parts[i] = fmt.Sprintf("%s (%d)", t, len(res.Anomalies[t]))
		}
		fmt.Fprintf(&b, ", anomalies %s", strings.Join(parts, ", "))
	}
	if len(res.Not) > 0 {
		fmt.Fprintf(&b, ", not %s", strings.Join(res.Not, ", "))
	}
	fmt.Fprintf(&b, ", %d ops, %s", ops, elapsed.Round(time.Millisecond))
	if res.Summary != "" {
		fmt.Fprintf(&b, " - %s", res.Summary)
	}
	return b.String()
}

// writeResults records res in the run directory's results.json, keeping the
// results of other checkers a run already recorded there.
func writeResults(dir string, res checker.Result) error {
	sum, err := results.ReadSummary(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("existing results.json: %w", err)
	}
	if sum.Results == nil {
		sum.Results = map[string]checker.Result{}
	}
	name := res.Checker
	if name == "" {
		name = "check"
	}
	sum.Results[name] = res
	names := make([]string, 0, len(sum.Results))
	for n := range sum.Results {
		names = append(names, n)
	}
	sort.Strings(names)
	vs := make([]checker.Validity, 0, len(names))
	for _, n := range names {
		vs = append(vs, sum.Results[n].Valid)
	}
	sum.Valid = checker.Merge(vs...)
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results.json: %w", err)
	}
	if err := results.WriteFileAtomic(filepath.Join(dir, results.ResultsFile), append(b, '\n')); err != nil {
		return fmt.Errorf("write results.json: %w", err)
	}
	return nil
}
