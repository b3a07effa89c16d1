package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// Outbound peer connections.
//
// A link that a partition cut must carry messages again within an election
// timeout (300 ms by default) of the heal. A TCP connection that stopped
// getting acknowledgements backs its retransmissions off exponentially, so
// after a partition of a few seconds it may stay silent for seconds more,
// with every new frame queued behind the lost ones. So a connection with
// data unacknowledged for unackedTimeout is dropped, and while the peer is
// unreachable the link redials often, each attempt bounded by dialTimeout:
// the first dial after the heal gets through.
const (
	peerQueue      = 8192
	backoffMin     = 10 * time.Millisecond
	backoffMax     = 200 * time.Millisecond
	dialTimeout    = 200 * time.Millisecond
	unackedTimeout = 500 * time.Millisecond
	writeTimeout   = 5 * time.Second
	connBufferSize = 64 << 10
)

// peer is the outbound side of the link to one other node: a queue of
// encoded frames and one persistent connection, redialled with exponential
// backoff when it breaks.
type peer struct {
	id   replica.NodeID
	addr string
	node *Node
	q    chan []byte
}

func newPeer(id replica.NodeID, addr string, n *Node) *peer {
	return &peer{id: id, addr: addr, node: n, q: make(chan []byte, peerQueue)}
}

// send queues a frame; when the queue is full the frame is dropped, which
// the protocols treat as message loss.
func (p *peer) send(frame []byte) {
	select {
	case p.q <- frame:
	default:
		p.node.metrics.peerDrops.Add(1)
	}
}

func (p *peer) run(ctx context.Context) {
	backoff := backoffMin
	d := net.Dialer{Timeout: dialTimeout}
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			// Jitter keeps restarted nodes from redialling in lockstep.
			wait := backoff/2 + rand.N(backoff/2+1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff = backoffMin
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
			if err := setUnackedTimeout(tc, unackedTimeout); err != nil {
				p.node.log.Debug("peer connection: no unacknowledged-data timeout", "peer", p.id, "err", err)
			}
		}
		p.node.log.Debug("connected to peer", "peer", p.id, "addr", p.addr)
		err = p.write(ctx, conn)
		conn.Close()
		if err != nil && ctx.Err() == nil {
			p.node.log.Info("peer connection lost", "peer", p.id, "addr", p.addr, "err", err)
		}
	}
}

// write sends queued frames until the connection fails or ctx ends. Frames
// queued while one is written go out in the same flush.
func (p *peer) write(ctx context.Context, conn net.Conn) error {
	// The peer never writes on this connection; reading detects a close
	// from the other side promptly.
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, conn)
		close(closed)
	}()
	w := bufio.NewWriterSize(conn, connBufferSize)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return errors.New("closed by peer")
		case b := <-p.q:
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(b); err != nil {
				return err
			}
		more:
			for {
				select {
				case b := <-p.q:
					if _, err := w.Write(b); err != nil {
						return err
					}
				default:
					break more
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

func (n *Node) accept(ctx context.Context, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				n.log.Error("accept", "addr", l.Addr(), "err", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		n.track(c, true)
		go func() {
			defer n.track(c, false)
			n.serveConn(ctx, c)
		}()
	}
}

// serveConn reads frames from one inbound connection: peer messages go to
// their group's loop, client requests are proposed and answered on the same
// connection. A malformed frame ends the connection with a logged reason.
func (n *Node) serveConn(ctx context.Context, c net.Conn) {
	out := make(chan wire.Response, 1024)
	done := make(chan struct{})
	defer close(done)
	defer c.Close()
	go n.writeResponses(c, out, done)
	r := bufio.NewReaderSize(c, connBufferSize)
	var buf []byte
	for {
		k, payload, nb, err := wire.ReadFrame(r, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				n.metrics.frameErrors.Add(1)
				n.log.Warn("closing connection: bad frame", "remote", c.RemoteAddr(), "err", err)
			}
			return
		}
		buf = nb
		switch k {
		case wire.KindPeer:
			gid, msg, err := wire.DecodePeer(payload)
			if err != nil {
				n.badFrame(c, "peer frame", err)
				return
			}
			g := n.groups[replica.GroupID(gid)]
			if g == nil {
				n.badFrame(c, "peer frame", errUnknownGroup(gid))
				return
			}
			// Decoded messages may alias the payload, so each frame gets
			// its own buffer.
			m, err := safeDecode(n.opts.Protocol.Codec, msg)
			buf = nil
			if err != nil {
				n.badFrame(c, "peer message", err)
				return
			}
			g.step(m)
		case wire.KindRequest:
			q, err := wire.DecodeRequest(payload)
			if err != nil {
				n.badFrame(c, "client request", err)
				return
			}
			q.Op = append([]byte(nil), q.Op...)
			n.handleRequest(q, out, done)
		default:
			n.badFrame(c, "frame", errors.New("unexpected frame kind "+kindName(k)))
			return
		}
	}
}

// safeDecode decodes a peer message; a codec that panics on hostile input
// costs the connection, not the node.
func safeDecode(c replica.Codec, b []byte) (m replica.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("codec panicked: %v", r)
		}
	}()
	return c.DecodeMessage(b)
}

func kindName(k wire.Kind) string {
	switch k {
	case wire.KindPeer:
		return "peer"
	case wire.KindRequest:
		return "request"
	case wire.KindResponse:
		return "response"
	}
	return "unknown"
}

type errUnknownGroup uint32

func (e errUnknownGroup) Error() string {
	return "no local replica of group " + itoa(uint64(e))
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

func (n *Node) badFrame(c net.Conn, what string, err error) {
	n.metrics.frameErrors.Add(1)
	n.log.Warn("closing connection: malformed "+what, "remote", c.RemoteAddr(), "err", err)
}

func (n *Node) handleRequest(q wire.Request, out chan<- wire.Response, done <-chan struct{}) {
	reply := func(r wire.Response) {
		select {
		case out <- r:
		case <-done:
		default:
			// A client that does not read its responses loses them; it
			// sees a timeout, an unknown outcome.
		}
	}
	g := n.groups[replica.GroupID(q.Group)]
	if g == nil {
		n.metrics.clientOutcome[wire.StatusNoGroup].Add(1)
		reply(wire.Response{ID: q.ID, Status: wire.StatusNoGroup, Err: errUnknownGroup(q.Group).Error()})
		return
	}
	p := &proposal{req: replica.Request{ClientID: q.ClientID, Seq: q.Seq, Op: q.Op}, reply: reply, id: q.ID}
	if !g.submit(p) {
		n.metrics.clientOutcome[wire.StatusOverloaded].Add(1)
		reply(wire.Response{ID: q.ID, Status: wire.StatusOverloaded, Err: "request queue full"})
	}
}

func (n *Node) writeResponses(c net.Conn, out <-chan wire.Response, done <-chan struct{}) {
	w := bufio.NewWriterSize(c, connBufferSize)
	var buf []byte
	for {
		select {
		case <-done:
			return
		case r := <-out:
			for {
				var err error
				buf, err = wire.AppendFrame(buf[:0], wire.KindResponse, r.Append)
				if err == nil {
					_, err = w.Write(buf)
				}
				if err != nil {
					c.Close()
					return
				}
				select {
				case r = <-out:
					continue
				default:
				}
				break
			}
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := w.Flush(); err != nil {
				c.Close()
				return
			}
		}
	}
}
