package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "members",
		Usage:     "show or change a kvnode replica group's membership",
		ArgsUsage: "[NODE-ID,NODE-ID,...]",
		Description: "Without an argument, prints the group's configuration as its leader reports it.\n" +
			"With a comma-separated list of node IDs, makes it the group's next configuration\n" +
			"(add, remove or replace replicas; a node added must host the group, as a member or a\n" +
			"spare in the cluster file) through POST /membership at the leader's admin port, and\n" +
			"waits until the change is in force. Exits 0 when it is, 1 when the leader refused it\n" +
			"(a change in progress, or a protocol without membership changes), 2 when its outcome\n" +
			"is unknown (not seen in force before --timeout, or the leader's answer was lost: it may\n" +
			"still take effect), 254 on bad arguments.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cluster", Usage: "cluster file (JSON) with each node's admin_addr", Required: true},
			&cli.UintFlag{Name: "group", Value: 1, Usage: "replica group"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "deadline for the change"},
		},
		Action: membersAction,
	})
}

func membersAction(c *cli.Context) error {
	cl, err := config.Load(c.String("cluster"))
	if err != nil {
		return badArgs("--cluster: %v", err)
	}
	gid := replica.GroupID(c.Uint("group"))
	if _, ok := cl.Group(gid); !ok {
		return badArgs("--group: group %d is not in the cluster file", gid)
	}
	if c.Args().Len() > 1 {
		return badArgs("members takes one comma-separated list of node IDs (got %q)", c.Args().Slice())
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	admin := client.NewAdmin(cl, nil)
	if !c.Args().Present() {
		// Between elections nobody leads: ask again until --timeout.
		l, ok := client.Leading(admin.Views(ctx)[gid])
		for !ok && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			l, ok = client.Leading(admin.Views(ctx)[gid])
		}
		if !ok {
			return cli.Exit(fmt.Sprintf("group %d: no node reported itself leader within --timeout", gid), exitUnknown)
		}
		state := "in force"
		if !l.InForce() {
			state = fmt.Sprintf("pending, in force from log index %d (applied %d)", l.MembersFrom, l.Applied)
		}
		fmt.Fprintf(c.App.Writer, "group %d: members %s (leader %d, %s)\n", gid, idList(l.Members), l.ID, state)
		return nil
	}
	var ids []replica.NodeID
	for _, f := range strings.Split(c.Args().First(), ",") {
		id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil || id == 0 {
			return badArgs("members: want comma-separated node IDs, got %q", c.Args().First())
		}
		ids = append(ids, replica.NodeID(id))
	}
	if err := replica.ValidateMembers(ids, 64); err != nil {
		return badArgs("members: %v", err)
	}
	g, _ := cl.Group(gid)
	for _, id := range ids {
		if !slices.Contains(g.Hosts(), id) {
			return badArgs("members: node %d does not host group %d (its members and spares are %s)", id, gid, idList(g.Hosts()))
		}
	}
	err = admin.ChangeMembers(ctx, gid, ids)
	switch {
	case err == nil:
		fmt.Fprintf(c.App.Writer, "group %d: members %s in force\n", gid, idList(ids))
		return nil
	case errors.Is(err, client.ErrMembershipRefused):
		return cli.Exit(err.Error(), exitInvalid)
	}
	// Timed out, or the proposal's answer was lost: it may take effect.
	return cli.Exit(err.Error(), exitUnknown)
}

// idList renders node IDs as the comma-separated list members takes.
func idList(ids []replica.NodeID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, ",")
}
