package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

// fakeAdmin serves GET /status and POST /membership for one node of
// group 1, from a status the test controls.
type fakeAdmin struct {
	mu     sync.Mutex
	st     replica.Status
	posts  []string
	answer int // the POST's status code
	onPost func(*replica.Status)
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/status":
		json.NewEncoder(w).Encode(map[string]any{"groups": []GroupView{{Group: 1, Status: f.st}}})
	case r.Method == http.MethodPost && r.URL.Path == "/membership":
		f.posts = append(f.posts, r.URL.Query().Get("members"))
		if f.answer != http.StatusOK {
			http.Error(w, "no", f.answer)
			return
		}
		if f.onPost != nil {
			f.onPost(&f.st)
		}
		w.Write([]byte("proposed\n"))
	default:
		http.NotFound(w, r)
	}
}

// adminCluster starts a fake admin endpoint per node and returns the
// cluster file naming them.
func adminCluster(t *testing.T, nodes ...*fakeAdmin) *config.Cluster {
	c := &config.Cluster{Groups: []config.Group{{ID: 1}}}
	for i, f := range nodes {
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		id := replica.NodeID(i + 1)
		c.Nodes = append(c.Nodes, config.Node{ID: id, Addr: "127.0.0.1:1", AdminAddr: strings.TrimPrefix(srv.URL, "http://")})
		c.Groups[0].Members = append(c.Groups[0].Members, id)
	}
	return c
}

// TestAdminChangeMembersWaitsForTheLeader: node 1 was removed and still
// reports the configuration it left, in force; asked to go back to that
// configuration, the change is proposed at the leader (node 2) and is done
// only once the leader has it in force, not when node 1's stale view
// matches.
func TestAdminChangeMembersWaitsForTheLeader(t *testing.T) {
	removed := &fakeAdmin{st: replica.Status{ID: 1, Leader: 2, Epoch: 4, Applied: 100, Members: []replica.NodeID{1, 2, 3}, MembersFrom: 10}}
	var inForceAt time.Time
	leader := &fakeAdmin{answer: http.StatusOK, st: replica.Status{ID: 2, Leader: 2, Epoch: 5, Applied: 200, Members: []replica.NodeID{2, 3, 4}, MembersFrom: 150}}
	leader.onPost = func(st *replica.Status) {
		st.Members, st.MembersFrom = []replica.NodeID{1, 2, 3}, st.Applied+64
		go func() {
			time.Sleep(200 * time.Millisecond)
			leader.mu.Lock()
			leader.st.Applied += 64
			inForceAt = time.Now()
			leader.mu.Unlock()
		}()
	}
	follower := &fakeAdmin{st: replica.Status{ID: 3, Leader: 2, Epoch: 5, Applied: 190, Members: []replica.NodeID{2, 3, 4}, MembersFrom: 150}}
	c := adminCluster(t, removed, leader, follower, &fakeAdmin{st: replica.Status{ID: 4, Leader: 2, Epoch: 5}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := NewAdmin(c, nil).ChangeMembers(ctx, 1, []replica.NodeID{3, 1, 2}); err != nil {
		t.Fatal(err)
	}
	leader.mu.Lock()
	defer leader.mu.Unlock()
	if inForceAt.IsZero() {
		t.Fatal("ChangeMembers returned before the leader had the change in force")
	}
	if len(leader.posts) != 1 || leader.posts[0] != "1,2,3" || len(removed.posts)+len(follower.posts) != 0 {
		t.Fatalf("posts: leader %q, removed %q, follower %q", leader.posts, removed.posts, follower.posts)
	}
}

func TestAdminChangeMembersRefused(t *testing.T) {
	leader := &fakeAdmin{answer: http.StatusConflict, st: replica.Status{ID: 1, Leader: 1, Epoch: 1, Members: []replica.NodeID{1}, MembersFrom: 1}}
	c := adminCluster(t, leader)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a := NewAdmin(c, nil)
	if err := a.ChangeMembers(ctx, 1, []replica.NodeID{1}); !errors.Is(err, ErrMembershipRefused) {
		t.Fatalf("409: %v, want ErrMembershipRefused", err)
	}
	for _, bad := range [][]replica.NodeID{{1, 1}, {7}, nil} {
		if err := a.ChangeMembers(ctx, 1, bad); err == nil || errors.Is(err, ErrMembershipRefused) {
			t.Errorf("members %v: %v, want an argument error", bad, err)
		}
	}
	if err := a.ChangeMembers(ctx, 9, []replica.NodeID{1}); err == nil {
		t.Error("unknown group accepted")
	}
	// Nobody leads: the change is never proposed, and the error says so.
	leader.mu.Lock()
	leader.st.Leader = 0
	leader.mu.Unlock()
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := a.ChangeMembers(short, 1, []replica.NodeID{1}); err == nil || !strings.Contains(err.Error(), "no leader took the change") {
		t.Fatalf("without a leader: %v", err)
	}
}
