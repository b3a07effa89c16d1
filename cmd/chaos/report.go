package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/results"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "report",
		Usage:     "rebuild a run's report.html (and timeline.html) from its stored history and results",
		ArgsUsage: "RUN_DIR (such as store/latest)",
		Action:    reportAction,
	})
}

func reportAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return badArgs("report takes exactly one RUN_DIR, got %d arguments", c.NArg())
	}
	dir := c.Args().First()
	st, err := os.Stat(dir)
	if err != nil {
		return badArgs("run directory %s: %v", dir, err)
	}
	if !st.IsDir() {
		return badArgs("%s is not a run directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, results.TestFile)); err != nil {
		return badArgs("%s holds no %s: not a run directory", dir, results.TestFile)
	}
	if err := results.Rebuild(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return badArgs("%v", err)
		}
		return internal(fmt.Errorf("rebuild the report: %w", err))
	}
	fmt.Fprintln(c.App.Writer, filepath.Join(dir, results.ReportFile))
	return nil
}
