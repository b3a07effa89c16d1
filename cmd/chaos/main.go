// Command chaos is a Jepsen-style chaos-testing harness for kvnode: it runs
// workloads against a cluster (in Docker or in the deterministic simulator)
// while nemeses inject faults, records a history, and checks it.
//
// Exit codes follow Jepsen: 0 valid, 1 invalid, 2 unknown, 254 bad
// arguments, 255 internal error; a run stopped by SIGINT or SIGTERM exits
// 130.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"

	"github.com/urfave/cli/v2"
)

// Exit codes shared by every subcommand.
const (
	exitValid   = 0
	exitInvalid = 1
	exitUnknown = 2
	// exitInterrupted is the shell's code for a command ended by SIGINT
	// (128+2); chaos run uses it for SIGTERM too.
	exitInterrupted = 130
	exitBadArgs     = 254
	exitInternal    = 255
)

// commands is filled by the init functions of the files that define them,
// so each subcommand lives in its own file.
var commands []*cli.Command

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	for _, c := range commands {
		c.OnUsageError = usageError
	}
	app := &cli.App{
		Name:           "chaos",
		Usage:          "Jepsen-style chaos testing for kvnode",
		Commands:       commands,
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {}, // run decides the exit code
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return badArgs("unknown command %q (see chaos --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Before: func(c *cli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return badArgs("--log-level: %v", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	err := app.Run(args)
	if err == nil {
		return exitValid
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "chaos:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "chaos:", err)
	// Errors that urfave/cli raises itself (unknown command, bad flag
	// values) are argument errors; ours carry their own code.
	return exitBadArgs
}

func usageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit(err.Error(), exitBadArgs)
}

// badArgs returns an error that exits with the bad-arguments code.
func badArgs(format string, a ...any) error {
	return cli.Exit(fmt.Sprintf(format, a...), exitBadArgs)
}

// internal returns an error that exits with the internal-error code.
func internal(err error) error {
	return cli.Exit(err.Error(), exitInternal)
}
