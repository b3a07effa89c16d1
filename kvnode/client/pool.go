package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// pool is a session's transport: at most one TCP connection per node,
// opened lazily. It carries out a Router's actions with real timers; it
// decides nothing itself. Its owner serializes calls.
type pool struct {
	addrs       map[replica.NodeID]string
	dialTimeout time.Duration
	conns       map[replica.NodeID]*conn
	buf         []byte
}

type conn struct {
	c   net.Conn
	r   *bufio.Reader
	buf []byte
}

func newPool(addrs map[replica.NodeID]string, dialTimeout time.Duration) pool {
	return pool{addrs: addrs, dialTimeout: dialTimeout, conns: map[replica.NodeID]*conn{}}
}

// run carries out act and the Router's next actions until the op is done.
func (p *pool) run(ctx context.Context, r *Router, act Action) Outcome {
	for {
		switch act.Kind {
		case Done:
			return act.Outcome
		case Send:
			act = p.attempt(ctx, r, act)
		case Wait:
			t := time.NewTimer(act.Timeout)
			select {
			case <-ctx.Done():
				act = r.Cancel(time.Now(), ctx.Err(), false)
			case <-t.C:
				act = r.Timeout(time.Now())
			}
			t.Stop()
		default:
			// Await with nothing outstanding cannot happen in this loop:
			// every attempt ends in an event that settles it.
			act = r.Cancel(time.Now(), fmt.Errorf("client: router awaits with nothing outstanding"), true)
		}
	}
}

// attempt sends act.Request to act.Node and reports to r what came of it.
func (p *pool) attempt(ctx context.Context, r *Router, act Action) Action {
	if err := ctx.Err(); err != nil {
		return r.Cancel(time.Now(), err, false)
	}
	id := act.Node
	cn, err := p.dial(ctx, id)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return r.Cancel(time.Now(), cerr, false)
		}
		return r.Lost(time.Now(), id, err, false)
	}
	cn.c.SetDeadline(time.Now().Add(act.Timeout))
	// Cancellation without a deadline still interrupts the wait.
	stop := context.AfterFunc(ctx, func() { cn.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	p.buf, err = wire.AppendFrame(p.buf[:0], wire.KindRequest, act.Request.Append)
	if err != nil {
		return r.Lost(time.Now(), id, err, false)
	}
	if n, err := cn.c.Write(p.buf); err != nil {
		p.drop(id)
		// Not one byte left: the node cannot have seen the request.
		if cerr := ctx.Err(); cerr != nil {
			return r.Cancel(time.Now(), cerr, n > 0)
		}
		return r.Lost(time.Now(), id, fmt.Errorf("send: %w", err), n > 0)
	}
	for {
		k, pl, nb, err := wire.ReadFrame(cn.r, cn.buf)
		cn.buf = nb
		if err != nil {
			p.drop(id)
			if cerr := ctx.Err(); cerr != nil {
				return r.Cancel(time.Now(), cerr, true)
			}
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				return r.Timeout(time.Now())
			}
			return r.Lost(time.Now(), id, fmt.Errorf("await reply: %w", err), true)
		}
		if k != wire.KindResponse {
			p.drop(id)
			return r.Lost(time.Now(), id, fmt.Errorf("unexpected frame kind %d", k), true)
		}
		resp, err := wire.DecodeResponse(pl)
		if err != nil {
			p.drop(id)
			return r.Lost(time.Now(), id, err, true)
		}
		if resp.ID != act.Request.ID {
			// An answer to an earlier attempt on this connection: skip it.
			continue
		}
		resp.Value = append([]byte(nil), resp.Value...)
		return r.Reply(time.Now(), id, resp)
	}
}

func (p *pool) dial(ctx context.Context, id replica.NodeID) (*conn, error) {
	if cn := p.conns[id]; cn != nil {
		return cn, nil
	}
	addr, ok := p.addrs[id]
	if !ok {
		return nil, fmt.Errorf("no address for node %d", id)
	}
	d := net.Dialer{Timeout: p.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	cn := &conn{c: nc, r: bufio.NewReaderSize(nc, 16<<10)}
	p.conns[id] = cn
	return cn, nil
}

func (p *pool) drop(id replica.NodeID) {
	if cn := p.conns[id]; cn != nil {
		cn.c.Close()
		delete(p.conns, id)
	}
}

func (p *pool) close() {
	for id := range p.conns {
		p.drop(id)
	}
}
