// Package config loads and validates a kvnode cluster file.
//
// A cluster file is JSON:
//
//	{
//	  "protocol": "paxos",
//	  "nodes": [
//	    {"id": 1, "name": "n1", "addr": "10.0.0.1:7000", "client_addr": "10.0.0.1:7001", "admin_addr": "10.0.0.1:7080"}
//	  ],
//	  "groups": [{"id": 1, "members": [1, 2, 3]}]
//	}
//
// addr is where peers reach the node; client_addr (optional) is a second
// listener for clients; both accept every frame kind. admin_addr (optional)
// serves /healthz, /status and /metrics. The timing fields (tick_ms,
// election_ticks, heartbeat_ticks) are optional and default to 10 ms, 30
// and 3 ticks.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Default timing.
const (
	DefaultTickMS         = 10
	DefaultElectionTicks  = 30
	DefaultHeartbeatTicks = 3
	DefaultProtocol       = "paxos"
)

// Node is one process of the cluster.
type Node struct {
	ID         replica.NodeID `json:"id"`
	Name       string         `json:"name"`
	Addr       string         `json:"addr"`
	ClientAddr string         `json:"client_addr,omitempty"`
	AdminAddr  string         `json:"admin_addr,omitempty"`
}

// ClientAddress is where clients should connect: ClientAddr, or Addr when
// there is no separate client listener.
func (n *Node) ClientAddress() string {
	if n.ClientAddr != "" {
		return n.ClientAddr
	}
	return n.Addr
}

// Group is one replica group.
type Group struct {
	ID      replica.GroupID  `json:"id"`
	Members []replica.NodeID `json:"members"`
	// Spares host the group outside its initial configuration: they start
	// empty and wait for a membership change to add them.
	Spares []replica.NodeID `json:"spares,omitempty"`
}

// Hosts returns every node that runs a replica of the group: its initial
// members, then its spares. A membership change moves the group's
// configuration within these nodes, so a client that knows them all can
// reach the group whatever its configuration now.
func (g Group) Hosts() []replica.NodeID {
	return append(slices.Clone(g.Members), g.Spares...)
}

// Cluster is a whole cluster file.
type Cluster struct {
	Protocol       string  `json:"protocol,omitempty"`
	TickMS         int     `json:"tick_ms,omitempty"`
	ElectionTicks  int     `json:"election_ticks,omitempty"`
	HeartbeatTicks int     `json:"heartbeat_ticks,omitempty"`
	Nodes          []Node  `json:"nodes"`
	Groups         []Group `json:"groups"`
	// ShardController, when not zero, names the group that runs the shard
	// controller; the cluster is then sharded and every other group is a
	// shard group.
	ShardController replica.GroupID `json:"shard_controller,omitempty"`
}

// Load reads and validates the cluster file at path.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster file: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("cluster file %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a cluster file, filling in defaults.
// Unknown fields are errors, so a misspelt field is never silently ignored.
func Parse(data []byte) (*Cluster, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Cluster
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode: trailing data after the cluster object")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate fills in defaults and reports the first problem, naming the
// field.
func (c *Cluster) Validate() error {
	if c.Protocol == "" {
		c.Protocol = DefaultProtocol
	}
	if c.TickMS == 0 {
		c.TickMS = DefaultTickMS
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	switch {
	case c.TickMS < 1 || c.TickMS > 10000:
		return fmt.Errorf("tick_ms: %d is outside 1..10000", c.TickMS)
	case c.HeartbeatTicks < 1 || c.HeartbeatTicks >= c.ElectionTicks:
		return fmt.Errorf("heartbeat_ticks: need 0 < heartbeat_ticks (%d) < election_ticks (%d)", c.HeartbeatTicks, c.ElectionTicks)
	case c.ElectionTicks > 100000:
		return fmt.Errorf("election_ticks: %d is too large", c.ElectionTicks)
	}
	if len(c.Nodes) == 0 {
		return errors.New("nodes: the cluster has no nodes")
	}
	ids := map[replica.NodeID]bool{}
	names := map[string]int{}
	addrs := map[string]string{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		where := fmt.Sprintf("nodes[%d]", i)
		if n.ID == 0 {
			return fmt.Errorf("%s.id: must be non-zero", where)
		}
		if ids[n.ID] {
			return fmt.Errorf("%s.id: duplicate node id %d", where, n.ID)
		}
		ids[n.ID] = true
		if n.Name == "" {
			n.Name = "n" + strconv.FormatUint(uint64(n.ID), 10)
		}
		if j, dup := names[n.Name]; dup {
			return fmt.Errorf("%s.name: %q is also the name of nodes[%d]", where, n.Name, j)
		}
		names[n.Name] = i
		for _, a := range []struct {
			field, addr string
			required    bool
		}{{"addr", n.Addr, true}, {"client_addr", n.ClientAddr, false}, {"admin_addr", n.AdminAddr, false}} {
			if a.addr == "" && !a.required {
				continue
			}
			field := where + "." + a.field
			if err := CheckAddr(a.addr); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			if other, dup := addrs[a.addr]; dup {
				return fmt.Errorf("%s: address %s is also %s", field, a.addr, other)
			}
			addrs[a.addr] = field
		}
	}
	if len(c.Groups) == 0 {
		return errors.New("groups: the cluster has no replica groups")
	}
	gids := map[replica.GroupID]bool{}
	for i, g := range c.Groups {
		where := fmt.Sprintf("groups[%d]", i)
		if g.ID == 0 {
			return fmt.Errorf("%s.id: must be non-zero", where)
		}
		if gids[g.ID] {
			return fmt.Errorf("%s.id: duplicate group id %d", where, g.ID)
		}
		gids[g.ID] = true
		if len(g.Members) == 0 {
			return fmt.Errorf("%s.members: group %d has no members", where, g.ID)
		}
		// A node hosts a group once: as a member or as a spare.
		seen := map[replica.NodeID]bool{}
		for _, list := range []struct {
			field string
			nodes []replica.NodeID
		}{{"members", g.Members}, {"spares", g.Spares}} {
			for j, m := range list.nodes {
				if !ids[m] {
					return fmt.Errorf("%s.%s[%d]: unknown node %d", where, list.field, j, m)
				}
				if seen[m] {
					return fmt.Errorf("%s.%s[%d]: node %d listed twice", where, list.field, j, m)
				}
				seen[m] = true
			}
		}
	}
	if c.ShardController != 0 {
		if _, ok := c.Group(c.ShardController); !ok {
			return fmt.Errorf("shard_controller: group %d is not in groups", c.ShardController)
		}
		if len(c.Groups) < 2 {
			return errors.New("shard_controller: a sharded cluster needs at least one shard group besides the controller")
		}
	}
	return nil
}

// CheckAddr checks that a is host:port with a non-empty host and a port in
// 1..65535.
func CheckAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("bad address %q: %w", a, err)
	}
	if host == "" {
		return fmt.Errorf("bad address %q: empty host", a)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("bad address %q: port must be 1..65535", a)
	}
	return nil
}

// Node returns the node with the given id.
func (c *Cluster) Node(id replica.NodeID) (*Node, bool) {
	for i := range c.Nodes {
		if c.Nodes[i].ID == id {
			return &c.Nodes[i], true
		}
	}
	return nil, false
}

// Group returns the group with the given id.
func (c *Cluster) Group(id replica.GroupID) (*Group, bool) {
	for i := range c.Groups {
		if c.Groups[i].ID == id {
			return &c.Groups[i], true
		}
	}
	return nil, false
}

// GroupsOf returns the groups that node id is a member or a spare of.
func (c *Cluster) GroupsOf(id replica.NodeID) []Group {
	var out []Group
	for _, g := range c.Groups {
		if slices.Contains(g.Members, id) || slices.Contains(g.Spares, id) {
			out = append(out, g)
		}
	}
	return out
}

// Tick is the duration of one core tick.
func (c *Cluster) Tick() time.Duration { return time.Duration(c.TickMS) * time.Millisecond }
