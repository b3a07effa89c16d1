package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
)

// TestMembershipReplaceOverAdmin replaces a replica through POST
// /membership, with each core that changes membership: a spare node that
// started empty joins, catches up, and then holds a majority with the
// leader after the replaced node stops.
func TestMembershipReplaceOverAdmin(t *testing.T) {
	for _, name := range []string{"paxos", "vr"} {
		t.Run(name, func(t *testing.T) {
			p, err := protocols.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			membershipReplaceOverAdmin(t, p)
		})
	}
}

func membershipReplaceOverAdmin(t *testing.T, proto server.Protocol) {
	c := testCluster(t, 4, true)
	c.Groups[0].Members = []replica.NodeID{1, 2, 3}
	c.Groups[0].Spares = []replica.NodeID{4}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	rs := startCluster(t, c, dataDirs(t, 4), proto)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := newClient(t, c)
	if err := cl.Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	lead := cl.Leader()
	post := func(id replica.NodeID, q string) (int, string) {
		nd, _ := c.Node(id)
		resp, err := http.Post("http://"+nd.AdminAddr+"/membership?"+q, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		fmt.Fscan(resp.Body, &b)
		return resp.StatusCode, b.String()
	}
	if code, _ := post(lead, "group=1&members=1,x"); code != http.StatusBadRequest {
		t.Fatalf("bad member list: status %d", code)
	}
	follower := replica.NodeID(1 + lead%3)
	gone := replica.NodeID(1 + follower%3)
	if gone == lead {
		t.Fatalf("test bug: leader %d, follower %d, gone %d", lead, follower, gone)
	}
	members := []replica.NodeID{lead, follower, 4}
	slices.Sort(members)
	q := url.Values{"group": {"1"}, "members": {strings.Trim(strings.Join(strings.Fields(fmt.Sprint(members)), ","), "[]")}}.Encode()
	if code, _ := post(follower, q); code != http.StatusMisdirectedRequest {
		t.Fatalf("change at a follower: status %d", code)
	}
	if code, body := post(lead, q); code != http.StatusOK {
		t.Fatalf("change at the leader: status %d %s", code, body)
	}
	for {
		st := rs[3].node.Status()[1]
		if slices.Equal(st.Members, members) && st.MembersFrom <= st.Applied+1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the new configuration never took effect at node 4: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Of the new configuration, the follower stops too: the leader and
	// the new replica are the majority that must commit.
	for _, id := range []replica.NodeID{gone, follower} {
		r := rs[id-1]
		r.cancel()
		err := <-r.done
		r.done <- err // for the cleanup, which waits for it too
	}
	if err := cl.Put(ctx, "k", "after"); err != nil {
		t.Fatalf("put with the leader and the new replica: %v", err)
	}
	for ctx.Err() == nil && rs[3].node.Status()[1].Applied < rs[lead-1].node.Status()[1].Applied {
		time.Sleep(10 * time.Millisecond)
	}
	if a, b := rs[3].node.Status()[1].Applied, rs[lead-1].node.Status()[1].Applied; a != b {
		t.Fatalf("new replica applied %d, leader %d", a, b)
	}
}

// TestClientsLeaveARemovedLeader replaces the leader itself by a spare:
// a client that knew the old leader, and one opened from the cluster file
// afterwards, both reach the new configuration's leader, also once the
// removed node is gone for good.
func TestClientsLeaveARemovedLeader(t *testing.T) {
	c := testCluster(t, 4, true)
	c.Groups[0].Members = []replica.NodeID{1, 2, 3}
	c.Groups[0].Spares = []replica.NodeID{4}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	rs := startCluster(t, c, dataDirs(t, 4), paxosProtocol(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := newClient(t, c)
	if err := cl.Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	lead := cl.Leader()
	var members []replica.NodeID
	for _, id := range []replica.NodeID{1, 2, 3, 4} {
		if id != lead {
			members = append(members, id)
		}
	}
	// Through the admin client, as chaos run and chaos members do: it
	// finds the leader and returns once the leader has the change in
	// force.
	if err := client.NewAdmin(c, nil).ChangeMembers(ctx, 1, members); err != nil {
		t.Fatalf("replace leader %d: %v", lead, err)
	}
	if st := rs[lead-1].node.Status()[1]; !slices.Equal(st.Members, members) || st.MembersFrom > st.Applied+1 {
		t.Fatalf("the change returned before it took effect at the old leader: %+v", st)
	}
	r := rs[lead-1]
	r.cancel()
	err := <-r.done
	r.done <- err // for the cleanup, which waits for it too
	if err := cl.Put(ctx, "k", "after"); err != nil {
		t.Fatalf("put after the leader %d was removed: %v", lead, err)
	}
	if l := cl.Leader(); l == lead || !slices.Contains(members, l) {
		t.Fatalf("client follows node %d, want a member of %v", l, members)
	}
	fresh := newClient(t, c)
	if v, err := fresh.Get(ctx, "k"); err != nil || v.Value != "after" {
		t.Fatalf("fresh client: %+v, %v", v, err)
	}
}
