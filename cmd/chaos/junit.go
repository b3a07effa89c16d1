package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/results"
)

// junitFlag validates --junit: its directory must exist, so a typo fails
// before a long test rather than after it.
func junitFlag(c *cli.Context) (string, error) {
	path := c.String("junit")
	if path == "" {
		return "", nil
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || !st.IsDir() {
		return "", badArgs("--junit %s: directory %s does not exist", path, filepath.Dir(path))
	}
	return path, nil
}

// writeJUnit writes the JUnit report when one was asked for and returns
// the command's error: err, or an internal error when only the report
// failed.
func writeJUnit(path string, runs []results.JUnitRun, err error) error {
	if path == "" {
		return err
	}
	if jerr := results.WriteJUnit(path, runs); jerr != nil {
		slog.Error("write the JUnit report", "file", path, "err", jerr)
		if err == nil {
			return internal(jerr)
		}
	}
	return err
}
