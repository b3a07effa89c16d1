package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/kvnode/server/wire"
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
	c, err := config.Parse([]byte(`{"nodes":[{"id":1,"addr":"h1:1","client_addr":"h1:2"},{"id":2,"addr":"h2:1"},{"id":4,"addr":"h4:1"}],"groups":[{"id":3,"members":[1,2],"spares":[4]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := FromCluster(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The spare is listed too: a membership change may make it a member.
	if cfg.Group != 3 || cfg.Nodes[1] != "h1:2" || cfg.Nodes[2] != "h2:1" || cfg.Nodes[4] != "h4:1" || len(cfg.Nodes) != 3 {
		t.Fatalf("config %+v", cfg)
	}
	if _, err := FromCluster(c, 4); err == nil {
		t.Fatal("unknown group accepted")
	}
}

// fakeNode serves the client protocol with answer deciding each response;
// a nil answer closes the connection after reading the request.
func fakeNode(t testing.TB, answer func(wire.Request) *wire.Response) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				var buf, out []byte
				for {
					k, p, nb, err := wire.ReadFrame(r, buf)
					buf = nb
					if err != nil || k != wire.KindRequest {
						return
					}
					q, err := wire.DecodeRequest(p)
					if err != nil {
						return
					}
					resp := answer(q)
					if resp == nil {
						return
					}
					resp.ID = q.ID
					out, _ = wire.AppendFrame(out[:0], wire.KindResponse, resp.Append)
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestClientShellFollowsTheRouter(t *testing.T) {
	var seqs []uint64
	var mu sync.Mutex
	okReply := kv.Reply{Ok: true}.Encode()
	n1 := fakeNode(t, func(q wire.Request) *wire.Response {
		mu.Lock()
		seqs = append(seqs, q.Seq)
		mu.Unlock()
		return &wire.Response{Status: wire.StatusNotLeader, Leader: 2}
	})
	n2 := fakeNode(t, func(q wire.Request) *wire.Response {
		mu.Lock()
		seqs = append(seqs, q.Seq)
		mu.Unlock()
		return &wire.Response{Status: wire.StatusOK, Value: okReply}
	})
	// Client id 3 over nodes {1, 2} starts at node 2 (3 % 2 = 1): make
	// it start at node 1 with id 2.
	cl, err := New(Config{Nodes: map[replica.NodeID]string{1: n1, 2: n2}, ClientID: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Put(ctx, "k", "w"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seqs) != "[1 1 2]" || cl.Leader() != 2 {
		t.Fatalf("seqs %v leader %d, want [1 1 2] (a redirect with the same seq, then straight to node 2) and leader 2", seqs, cl.Leader())
	}
}

func TestClientShellOutcomes(t *testing.T) {
	hangup := fakeNode(t, func(wire.Request) *wire.Response { return nil })
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	silent := fakeNode(t, func(wire.Request) *wire.Response { <-quit; return nil })
	refuse := fakeNode(t, func(wire.Request) *wire.Response { return &wire.Response{Status: wire.StatusNotLeader} })
	cases := []struct {
		name   string
		addr   string
		ctx    func() (context.Context, context.CancelFunc)
		wantIs error
	}{
		{"connection closed after the request", hangup, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, ErrUnknown},
		{"cancelled while waiting, no deadline", silent, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, ErrUnknown},
		{"refused until the deadline", refuse, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, ErrFailed},
		{"cancelled before anything was sent", silent, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, ErrFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, err := New(Config{Nodes: map[replica.NodeID]string{1: c.addr}})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := c.ctx()
			defer cancel()
			start := time.Now()
			err = cl.Put(ctx, "k", "v")
			if !errors.Is(err, c.wantIs) {
				t.Fatalf("got %v, want %v", err, c.wantIs)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}
