package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
)

func TestNewValidates(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no node addresses"},
		{Config{Nodes: map[replica.NodeID]string{0: "127.0.0.1:1"}}, "reserved"},
		{Config{Nodes: map[replica.NodeID]string{1: "nowhere"}}, "node 1"},
	}
	for _, c := range cases {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	a, err := New(Config{Nodes: map[replica.NodeID]string{1: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(Config{Nodes: map[replica.NodeID]string{1: "127.0.0.1:1"}})
	if a.ID() == 0 || a.ID() == b.ID() {
		t.Fatalf("client ids %d and %d: want random and distinct", a.ID(), b.ID())
	}
	c, _ := New(Config{Nodes: map[replica.NodeID]string{1: "127.0.0.1:1"}, ClientID: 42})
	if c.ID() != 42 {
		t.Fatalf("given client id not used: %d", c.ID())
	}
}

func TestErrorTypes(t *testing.T) {
	cause := errors.New("boom")
	var u error = &UnknownError{Op: "put", Cause: cause}
	var f error = &FailedError{Op: "put", Cause: cause}
	if !errors.Is(u, ErrUnknown) || errors.Is(u, ErrFailed) || !errors.Is(u, cause) {
		t.Errorf("UnknownError matching is wrong: %v", u)
	}
	if !errors.Is(f, ErrFailed) || errors.Is(f, ErrUnknown) || !errors.Is(f, cause) {
		t.Errorf("FailedError matching is wrong: %v", f)
	}
}

func TestCommandArguments(t *testing.T) {
	cl, _ := New(Config{Nodes: map[replica.NodeID]string{1: "127.0.0.1:1"}})
	for _, args := range [][]string{nil, {"frob"}, {"get"}, {"put", "k"}, {"cas", "k", "a"}, {"append", "k", "a", "b"}} {
		if _, err := cl.Command(context.Background(), args); err == nil || errors.Is(err, ErrFailed) || errors.Is(err, ErrUnknown) {
			t.Errorf("Command(%q): %v, want an argument error", args, err)
		}
	}
	cl.Close()
	if err := cl.Put(context.Background(), "k", "v"); !errors.Is(err, ErrFailed) {
		t.Errorf("put on a closed client: %v, want a definite failure", err)
	}
}

func TestFromCluster(t *testing.T) {
	c, err := config.Parse([]byte(`{"nodes":[{"id":1,"addr":"h1:1","client_addr":"h1:2"},{"id":2,"addr":"h2:1"}],"groups":[{"id":3,"members":[1,2]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := FromCluster(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Group != 3 || cfg.Nodes[1] != "h1:2" || cfg.Nodes[2] != "h2:1" || len(cfg.Nodes) != 2 {
		t.Fatalf("config %+v", cfg)
	}
	if _, err := FromCluster(c, 4); err == nil {
		t.Fatal("unknown group accepted")
	}
}
