package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

const good = `{
  "protocol": "paxos",
  "nodes": [
    {"id": 1, "name": "n1", "addr": "127.0.0.1:7001", "client_addr": "127.0.0.1:7101", "admin_addr": "127.0.0.1:7201"},
    {"id": 2, "addr": "127.0.0.1:7002"},
    {"id": 3, "name": "n3", "addr": "127.0.0.1:7003"}
  ],
  "groups": [{"id": 1, "members": [1, 2, 3]}, {"id": 2, "members": [2]}]
}`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.TickMS != DefaultTickMS || c.ElectionTicks != DefaultElectionTicks || c.HeartbeatTicks != DefaultHeartbeatTicks {
		t.Fatalf("defaults not applied: %+v", c)
	}
	n2, ok := c.Node(2)
	if !ok || n2.Name != "n2" || n2.ClientAddress() != "127.0.0.1:7002" {
		t.Fatalf("node 2: %+v", n2)
	}
	n1, _ := c.Node(1)
	if n1.ClientAddress() != "127.0.0.1:7101" {
		t.Fatalf("node 1 client address: %s", n1.ClientAddress())
	}
	if gs := c.GroupsOf(2); len(gs) != 2 {
		t.Fatalf("node 2 groups: %v", gs)
	}
	if gs := c.GroupsOf(1); len(gs) != 1 || gs[0].ID != 1 {
		t.Fatalf("node 1 groups: %v", gs)
	}
	c.Groups[1].Spares = []replica.NodeID{3}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if gs := c.GroupsOf(3); len(gs) != 2 || gs[1].ID != 2 {
		t.Fatalf("node 3, a spare of group 2: groups %v", gs)
	}
	if _, ok := c.Group(3); ok {
		t.Fatal("group 3 should not exist")
	}
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path + ".missing"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestParseErrors(t *testing.T) {
	mutate := func(f func(c map[string]any)) string {
		var c map[string]any
		if err := json.Unmarshal([]byte(good), &c); err != nil {
			t.Fatal(err)
		}
		f(c)
		b, _ := json.Marshal(c)
		return string(b)
	}
	node := func(c map[string]any, i int) map[string]any { return c["nodes"].([]any)[i].(map[string]any) }
	group := func(c map[string]any, i int) map[string]any { return c["groups"].([]any)[i].(map[string]any) }
	cases := []struct {
		name, in, want string
	}{
		{"not json", "{", "decode"},
		{"trailing", good + "{}", "trailing"},
		{"unknown field", mutate(func(c map[string]any) { c["grups"] = 1 }), "grups"},
		{"no nodes", mutate(func(c map[string]any) { c["nodes"] = []any{} }), "nodes:"},
		{"zero id", mutate(func(c map[string]any) { node(c, 1)["id"] = 0 }), "nodes[1].id"},
		{"dup id", mutate(func(c map[string]any) { node(c, 2)["id"] = 1 }), "nodes[2].id: duplicate"},
		{"dup name", mutate(func(c map[string]any) { node(c, 2)["name"] = "n1" }), "nodes[2].name"},
		{"missing addr", mutate(func(c map[string]any) { delete(node(c, 1), "addr") }), "nodes[1].addr"},
		{"bad port", mutate(func(c map[string]any) { node(c, 1)["addr"] = "127.0.0.1:99999" }), "nodes[1].addr"},
		{"no port", mutate(func(c map[string]any) { node(c, 1)["addr"] = "127.0.0.1" }), "nodes[1].addr"},
		{"empty host", mutate(func(c map[string]any) { node(c, 1)["addr"] = ":7000" }), "empty host"},
		{"dup addr", mutate(func(c map[string]any) { node(c, 1)["addr"] = "127.0.0.1:7001" }), "nodes[1].addr: address 127.0.0.1:7001 is also nodes[0].addr"},
		{"dup admin addr", mutate(func(c map[string]any) { node(c, 2)["admin_addr"] = "127.0.0.1:7101" }), "nodes[2].admin_addr"},
		{"no groups", mutate(func(c map[string]any) { delete(c, "groups") }), "groups:"},
		{"zero group", mutate(func(c map[string]any) { group(c, 0)["id"] = 0 }), "groups[0].id"},
		{"dup group", mutate(func(c map[string]any) { group(c, 1)["id"] = 1 }), "groups[1].id: duplicate"},
		{"empty group", mutate(func(c map[string]any) { group(c, 1)["members"] = []any{} }), "groups[1].members: group 2 has no members"},
		{"unknown member", mutate(func(c map[string]any) { group(c, 0)["members"] = []any{1, 9} }), "groups[0].members[1]: unknown node 9"},
		{"dup member", mutate(func(c map[string]any) { group(c, 0)["members"] = []any{1, 1} }), "groups[0].members[1]: node 1 listed twice"},
		{"unknown spare", mutate(func(c map[string]any) { group(c, 1)["spares"] = []any{9} }), "groups[1].spares[0]: unknown node 9"},
		{"spare member", mutate(func(c map[string]any) { group(c, 1)["spares"] = []any{1, 2} }), "groups[1].spares[1]: node 2 listed twice"},
		{"heartbeat", mutate(func(c map[string]any) { c["heartbeat_ticks"] = 40 }), "heartbeat_ticks"},
		{"tick", mutate(func(c map[string]any) { c["tick_ms"] = -1 }), "tick_ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParse checks that the loader never panics and that whatever it
// accepts is valid and survives a round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"nodes":[{"id":1,"addr":"a:1"}],"groups":[{"id":1,"members":[1]}]}`))
	f.Add([]byte(`{"nodes":[{"id":1,"addr":"a:1"},{"id":1,"addr":"a:1"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in)
		if err != nil {
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("accepted config does not re-parse: %v\n%s", err, b)
		}
		for _, g := range c.Groups {
			for _, m := range g.Members {
				if _, ok := c.Node(m); !ok {
					t.Fatalf("group %d has unknown member %d", g.ID, m)
				}
			}
		}
	})
}
