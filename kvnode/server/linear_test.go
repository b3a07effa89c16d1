package server_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/linear"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/client"
	"github.com/chaoskv/chaos/kvnode/server"
	"github.com/chaoskv/chaos/kvnode/server/protocols"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

func paxosProtocol(t testing.TB) server.Protocol {
	p, err := protocols.Lookup("paxos")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder collects a history from concurrent workers.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []history.Op
}

func (r *recorder) add(op history.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = int64(len(r.ops))
	op.Time = int64(time.Since(r.start))
	r.ops = append(r.ops, op)
}

// waitLeader waits until some running node reports itself leader of group
// 1 and returns its index in rs.
func waitLeader(t testing.TB, rs []*running, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for i, r := range rs {
			if r == nil {
				continue
			}
			if s, ok := r.node.Status()[1]; ok && s.Leader == s.ID {
				return i
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no leader within %v", within)
	return -1
}

// protocol returns the replication protocol called name.
func protocol(t testing.TB, name string) server.Protocol {
	p, err := protocols.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLinearizableUnderLeaderStop runs concurrent clients doing reads,
// writes and compare-and-sets on a few keys against a 3-node group of each
// replication protocol, stops the leader half way, and checks the history
// with porcupine.
func TestLinearizableUnderLeaderStop(t *testing.T) {
	for _, name := range protocols.Names() {
		t.Run(name, func(t *testing.T) { linearizableUnderLeaderStop(t, protocol(t, name)) })
	}
}

func linearizableUnderLeaderStop(t *testing.T, p server.Protocol) {
	c := testCluster(t, 3, false)
	dirs := dataDirs(t, 3)
	var rs []*running
	for i, nd := range c.Nodes {
		rs = append(rs, startNode(t, c, nd.ID, dirs[i], p))
	}
	defer func() {
		for _, r := range rs {
			if r != nil {
				r.stop(t)
			}
		}
	}()
	waitLeader(t, rs, 5*time.Second)
	const workers = 8
	run := 1500 * time.Millisecond
	if testing.Short() {
		run = 600 * time.Millisecond
	}
	rec := &recorder{start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			proc := history.Process(w)
			cl := newClient(t, c)
			for n := 0; ctx.Err() == nil; n++ {
				key := int64(rng.IntN(3))
				k := strconv.FormatInt(key, 10)
				octx, ocancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				switch x := rng.IntN(3); x {
				case 0:
					rec.add(history.Op{Type: history.Invoke, Process: proc, F: "read", Value: []any{key, nil}})
					r, err := cl.Get(octx, k)
					op := history.Op{Type: history.Ok, Process: proc, F: "read", Value: []any{key, nil}}
					if err == nil && r.Found {
						v, _ := strconv.ParseInt(r.Value, 10, 64)
						op.Value = []any{key, v}
					}
					rec.add(outcome(op, err))
				case 1:
					v := int64(w*100000 + n)
					rec.add(history.Op{Type: history.Invoke, Process: proc, F: "write", Value: []any{key, v}})
					err := cl.Put(octx, k, strconv.FormatInt(v, 10))
					rec.add(outcome(history.Op{Type: history.Ok, Process: proc, F: "write", Value: []any{key, v}}, err))
				default:
					old, v := int64(rng.IntN(5)), int64(rng.IntN(5))
					val := []any{key, []any{old, v}}
					rec.add(history.Op{Type: history.Invoke, Process: proc, F: "cas", Value: val})
					r, err := cl.Cas(octx, k, strconv.FormatInt(old, 10), strconv.FormatInt(v, 10))
					op := outcome(history.Op{Type: history.Ok, Process: proc, F: "cas", Value: val}, err)
					if err == nil && !r.Swapped {
						op.Type = history.Fail
					}
					rec.add(op)
					if err == nil && !r.Swapped && rng.IntN(2) == 0 {
						// Seed the small value space so that cas succeeds often.
						rec.add(history.Op{Type: history.Invoke, Process: proc, F: "write", Value: []any{key, old}})
						err := cl.Put(octx, k, strconv.FormatInt(old, 10))
						rec.add(outcome(history.Op{Type: history.Ok, Process: proc, F: "write", Value: []any{key, old}}, err))
					}
				}
				ocancel()
				if last := rec.last(proc); last == history.Info {
					// Jepsen semantics: the process is retired; continue as
					// a new one with a new session.
					proc += workers
					cl.Close()
					cl = newClient(t, c)
				}
			}
		})
	}
	time.Sleep(run / 2)
	leader := waitLeader(t, rs, 2*time.Second)
	rs[leader].stop(t)
	rs[leader] = nil
	wg.Wait()
	var oks, infos int
	for _, op := range rec.ops {
		switch op.Type {
		case history.Ok:
			oks++
		case history.Info:
			infos++
		}
	}
	res, err := linear.Check("cas-register", rec.ops, linear.Options{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ops (%d ok, %d info): %s", len(rec.ops)/2, oks, infos, res.Summary)
	if res.Valid != checker.Valid {
		t.Fatalf("history is not linearizable: %s\n%v", res.Summary, res.Anomalies)
	}
	if oks < 40 {
		t.Fatalf("only %d ops succeeded", oks)
	}
}

func (r *recorder) last(p history.Process) history.Type {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.ops) - 1; i >= 0; i-- {
		if r.ops[i].Process == p {
			return r.ops[i].Type
		}
	}
	return 0
}

// outcome turns a client error into the completion type Jepsen expects.
func outcome(op history.Op, err error) history.Op {
	switch {
	case err == nil:
	case errors.Is(err, client.ErrUnknown):
		op.Type = history.Info
		op.Error = err.Error()
	default:
		op.Type = history.Fail
		op.Error = err.Error()
	}
	return op
}

// TestBadFramesDoNotCrash sends malformed, oversized and nonsensical frames
// to a node and checks that each closes only its own connection and that
// the node keeps serving.
func TestBadFramesDoNotCrash(t *testing.T) {
	c := testCluster(t, 1, true)
	rs := startCluster(t, c, dataDirs(t, 1), paxosProtocol(t))
	_ = rs
	addr := c.Nodes[0].Addr
	frame := func(k wire.Kind, payload []byte) []byte {
		b, err := wire.AppendFrame(nil, k, func(b []byte) []byte { return append(b, payload...) })
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bad := [][]byte{
		binary.BigEndian.AppendUint32(nil, wire.MaxFrame+1),          // oversized
		{0, 0, 0, 3, 99, 1, 0},                                       // bad version
		{0, 0, 0, 2, wire.Version, 77},                               // bad kind
		frame(wire.KindPeer, []byte{0, 0}),                           // short peer header
		frame(wire.KindPeer, append(wire.AppendPeer(nil, 1), 0xff)),  // garbage message
		frame(wire.KindPeer, append(wire.AppendPeer(nil, 42), 1, 2)), // unknown group
		frame(wire.KindRequest, []byte{1, 2, 3}),                     // short request
		frame(wire.KindResponse, (&wire.Response{}).Append(nil)),     // a server gets no responses
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),                  // not our protocol
	}
	for i, b := range bad {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(b)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := bufio.NewReader(conn).ReadByte(); err != io.EOF {
			t.Errorf("bad frame %d: connection not closed by the node (read: %v)", i, err)
		}
		conn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := newClient(t, c)
	if err := cl.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("node stopped serving after bad frames: %v", err)
	}
	resp, err := http.Get("http://" + c.Nodes[0].AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "kvnode_frame_errors_total " + strconv.Itoa(len(bad))
	if !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %q:\n%s", want, body)
	}
	for _, path := range []string{"/healthz", "/status", "/debug/pprof/"} {
		resp, err := http.Get("http://" + c.Nodes[0].AdminAddr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
}
