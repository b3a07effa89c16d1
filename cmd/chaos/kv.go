package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "kv",
		Usage:     "run one key-value operation against a kvnode cluster",
		ArgsUsage: "get KEY | put KEY VALUE | append KEY SUFFIX | cas KEY OLD NEW",
		Description: "Exits 0 when the operation took effect, 1 when it certainly did not,\n" +
			"2 when its outcome is unknown (it may still take effect).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cluster", Usage: "cluster file (JSON)", Required: true},
			&cli.UintFlag{Name: "group", Value: 1, Usage: "replica group"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "deadline for the operation"},
		},
		Action: kvAction,
	})
}

func kvAction(c *cli.Context) error {
	cl, err := config.Load(c.String("cluster"))
	if err != nil {
		return badArgs("--cluster: %v", err)
	}
	cfg, err := client.FromCluster(cl, replica.GroupID(c.Uint("group")))
	if err != nil {
		return badArgs("--group: %v", err)
	}
	kc, err := client.New(cfg)
	if err != nil {
		return badArgs("%v", err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	out, err := kc.Command(ctx, c.Args().Slice())
	switch {
	case err == nil:
		fmt.Fprintln(c.App.Writer, out)
		return nil
	case errors.Is(err, client.ErrUnknown):
		return cli.Exit(err.Error(), exitUnknown)
	case errors.Is(err, client.ErrFailed):
		return cli.Exit(err.Error(), exitInvalid)
	default:
		return badArgs("%v", err)
	}
}
