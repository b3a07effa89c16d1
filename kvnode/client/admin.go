package client

import (
	"context"
	"encoding/json"
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

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

// Admin talks to a cluster's admin endpoints (each node's admin_addr in
// the cluster file): it reads what the nodes report of their groups and
// changes a group's membership at its leader. Its methods are safe for
// concurrent use.
type Admin struct {
	cluster *config.Cluster
	http    *http.Client
}

// NewAdmin returns an Admin for the cluster c; hc nil means a client
// whose requests time out after 2s.
func NewAdmin(c *config.Cluster, hc *http.Client) *Admin {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	return &Admin{cluster: c, http: hc}
}

// GroupView is what one node's GET /status reports of one of its groups.
type GroupView struct {
	Group replica.GroupID `json:"group"`
	replica.Status
}

// InForce reports whether the view's configuration governs its log.
func (v GroupView) InForce() bool { return v.Members != nil && v.MembersFrom <= v.Applied+1 }

// StatusTimeout bounds one round of Views.
const StatusTimeout = time.Second

// Views asks every node for its /status, all at once so that a paused or
// cut-off node costs one timeout rather than one each, and returns per
// group what each node that answered reports. Nodes that do not answer
// are left out.
func (a *Admin) Views(ctx context.Context) map[replica.GroupID][]GroupView {
	ctx, cancel := context.WithTimeout(ctx, StatusTimeout)
	defer cancel()
	type status struct {
		Groups []GroupView `json:"groups"`
	}
	sts := make([]status, len(a.cluster.Nodes))
	var wg sync.WaitGroup
	for i, n := range a.cluster.Nodes {
		if n.AdminAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.getJSON(ctx, n.AdminAddr, "/status", &sts[i]); err != nil {
				sts[i] = status{}
			}
		}()
	}
	wg.Wait()
	out := map[replica.GroupID][]GroupView{}
	for _, st := range sts {
		for _, g := range st.Groups {
			out[g.Group] = append(out[g.Group], g)
		}
	}
	return out
}

// Leading returns the view of the replica that leads in the highest
// epoch among vs: the configuration the group serves under.
func Leading(vs []GroupView) (GroupView, bool) {
	var best GroupView
	found := false
	for _, v := range vs {
		if v.Leader == v.ID && v.ID != 0 && (!found || v.Epoch > best.Epoch) {
			best, found = v, true
		}
	}
	return best, found
}

// errMisdirected is a 421 from a replica that does not lead.
var errMisdirected = errors.New("not the leader")

// ErrMembershipRefused is a change the group's leader refused: one is in
// progress, or the protocol has no membership changes.
var ErrMembershipRefused = errors.New("membership change refused")

// memberPoll paces the polls of a change in progress.
const memberPoll = 50 * time.Millisecond

// ChangeMembers proposes members as group g's next configuration at its
// leader, through POST /membership, and waits until the leader reports it
// in force. A replica that is no longer leader answers 421; the change is
// then proposed at whoever leads next, until ctx ends. A refusal wraps
// ErrMembershipRefused; a change proposed but not in force when ctx ends
// may still take effect.
func (a *Admin) ChangeMembers(ctx context.Context, g replica.GroupID, members []replica.NodeID) error {
	if _, ok := a.cluster.Group(g); !ok {
		return fmt.Errorf("membership: group %d is not in the cluster file", g)
	}
	ids := slices.Sorted(slices.Values(members))
	if err := replica.ValidateMembers(ids, 64); err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	for _, id := range ids {
		if _, ok := a.cluster.Node(id); !ok {
			return fmt.Errorf("membership: node %d is not in the cluster file", id)
		}
	}
	proposed := false
	var last error
	for {
		l, ok := Leading(a.Views(ctx)[g])
		// Only the leader's view counts: a removed replica is sent no
		// more of the log and keeps reporting the configuration it was
		// removed from, which may equal the one asked for now.
		if proposed && ok && slices.Equal(l.Members, ids) && l.InForce() {
			return nil
		}
		if ok && !proposed {
			switch last = a.propose(ctx, l.ID, g, ids); {
			case last == nil:
				proposed = true
			case !errors.Is(last, errMisdirected):
				return last
			}
		}
		select {
		case <-ctx.Done():
			if !proposed {
				return fmt.Errorf("membership: group %d to %v: no leader took the change: %w (last: %v)", g, ids, ctx.Err(), last)
			}
			return fmt.Errorf("membership: group %d to %v: proposed, not yet in force: %w", g, ids, ctx.Err())
		case <-time.After(memberPoll):
		}
	}
}

func (a *Admin) propose(ctx context.Context, at replica.NodeID, g replica.GroupID, ids []replica.NodeID) error {
	n, ok := a.cluster.Node(at)
	if !ok {
		return fmt.Errorf("membership: leader %d is not in the cluster file", at)
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	q := url.Values{"group": {strconv.FormatUint(uint64(g), 10)}, "members": {strings.Join(s, ",")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.AdminAddr+"/membership?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("membership at node %d: %w", at, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusMisdirectedRequest:
		return fmt.Errorf("membership at node %d: %w", at, errMisdirected)
	case http.StatusConflict:
		return fmt.Errorf("membership at node %d: %w: %s", at, ErrMembershipRefused, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("membership at node %d: POST /membership: %s: %s", at, resp.Status, strings.TrimSpace(string(body)))
}

// Healthy asks the node at addr (an admin address) whether it is up,
// through GET /healthz.
func (a *Admin) Healthy(ctx context.Context, addr string) error {
	_, err := a.get(ctx, addr, "/healthz")
	return err
}

// Status returns the node at addr's GET /status as it sent it (JSON).
func (a *Admin) Status(ctx context.Context, addr string) ([]byte, error) {
	return a.get(ctx, addr, "/status")
}

// SetClockOffset sets the offset the node at addr adds to its wall-clock
// reads, through POST /clock-offset.
func (a *Admin) SetClockOffset(ctx context.Context, addr string, offset time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/clock-offset?offset="+url.QueryEscape(offset.String()), nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /clock-offset: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (a *Admin) getJSON(ctx context.Context, addr, path string, into any) error {
	body, err := a.get(ctx, addr, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

func (a *Admin) get(ctx context.Context, addr, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return body, nil
}
