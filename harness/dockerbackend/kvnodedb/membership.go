package kvnodedb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/chaoskv/chaos/harness/dockerbackend"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/nemesis"
)

// settled returns nil when every group has a leader whose configuration
// is in force.
func (c *conn) settled(ctx context.Context) error {
	vs := c.adminAPI().Views(ctx)
	for _, g := range c.file.Groups {
		l, ok := client.Leading(vs[g.ID])
		switch {
		case !ok:
			return fmt.Errorf("group %d: no node reports itself leader", g.ID)
		case !l.InForce():
			return fmt.Errorf("group %d: a membership change to %v is still in progress at leader %d", g.ID, l.Members, l.ID)
		}
	}
	return nil
}

func (c *conn) adminAPI() *client.Admin { return client.NewAdmin(c.file, c.http) }

// names returns the node names of ids, sorted.
func (c *conn) names(ids []replica.NodeID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if n, ok := c.file.Node(id); ok {
			out = append(out, n.Name)
		} else {
			out = append(out, "node"+strconv.FormatUint(uint64(id), 10))
		}
	}
	slices.Sort(out)
	return out
}

// Memberships reports every group's configuration as its leader sees it,
// and the nodes that host it (members and spares).
func (c *conn) Memberships(ctx context.Context) ([]nemesis.GroupMembers, error) {
	vs := c.adminAPI().Views(ctx)
	if len(vs) == 0 {
		return nil, errors.New("no node answers GET /status")
	}
	var out []nemesis.GroupMembers
	for _, g := range c.file.Groups {
		gm := nemesis.GroupMembers{Group: uint32(g.ID), Hosts: c.names(g.Hosts())}
		if l, ok := client.Leading(vs[g.ID]); ok && l.Members != nil {
			gm.Members, gm.InForce = c.names(l.Members), l.InForce()
		}
		out = append(out, gm)
	}
	return out, nil
}

// ChangeMembers changes group's configuration to the named nodes at its
// leader and waits until it is in force (client.Admin.ChangeMembers).
func (c *conn) ChangeMembers(ctx context.Context, group uint32, members []string) error {
	var ids []replica.NodeID
	for _, m := range members {
		i := slices.IndexFunc(c.file.Nodes, func(n config.Node) bool { return n.Name == m })
		if i < 0 {
			return fmt.Errorf("membership: no node %q in the cluster file", m)
		}
		ids = append(ids, c.file.Nodes[i].ID)
	}
	return c.adminAPI().ChangeMembers(ctx, replica.GroupID(group), ids)
}

// Decorate adds the membership fault to the backend's target when the
// groups have spares; otherwise the target stays as it is.
func (c *conn) Decorate(t *dockerbackend.Target) nemesis.Target {
	if !c.members {
		return t
	}
	return memberTarget{Target: t, conn: c}
}

// memberTarget is the backend's target plus membership changes.
type memberTarget struct {
	*dockerbackend.Target
	conn *conn
}

var _ nemesis.Memberer = memberTarget{}

// Memberships reports every group's configuration.
func (t memberTarget) Memberships(ctx context.Context) ([]nemesis.GroupMembers, error) {
	return t.conn.Memberships(ctx)
}

// ChangeMembers changes a group's configuration.
func (t memberTarget) ChangeMembers(ctx context.Context, group uint32, members []string) error {
	return t.conn.ChangeMembers(ctx, group, members)
}

// Supports accepts membership and forwards every other kind to the
// backend's target.
func (t memberTarget) Supports(ctx context.Context, k nemesis.Kind) error {
	if k == nemesis.Membership {
		return nil
	}
	return t.Target.Supports(ctx, k)
}
