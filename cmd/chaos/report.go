package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/results"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "report",
		Usage:     "write report.html (and timeline.html) for a stored run, or for any checkable history file",
		ArgsUsage: "RUN_DIR (such as store/latest) or HISTORY_FILE",
		Description: "Given a run directory, rebuilds its report from the stored history and results.\n" +
			"Given a history file (ours, Jepsen's EDN or text log, porcupine's), checks it as chaos check\n" +
			"does (the same flags; the workload is recognized when not named) and writes the report,\n" +
			"the checker's artifacts and timeline.html into --out (default: the file's directory); the\n" +
			"run's parameters, unknown without a test.json, are shown as unknown. A history file inside\n" +
			"a run directory is that run's report. Exits 0 once the report is written, 254 for bad\n" +
			"arguments or a malformed history, 255 internal error.",
		Flags: append(checkFlags(),
			&cli.StringFlag{Name: "format", Usage: "history format of a HISTORY_FILE (default: by file name, then by content)"},
			&cli.StringFlag{Name: "out", Usage: "directory for the report of a HISTORY_FILE (default: the file's directory)"},
		),
		Action: reportAction,
	})
}

func reportAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return badArgs("report takes exactly one RUN_DIR or HISTORY_FILE, got %d arguments", c.NArg())
	}
	arg := c.Args().First()
	st, err := os.Stat(arg)
	if err != nil {
		return badArgs("report %s: %v", arg, err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(arg, results.TestFile)); err != nil {
			return badArgs("%s holds no %s: not a run directory (name its history file to report on the history alone)", arg, results.TestFile)
		}
		return rebuildRun(c, arg)
	}
	if isRunHistory(arg) && !c.IsSet("out") {
		return rebuildRun(c, filepath.Dir(arg))
	}
	return reportHistory(c, arg)
}

// isRunHistory says whether path is the history file of a run directory.
func isRunHistory(path string) bool {
	switch filepath.Base(path) {
	case results.HistoryFile, "history.edn":
	default:
		return false
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(path), results.TestFile))
	return err == nil
}

func rebuildRun(c *cli.Context, dir string) error {
	if err := results.Rebuild(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return badArgs("%v", err)
		}
		return internal(fmt.Errorf("rebuild the report: %w", err))
	}
	fmt.Fprintln(c.App.Writer, filepath.Join(dir, results.ReportFile))
	return nil
}

// reportHistory checks a history that has no run around it and renders
// its report, with every run parameter unknown.
func reportHistory(c *cli.Context, path string) error {
	in, err := loadHistory(c, path, c.String("format"), false)
	if err != nil {
		return err
	}
	out := c.String("out")
	if out == "" {
		out = filepath.Dir(path)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return badArgs("--out: %v", err)
	}
	if err := probeStore(out); err != nil {
		return badArgs("--out: %v", err)
	}
	plan, res, err := checkHistoryInput(c, in, out, c.App.ErrWriter)
	if err != nil {
		return err
	}
	const unknown = "unknown"
	test := results.Test{
		Name:   filepath.Base(path),
		Status: unknown,
		Parameters: map[string]any{
			"history":     path,
			"workload":    plan.workload,
			"nemesis":     unknown,
			"nodes":       unknown,
			"replication": unknown,
			"concurrency": unknown,
		},
	}
	name := res.Checker
	if name == "" {
		name = plan.checker.Name()
	}
	sum := results.Summary{
		Valid:   res.Valid,
		Results: map[string]checker.Result{name: res},
		Notes:   append([]string{"this history came without a test.json: the parameters of the run that made it are unknown"}, plan.notes...),
	}
	files := res.Files
	report, timeline, err := results.Render(results.ReportInput{Test: test, Summary: sum, Ops: in.ops, Files: files})
	if err != nil {
		return internal(fmt.Errorf("render the report: %w", err))
	}
	if timeline != nil {
		if err := results.WriteFileAtomic(filepath.Join(out, results.TimelineFile), timeline); err != nil {
			return internal(fmt.Errorf("write the timeline: %w", err))
		}
	}
	p := filepath.Join(out, results.ReportFile)
	if err := results.WriteFileAtomic(p, report); err != nil {
		return internal(fmt.Errorf("write the report: %w", err))
	}
	fmt.Fprintln(c.App.Writer, p)
	return nil
}
