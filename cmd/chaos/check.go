package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
)

// checkWorkloads lists the workloads `chaos check` knows, in help order.
var checkWorkloads = workloads.CheckNames()

// defaultCheckTimeout bounds a check when neither --timeout nor the run
// says otherwise.
const defaultCheckTimeout = 60 * time.Second

func init() {
	commands = append(commands, &cli.Command{
		Name:      "check",
		Usage:     "check a recorded history (ours, Jepsen's or porcupine's) and print the verdict",
		ArgsUsage: "PATH (a history file, or a run directory holding history.jsonl or history.edn)",
		Description: "Checks a history with the checker its workload calls for: Elle's cycle search for\n" +
			"list-append and rw-register, porcupine linearizability for register (cas-register) and kv,\n" +
			"the bank invariants for bank (a transfer that would overdraw fails, so no balance may be\n" +
			"negative). The workload, checker options and timeout come from the flags, else from the\n" +
			"run's test.json when PATH is a run directory or a file in one (a flag that differs from\n" +
			"the run is reported on stderr), else the workload is recognized from the history itself.\n" +
			"Reads JSON lines, Jepsen EDN (one op per line, or one vector or list of ops; ops without\n" +
			":process each get a process of their own) and Jepsen text logs. Exits 0 valid, 1 invalid,\n" +
			"2 unknown (also for a history without client operations), 254 bad arguments, a malformed\n" +
			"history or one of another workload's shape, 255 internal error. Given a run directory it\n" +
			"also writes results.json (and artifacts such as porcupine's visualization) there.",
		Flags: append(checkFlags(),
			&cli.StringFlag{Name: "format", Usage: "history format: " + strings.Join(history.Formats, ", ") + " (default: by file name, then by content)"},
			&cli.BoolFlag{Name: "json", Usage: "print the whole result as JSON instead of one line"},
			&cli.StringFlag{Name: "junit", Usage: "also write the verdict as JUnit XML to this file (for CI)"},
		),
		Action: checkAction,
	})
}

// checkFlags are the flags that choose a checker and its options, shared
// by check and report.
func checkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "workload", Aliases: []string{"w"}, Usage: strings.Join(checkWorkloads, ", ") + " (default: the run's, else recognized from the history)"},
		&cli.StringFlag{Name: "consistency-models", Usage: "list-append, rw-register: comma-separated models the history must satisfy (default: the run's, else strict-serializable)"},
		&cli.StringFlag{Name: "anomalies", Usage: "list-append, rw-register: comma-separated extra anomalies to report (default G0)"},
		&cli.BoolFlag{Name: "sequential-keys", Usage: "rw-register: assume each key is sequentially consistent"},
		&cli.BoolFlag{Name: "linearizable-keys", Usage: "rw-register: assume each key is linearizable"},
		&cli.BoolFlag{Name: "wfr-keys", Usage: "rw-register: assume writes follow reads within a transaction"},
		&cli.DurationFlag{Name: "timeout", Value: defaultCheckTimeout, Usage: "give up the search after this long (verdict unknown; default: the run's --check-timeout)"},
		&cli.Int64Flag{Name: "total", Usage: "bank: the constant total of all balances (default: the run's, else what most reads agree on)"},
	}
}

// checkPlan is everything a check needs besides the history: the
// workload's name as the output shows it, the checker and its options,
// and what the user should be told about where they came from.
type checkPlan struct {
	workload string
	checker  checker.Checker
	timeout  time.Duration
	notes    []string
	// recognized says the workload was told from the history's shape,
	// which the history therefore fits.
	recognized bool
}

// runRecord is what a run's test.json says about its check.
type runRecord struct {
	path     string // test.json
	workload string
	checker  json.RawMessage // the recorded checker options, nil if none
	timeout  time.Duration
}

// workloadName is the run's workload: the one it names, else the one its
// recorded checker implies; "" for no record.
func (rec *runRecord) workloadName() string {
	if rec == nil {
		return ""
	}
	if rec.workload == "" && rec.checker != nil {
		r, _ := workloads.ReadCheckerRecord(rec.checker) // read once already
		return r.Workload()
	}
	return rec.workload
}

// readRunRecord reads dir's test.json; it returns nil when there is none.
func readRunRecord(dir string) (*runRecord, error) {
	p := filepath.Join(dir, results.TestFile)
	if _, err := os.Stat(p); err != nil {
		return nil, nil
	}
	t, err := results.ReadTest(dir)
	if err != nil {
		return nil, badArgs("%s: %v", p, err)
	}
	rec := &runRecord{path: p}
	rec.workload, _ = t.Parameters["workload"].(string)
	if raw, ok := t.Parameters["checker"]; ok {
		b, err := json.Marshal(raw)
		if err != nil {
			return nil, internal(fmt.Errorf("%s: checker: %w", p, err))
		}
		if _, err := workloads.ReadCheckerRecord(b); err != nil {
			return nil, badArgs("%s: parameter checker: %v", p, err)
		}
		rec.checker = b
	}
	if s, ok := t.Parameters["check-timeout"].(string); ok {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			rec.timeout = d
		}
	}
	if rec.workload == "" && rec.checker == nil {
		return nil, badArgs("%s names neither a workload nor a checker", p)
	}
	return rec, nil
}

// planCheck decides the checker: flags first, then the run's record, then
// what the history looks like.
func planCheck(c *cli.Context, rec *runRecord, ops []history.Op) (*checkPlan, error) {
	plan := &checkPlan{timeout: defaultCheckTimeout}
	override := func(flag, flagValue, runValue string) {
		if rec != nil && runValue != "" && flagValue != runValue {
			plan.notes = append(plan.notes, fmt.Sprintf("--%s %s overrides the run's %s (%s)", flag, flagValue, runValue, rec.path))
		}
	}
	runWorkload := rec.workloadName()
	switch {
	case c.IsSet("workload"):
		plan.workload = c.String("workload")
		override("workload", plan.workload, runWorkload)
	case runWorkload != "":
		plan.workload = runWorkload
	case clientOps(ops) == 0:
		// Nothing to recognize, and nothing to check whatever the
		// workload: the verdict is unknown.
		plan.workload = "unknown workload"
		plan.checker = noChecker{}
		return plan, nil
	default:
		w, err := recognize(ops)
		if err != nil {
			return nil, badArgs("--workload is required: %v", err)
		}
		plan.workload, plan.recognized = w, true
		plan.notes = append(plan.notes, fmt.Sprintf("workload %s, recognized from the history (name it with --workload)", w))
	}
	var recorded json.RawMessage
	if rec != nil && plan.workload == runWorkload {
		recorded = rec.checker
	}
	chk, err := checkerFor(plan.workload, recorded)
	if err != nil {
		return nil, badArgs("%v", err)
	}
	if rec != nil && rec.timeout > 0 {
		plan.timeout = rec.timeout
	}
	if c.IsSet("timeout") {
		if rec != nil && rec.timeout > 0 {
			override("timeout", c.Duration("timeout").String(), rec.timeout.String())
		}
		plan.timeout = c.Duration("timeout")
	}
	if plan.timeout < 0 {
		return nil, badArgs("--timeout %s is negative", plan.timeout)
	}
	ec, isElle := chk.(*elle.Checker)
	for _, f := range []string{"consistency-models", "anomalies", "sequential-keys", "linearizable-keys", "wfr-keys"} {
		if c.IsSet(f) && !isElle {
			return nil, badArgs("--%s: --consistency-models, --anomalies and the key assumptions apply to list-append and rw-register only, not %s", f, plan.workload)
		}
	}
	if isElle {
		if c.IsSet("consistency-models") {
			models := splitList(c.String("consistency-models"))
			override("consistency-models", strings.Join(models, ","), strings.Join(ec.ConsistencyModels, ","))
			ec.ConsistencyModels = models
		}
		if c.IsSet("anomalies") {
			ec.Anomalies = splitList(c.String("anomalies"))
		}
		ec.SequentialKeys, ec.LinearizableKeys, ec.WFRKeys = c.Bool("sequential-keys"), c.Bool("linearizable-keys"), c.Bool("wfr-keys")
		// Name a bad model or anomaly as the bad argument it is, before
		// any history is blamed.
		if err := ec.Validate(); err != nil {
			return nil, badArgs("%v", err)
		}
	}
	if c.IsSet("total") {
		bc, ok := chk.(*bank.Checker)
		if !ok {
			return nil, badArgs("--total applies to bank only, not %s", plan.workload)
		}
		t := c.Int64("total")
		if bc.Total != nil {
			override("total", fmt.Sprint(t), fmt.Sprint(*bc.Total))
		}
		bc.Total = &t
	}
	plan.checker = chk
	return plan, nil
}

// checkerFor is the one place a workload's name and recorded options
// become its checker (a variable so tests can plant a failing checker).
var checkerFor = workloads.CheckerFor

// noChecker stands in for the checker of a history whose workload is
// unknown because it holds no client operations: checker.Check finds
// nothing to judge before it is asked.
type noChecker struct{}

func (noChecker) Name() string { return "none" }

func (noChecker) Check([]history.Op, checker.Options) (checker.Result, error) {
	return checker.Result{}, errors.New("no checker for a history of unknown workload")
}

func clientOps(ops []history.Op) int {
	n := 0
	for i := range ops {
		if ops[i].IsClient() {
			n++
		}
	}
	return n
}

// checkInput is a history to check: the file, the run directory that
// PATH named (results go there), and the run's record when the file is
// in a run directory.
type checkInput struct {
	path   string
	runDir string
	rec    *runRecord
	ops    []history.Op
	// plan is the check, when it could be planned before the history
	// was read (the workload was named, or the run recorded it).
	plan *checkPlan
	// streamCheck, when not nil, judges what the plan's checker took
	// while the history streamed by (the ops then hold none of it); its
	// shape was checked, and its ops counted, as they came.
	streamCheck   func(checker.Options) (checker.Result, error)
	shape         *shapeCheck
	nops, nclient int
}

// counts returns how many ops and client ops the history holds.
func (in *checkInput) counts() (ops, client int) {
	if in.streamCheck != nil {
		return in.nops, in.nclient
	}
	return len(in.ops), clientOps(in.ops)
}

// loadHistory resolves PATH, reads its history and the run's record, and
// refuses a history that does not pair.
//
// When the workload is known before the history is read (from
// --workload, else from the run's record) and it is transactional, the
// transactions stream into the checker's compact form as they are read.
// A caller that needs the ops' values afterwards (a report) passes
// stream false.
func loadHistory(c *cli.Context, arg, format string, stream bool) (*checkInput, error) {
	if format != "" && !slices.Contains(history.Formats, format) {
		return nil, badArgs("--format %q: want %s", format, strings.Join(history.Formats, ", "))
	}
	path, runDir, err := historyPath(arg)
	if err != nil {
		return nil, err
	}
	rec, err := readRunRecord(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	in := &checkInput{path: path, runDir: runDir, rec: rec}
	var take func(*history.Op) error
	if stream {
		if take, err = in.streamTo(c); err != nil {
			return nil, err
		}
	}
	ops, err := history.ReadFileFunc(path, format, take)
	// Pairing errors are the history's fault whichever checker runs, so
	// name them here, with their line, before dispatching.
	var pe *history.PairError
	if errors.As(err, &pe) {
		return nil, badArgs("%s: %v", path, pe)
	}
	if err != nil {
		return nil, readError(err)
	}
	if take == nil {
		if _, err := history.Pair(ops); err != nil {
			return nil, badArgs("%s: %v", path, err)
		}
	}
	in.ops = ops
	return in, nil
}

// streamTo plans the check when the workload is known before the
// history is read, and returns the hook that streams the history into the
// plan's checker when that checker can take it op by op; nil otherwise.
func (in *checkInput) streamTo(c *cli.Context) (func(*history.Op) error, error) {
	if !c.IsSet("workload") && in.rec.workloadName() == "" {
		return nil, nil
	}
	plan, err := planCheck(c, in.rec, nil)
	if err != nil {
		return nil, err
	}
	in.plan = plan
	st, ok := plan.checker.(checker.Streamer)
	if !ok {
		return nil, nil
	}
	take, check := st.Stream()
	in.streamCheck = check
	in.shape, _ = newShapeCheck(plan.workload)
	// Each op is paired, shape-checked, counted and taken as it comes,
	// then left out of the ops: nothing of it is held twice.
	var pairer history.Pairer
	return func(op *history.Op) error {
		if _, err := pairer.Add(op); err != nil {
			return err
		}
		in.shape.add(op)
		in.nops++
		if op.IsClient() {
			in.nclient++
		}
		if err := take(op); err != nil {
			return err
		}
		return history.SkipOp
	}, nil
}

// checkHistoryInput plans and runs the check of in, with artifacts in dir.
func checkHistoryInput(c *cli.Context, in *checkInput, dir string, notes io.Writer) (*checkPlan, checker.Result, error) {
	plan := in.plan
	if plan == nil {
		var err error
		if plan, err = planCheck(c, in.rec, in.ops); err != nil {
			return nil, checker.Result{}, err
		}
	}
	for _, n := range plan.notes {
		fmt.Fprintln(notes, "note:", n)
	}
	// A recognized workload's shape is already known to fit, and so is a
	// streamed one's.
	shapeErr := func() error { return checkShape(plan.workload, in.ops) }
	if in.streamCheck != nil {
		shapeErr = in.shape.err
	}
	if !plan.recognized {
		if err := shapeErr(); err != nil {
			return nil, checker.Result{}, badArgs("%s: %v", in.path, err)
		}
	}
	opts := checker.Options{Timeout: plan.timeout, Directory: dir}
	var res checker.Result
	var err error
	if _, nclient := in.counts(); in.streamCheck != nil && nclient > 0 {
		res, err = in.streamCheck(opts)
	} else {
		res, err = checker.Check(plan.checker, in.ops, opts)
	}
	if err != nil {
		var pe *fs.PathError
		// Elle's errors are the history's, unless it could not write.
		_, isElle := plan.checker.(*elle.Checker)
		if errors.Is(err, history.ErrMalformed) || (isElle && !errors.As(err, &pe)) {
			return nil, checker.Result{}, badArgs("%s: %v", in.path, err)
		}
		return nil, checker.Result{}, internal(fmt.Errorf("check %s: %w", in.path, err))
	}
	normalize(&res)
	return plan, res, nil
}

func checkAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return badArgs("check takes exactly one PATH (a history file or a run directory), got %d arguments", c.NArg())
	}
	junit, err := junitFlag(c)
	if err != nil {
		return err
	}
	start := time.Now()
	in, err := loadHistory(c, c.Args().First(), c.String("format"), true)
	if err != nil {
		return err
	}
	plan, res, err := checkHistoryInput(c, in, in.runDir, c.App.ErrWriter)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if in.runDir != "" {
		if err := writeResults(in.runDir, res); err != nil {
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
		nops, _ := in.counts()
		fmt.Fprintln(out, verdictLine(plan.workload, nops, res, elapsed))
	}
	if junit != "" {
		sum := results.Summary{Valid: res.Valid, Results: map[string]checker.Result{plan.workload: res}}
		if err := writeJUnit(junit, []results.JUnitRun{{Name: plan.workload, Dir: in.path, Summary: sum, Duration: elapsed}}, nil); err != nil {
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
