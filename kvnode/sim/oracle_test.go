package sim

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// oracleRun drives a 3-node group of proto, built by factory, through puts,
// a leader crash and a restart of every node, and returns the safety
// violation it met, if any.
func oracleRun(t *testing.T, proto string, seed int64, mod func(*ClusterConfig)) *Violation {
	t.Helper()
	c := newKVCluster(t, proto, seed, 3, mod)
	cl := c.NewClient(ClientConfig{Deadline: 2 * time.Second})
	puts := 0
	put := func(n int) {
		for range n {
			if c.Err() != nil {
				return
			}
			done := false
			if err := cl.Invoke(putOp("k", fmt.Sprint(puts)), func(client.Outcome) { done = true }); err != nil {
				t.Fatal(err)
			}
			puts++
			c.RunUntil(func() bool { return done || c.Err() != nil }, 5*time.Second)
		}
	}
	c.RunUntil(func() bool { return c.Leader() != 0 || c.Err() != nil }, 10*time.Second)
	put(5)
	// A new leader moves every promise up; then every node restarts from
	// its disk, one at a time.
	if l := c.Leader(); l != 0 && c.Err() == nil {
		c.Crash(l)
		c.RunFor(time.Second)
		put(5)
		if err := c.Restart(l); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.Peers() {
		if c.Err() != nil {
			break
		}
		c.Crash(id)
		c.RunFor(300 * time.Millisecond)
		if err := c.Restart(id); err != nil && c.Err() == nil {
			t.Fatal(err)
		}
		c.RunFor(500 * time.Millisecond)
		put(3)
	}
	if c.Err() == nil && puts < 19 {
		t.Fatalf("only %d puts were invoked", puts)
	}
	var v *Violation
	if err := c.Err(); err != nil && !errors.As(err, &v) {
		t.Fatalf("the simulation failed without a violation: %v", err)
	}
	if v != nil {
		t.Logf("caught: %v", v)
	}
	return v
}

// wrapFactory builds proto's cores through wrap.
func wrapFactory(t *testing.T, proto string, wrap func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error)) func(*ClusterConfig) {
	base, err := Lookup(proto)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := LookupCodec(proto)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *ClusterConfig) {
		c.Codec = codec
		c.Factory = func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
			return wrap(cfg, sm, d, base)
		}
	}
}

// inspected is a core wrapped for a test: both interfaces, the inner
// core's methods unless overridden.
type inspected struct {
	replica.Replicator
	replica.Inspector
}

// lateState is a core that sends before it persists: each Ready's hard
// state is held back and written with the next Ready.
type lateState struct {
	inspected
	held []byte
}

func (l *lateState) Ready() replica.Ready {
	rd := l.Replicator.Ready()
	rd.Persist.State, l.held = l.held, rd.Persist.State
	return rd
}

// earlyAcks is a core that sends its acknowledgements ahead of its write:
// every message of a Ready goes in Early.
type earlyAcks struct{ inspected }

func (e earlyAcks) Ready() replica.Ready {
	rd := e.Replicator.Ready()
	rd.Early, rd.Messages = append(rd.Early, rd.Messages...), nil
	return rd
}

// earlySelf is a leader that counts its own copy at once: the
// acknowledgement it sends itself goes in Early, which the node hands back
// before the write.
type earlySelf struct{ inspected }

func (e earlySelf) Ready() replica.Ready {
	rd := e.Replicator.Ready()
	late := rd.Messages[:0:0]
	for _, m := range rd.Messages {
		if m.Dest() == m.Source() {
			rd.Early = append(rd.Early, m)
		} else {
			late = append(late, m)
		}
	}
	rd.Messages = late
	return rd
}

// otherValue changes the requests node 3 applies from index 4 on, as a core
// that learned a different value for a slot would.
type otherValue struct{ replica.StateMachine }

func (o otherValue) Apply(index uint64, req replica.Request) []byte {
	if index >= 4 {
		req.Op = kv.Op{Kind: kv.Put, Key: "k", Value: "other"}.Encode()
	}
	return o.StateMachine.Apply(index, req)
}

// twice applies every request two times.
type twice struct{ replica.StateMachine }

func (o twice) Apply(index uint64, req replica.Request) []byte {
	o.StateMachine.Apply(index, req)
	return o.StateMachine.Apply(index, req)
}

// shortCodec is a codec bug: it loses the last byte of every encoding.
type shortCodec struct{ replica.Codec }

func (s shortCodec) AppendMessage(b []byte, m replica.Message) ([]byte, error) {
	b, err := s.Codec.AppendMessage(b, m)
	return b[:len(b)-1], err
}

// oracleCase is a node or core, real or deliberately broken, run under
// the oracles: want is what the violation must say ("" = none), mod sets
// the cluster up.
type oracleCase struct {
	name string
	want string
	mod  func(t *testing.T, proto string) func(*ClusterConfig)
}

// runOracleCases runs every case on seeds of both protocols.
func runOracleCases(t *testing.T, cases []oracleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachProtocol(t, 7, func(t *testing.T, proto string, seed int64) {
				v := oracleRun(t, proto, seed, tc.mod(t, proto))
				switch {
				case tc.want == "" && v != nil:
					t.Fatalf("the real node and core broke a safety property: %v", v)
				case tc.want != "" && v == nil:
					t.Fatalf("no oracle caught it (want a violation saying %q)", tc.want)
				case tc.want != "" && !strings.Contains(v.What, tc.want):
					t.Fatalf("caught as %q, want %q", v.What, tc.want)
				}
			})
		})
	}
}

func TestOracles(t *testing.T) {
	cases := []oracleCase{
		{"real node and core", "", func(*testing.T, string) func(*ClusterConfig) { return nil }},
		{"node releases before syncing", "not synced", func(*testing.T, string) func(*ClusterConfig) {
			return func(c *ClusterConfig) { c.skipSync = true }
		}},
		{"core forgets its promise across a restart", "restarted promising", func(t *testing.T, proto string) func(*ClusterConfig) {
			return wrapFactory(t, proto, func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error) {
				d.State = nil
				return base(cfg, sm, d)
			})
		}},
		{"core sends before it persists", "synced hard state promises only", func(t *testing.T, proto string) func(*ClusterConfig) {
			return wrapFactory(t, proto, func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error) {
				r, err := base(cfg, sm, d)
				if err != nil {
					return nil, err
				}
				return &lateState{inspected: inspected{r, r.(replica.Inspector)}}, nil
			})
		}},
		{"core sends acknowledgements ahead of its write", "early, before the state it acknowledges", func(t *testing.T, proto string) func(*ClusterConfig) {
			return wrapFactory(t, proto, func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error) {
				r, err := base(cfg, sm, d)
				if err != nil {
					return nil, err
				}
				return earlyAcks{inspected{r, r.(replica.Inspector)}}, nil
			})
		}},
		{"leader counts its own copy before it is durable", "early, before the state it acknowledges", func(t *testing.T, proto string) func(*ClusterConfig) {
			return wrapFactory(t, proto, func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error) {
				r, err := base(cfg, sm, d)
				if err != nil {
					return nil, err
				}
				return earlySelf{inspected{r, r.(replica.Inspector)}}, nil
			})
		}},
		{"codec loses a byte", "did not survive the wire", func(t *testing.T, proto string) func(*ClusterConfig) {
			codec, err := LookupCodec(proto)
			if err != nil {
				t.Fatal(err)
			}
			return func(c *ClusterConfig) { c.Codec = shortCodec{codec} }
		}},
		{"a slot chosen with two values", "chosen with two values", func(t *testing.T, proto string) func(*ClusterConfig) {
			return wrapFactory(t, proto, func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error) {
				if cfg.ID == 3 {
					sm = otherValue{sm}
				}
				return base(cfg, sm, d)
			})
		}},
		{"a replica applies twice", "replicas diverged", func(t *testing.T, proto string) func(*ClusterConfig) {
			return wrapFactory(t, proto, func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error) {
				if cfg.ID == 2 {
					sm = twice{sm}
				}
				return base(cfg, sm, d)
			})
		}},
	}
	runOracleCases(t, cases)
}
