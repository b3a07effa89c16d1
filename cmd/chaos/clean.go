package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/docker"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "clean",
		Usage: "remove Docker containers and networks that test runs left behind",
		Description: "Finds the objects chaos created by their labels and removes them: every run's, or\n" +
			"one run's with --run. --images also removes the node images chaos imported.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "run", Usage: "only this run id (the chaos.run label)"},
			&cli.BoolFlag{Name: "images", Usage: "also remove the node images"},
		},
		Action: cleanAction,
	})
}

func cleanAction(c *cli.Context) error {
	if c.Args().Present() {
		return badArgs("clean takes no arguments (got %q)", c.Args().Slice())
	}
	d, err := docker.Connect(c.Context)
	if err != nil {
		return internal(err)
	}
	defer d.Close()
	rep, err := d.Clean(c.Context, c.String("run"), c.Bool("images"))
	fmt.Fprintf(c.App.Writer, "removed %d containers, %d networks, %d images, %d stale lazyfs mounts\n", rep.Containers, rep.Networks, rep.Images, rep.Mounts)
	if err != nil {
		return internal(fmt.Errorf("clean: %w", err))
	}
	return nil
}
