package kvnodedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaoskv/chaos/harness/dockerbackend"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// groupView is what one node's /status says of one of its groups.
type groupView struct {
	Group       replica.GroupID  `json:"group"`
	ID          replica.NodeID   `json:"id"`
	Leader      replica.NodeID   `json:"leader"`
	Epoch       uint64           `json:"epoch"`
	Applied     uint64           `json:"applied"`
	Members     []replica.NodeID `json:"members"`
	MembersFrom uint64           `json:"members_from"`
}

// inForce reports whether the view's configuration governs its log.
func (v groupView) inForce() bool { return v.Members != nil && v.MembersFrom <= v.Applied+1 }

// views asks every node for its /status, all at once so that a paused
// node costs one timeout rather than one each, and returns per group what
// each node that answered reports.
func (c *conn) views(ctx context.Context) map[replica.GroupID][]groupView {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	type status struct {
		Groups []groupView `json:"groups"`
	}
	sts := make([]status, len(c.file.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.file.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.get(ctx, n.AdminAddr, "/status", &sts[i]); err != nil {
				sts[i] = status{}
			}
		}()
	}
	wg.Wait()
	out := map[replica.GroupID][]groupView{}
	for _, st := range sts {
		for _, g := range st.Groups {
			out[g.Group] = append(out[g.Group], g)
		}
	}
	return out
}

// statusTimeout bounds one round of /status requests.
const statusTimeout = time.Second

// leaderView returns the view of the replica that leads in the highest
// epoch among vs: the configuration clients are served under.
func leaderView(vs []groupView) (groupView, bool) {
	var best groupView
	found := false
	for _, v := range vs {
		if v.Leader == v.ID && v.ID != 0 && (!found || v.Epoch > best.Epoch) {
			best, found = v, true
		}
	}
	return best, found
}

// settled returns nil when every group has a leader whose configuration
// is in force.
func (c *conn) settled(ctx context.Context) error {
	vs := c.views(ctx)
	for _, g := range c.file.Groups {
		l, ok := leaderView(vs[g.ID])
		switch {
		case !ok:
			return fmt.Errorf("group %d: no node reports itself leader", g.ID)
		case !l.inForce():
			return fmt.Errorf("group %d: a membership change to %v is still in progress at leader %d", g.ID, l.Members, l.ID)
		}
	}
	return nil
}

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
	vs := c.views(ctx)
	if len(vs) == 0 {
		return nil, errors.New("no node answers GET /status")
	}
	var out []nemesis.GroupMembers
	for _, g := range c.file.Groups {
		gm := nemesis.GroupMembers{Group: uint32(g.ID), Hosts: c.names(g.Hosts())}
		if l, ok := leaderView(vs[g.ID]); ok && l.Members != nil {
			gm.Members, gm.InForce = c.names(l.Members), l.inForce()
		}
		out = append(out, gm)
	}
	return out, nil
}

// memberPoll paces the polls of a change in progress.
const memberPoll = 50 * time.Millisecond

// ChangeMembers proposes members as group's next configuration at its
// leader, through POST /membership, and waits until the leader reports it
// in force. A replica that is no longer leader answers 421; the change is
// then proposed at whoever leads next, until ctx ends.
func (c *conn) ChangeMembers(ctx context.Context, group uint32, members []string) error {
	gid := replica.GroupID(group)
	if _, ok := c.file.Group(gid); !ok {
		return fmt.Errorf("membership: group %d is not in the cluster file", group)
	}
	var ids []replica.NodeID
	for _, m := range members {
		id, ok := c.nodeID(m)
		if !ok {
			return fmt.Errorf("membership: no node %q in the cluster file", m)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	proposed := false
	var last error
	for {
		l, ok := leaderView(c.views(ctx)[gid])
		// Only the leader's view counts: a removed replica is sent no
		// more of the log and keeps reporting the configuration it was
		// removed from, which may equal the one asked for now.
		if proposed && ok && slices.Equal(l.Members, ids) && l.inForce() {
			return nil
		}
		if ok && !proposed {
			switch last = c.propose(ctx, l.ID, gid, ids); {
			case last == nil:
				proposed = true
			case !errors.Is(last, errMisdirected):
				// A refusal (a change in progress, no membership changes):
				// the nemesis records it and tries again at its next step.
				return last
			}
		}
		select {
		case <-ctx.Done():
			if !proposed {
				return fmt.Errorf("membership: group %d to %v: no leader took the change: %w (last: %v)", group, members, ctx.Err(), last)
			}
			return fmt.Errorf("membership: group %d to %v: proposed, not yet in force: %w", group, members, ctx.Err())
		case <-time.After(memberPoll):
		}
	}
}

// errMisdirected is a 421 from a replica that does not lead.
var errMisdirected = errors.New("not the leader")

func (c *conn) propose(ctx context.Context, at replica.NodeID, gid replica.GroupID, ids []replica.NodeID) error {
	n, ok := c.file.Node(at)
	if !ok {
		return fmt.Errorf("membership: leader %d is not in the cluster file", at)
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	q := url.Values{"group": {strconv.FormatUint(uint64(gid), 10)}, "members": {strings.Join(s, ",")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.AdminAddr+"/membership?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("membership at %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusMisdirectedRequest:
		return fmt.Errorf("membership at %s: %w", n.Name, errMisdirected)
	}
	return fmt.Errorf("membership at %s: POST /membership: %s: %s", n.Name, resp.Status, strings.TrimSpace(string(body)))
}

func (c *conn) nodeID(name string) (replica.NodeID, bool) {
	for _, n := range c.file.Nodes {
		if n.Name == name {
			return n.ID, true
		}
	}
	return 0, false
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
