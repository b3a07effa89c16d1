// Package wire holds kvnode's TCP framing and the client request and
// response encodings.
//
// Every frame is
//
//	uint32 big-endian length n of what follows (2 <= n <= MaxFrame)
//	uint8  version (Version)
//	uint8  kind (KindPeer, KindRequest, KindResponse)
//	n-2 bytes of payload
//
// Peer messages and client requests share one listener; the kind tells them
// apart. A reader that meets a malformed or oversized frame returns an error
// and the connection must be closed: after a bad length nothing that follows
// can be trusted.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the frame format version this package writes and accepts.
const Version = 1

// MaxFrame bounds the size of a frame after its length prefix.
const MaxFrame = 16 << 20

// Kind says what a frame's payload is.
type Kind uint8

// Frame kinds.
const (
	// KindPeer carries a replication core's message: uint32 group id, then
	// the core codec's encoding.
	KindPeer Kind = 1
	// KindRequest carries a client Request.
	KindRequest Kind = 2
	// KindResponse carries a Response to a client.
	KindResponse Kind = 3
)

func (k Kind) valid() bool { return k >= KindPeer && k <= KindResponse }

// Errors a frame reader returns for bad input; they are wrapped with detail.
var (
	ErrTooLarge   = errors.New("frame too large")
	ErrBadVersion = errors.New("unsupported frame version")
	ErrBadKind    = errors.New("unknown frame kind")
	ErrShort      = errors.New("frame too short")
)

// AppendFrame appends a frame of kind k whose payload is produced by fill
// (which appends to the slice it is given) to b.
func AppendFrame(b []byte, k Kind, fill func([]byte) []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, Version, byte(k))
	b = fill(b)
	n := len(b) - start - 4
	if n > MaxFrame {
		return b[:start], fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, MaxFrame)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return b, nil
}

// ReadFrame reads one frame from r. The returned payload aliases buf when
// it fits (buf is grown otherwise) and is valid until the next call that
// reuses buf. io.EOF is returned only when r ends cleanly between frames.
func ReadFrame(r *bufio.Reader, buf []byte) (Kind, []byte, []byte, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, buf, fmt.Errorf("read frame length: %w", err)
		}
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n > MaxFrame {
		return 0, nil, buf, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, MaxFrame)
	}
	if n < 2 {
		return 0, nil, buf, fmt.Errorf("%w: length %d", ErrShort, n)
	}
	if _, err := io.ReadFull(r, hdr[4:6]); err != nil {
		return 0, nil, buf, fmt.Errorf("read frame header: %w", noEOF(err))
	}
	if hdr[4] != Version {
		return 0, nil, buf, fmt.Errorf("%w: %d (want %d)", ErrBadVersion, hdr[4], Version)
	}
	k := Kind(hdr[5])
	if !k.valid() {
		return 0, nil, buf, fmt.Errorf("%w: %d", ErrBadKind, hdr[5])
	}
	size := int(n) - 2
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	p := buf[:size]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, buf, fmt.Errorf("read frame payload (%d bytes): %w", size, noEOF(err))
	}
	return k, p, buf, nil
}

// OneFrame returns the payload of b, which must hold exactly one whole
// frame, of kind want: a message carried alone, as the simulator carries
// each one.
func OneFrame(b []byte, want Kind) ([]byte, error) {
	k, payload, rest, err := SplitFrame(b)
	if err == nil && (k != want || len(rest) > 0) {
		err = fmt.Errorf("frame of kind %d with %d bytes after it, want one frame of kind %d", k, len(rest), want)
	}
	return payload, err
}

// SplitFrame takes one whole frame from the front of b, with the same
// checks as ReadFrame, and returns its kind, its payload (aliasing b) and
// what follows it.
func SplitFrame(b []byte) (Kind, []byte, []byte, error) {
	if len(b) < 4 {
		return 0, nil, nil, fmt.Errorf("%w: %d bytes, no frame length", ErrShort, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	switch {
	case n > MaxFrame:
		return 0, nil, nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, MaxFrame)
	case n < 2:
		return 0, nil, nil, fmt.Errorf("%w: length %d", ErrShort, n)
	case uint64(n) > uint64(len(b)-4):
		return 0, nil, nil, fmt.Errorf("%w: frame of %d bytes, %d present", ErrShort, n, len(b)-4)
	}
	if b[4] != Version {
		return 0, nil, nil, fmt.Errorf("%w: %d (want %d)", ErrBadVersion, b[4], Version)
	}
	k := Kind(b[5])
	if !k.valid() {
		return 0, nil, nil, fmt.Errorf("%w: %d", ErrBadKind, b[5])
	}
	end := 4 + int(n)
	return k, b[6:end:end], b[end:], nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendPeer appends the payload of a KindPeer frame header (the group id);
// the caller appends the message encoding after it.
func AppendPeer(b []byte, group uint32) []byte {
	return binary.BigEndian.AppendUint32(b, group)
}

// DecodePeer splits a KindPeer payload into its group id and message bytes.
func DecodePeer(p []byte) (uint32, []byte, error) {
	if len(p) < 4 {
		return 0, nil, fmt.Errorf("peer frame: %w: %d bytes, need at least 4", ErrShort, len(p))
	}
	return binary.BigEndian.Uint32(p), p[4:], nil
}

// Request is a client command for one replica group.
type Request struct {
	ID       uint64 // echoed in the Response; lets one connection carry many requests
	Group    uint32
	ClientID uint64
	Seq      uint64
	Op       []byte
}

const requestHeader = 8 + 4 + 8 + 8

// Append appends the payload encoding of q to b.
func (q *Request) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, q.ID)
	b = binary.BigEndian.AppendUint32(b, q.Group)
	b = binary.BigEndian.AppendUint64(b, q.ClientID)
	b = binary.BigEndian.AppendUint64(b, q.Seq)
	return append(b, q.Op...)
}

// DecodeRequest decodes a KindRequest payload. Op aliases p.
func DecodeRequest(p []byte) (Request, error) {
	if len(p) < requestHeader {
		return Request{}, fmt.Errorf("request frame: %w: %d bytes, need at least %d", ErrShort, len(p), requestHeader)
	}
	return Request{
		ID:       binary.BigEndian.Uint64(p),
		Group:    binary.BigEndian.Uint32(p[8:]),
		ClientID: binary.BigEndian.Uint64(p[12:]),
		Seq:      binary.BigEndian.Uint64(p[20:]),
		Op:       p[28:],
	}, nil
}

// Status is a server's verdict on a request.
type Status uint8

// Response statuses. Only StatusOK means the request was applied. The
// definite statuses (NotLeader, NoGroup, Overloaded) promise that this node
// did not order the request; StatusUnknown means it may have been ordered
// and may still be applied.
const (
	StatusOK         Status = 0
	StatusNotLeader  Status = 1
	StatusNoGroup    Status = 2
	StatusOverloaded Status = 3
	StatusUnknown    Status = 4
	statusMax               = StatusUnknown
)

var statusNames = [...]string{"ok", "not-leader", "no-group", "overloaded", "unknown"}

// String names s.
func (s Status) String() string {
	if s <= statusMax {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Definite reports whether s promises that the request was not ordered.
func (s Status) Definite() bool {
	return s == StatusNotLeader || s == StatusNoGroup || s == StatusOverloaded
}

// Response answers a Request.
type Response struct {
	ID     uint64
	Status Status
	Leader uint32 // with StatusNotLeader: the node believed to lead, 0 if unknown
	Index  uint64 // with StatusOK: the log index at which the request was applied
	Err    string // detail for a non-OK status
	Value  []byte // with StatusOK: the state machine's reply
}

// Append appends the payload encoding of r to b.
func (r *Response) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, r.ID)
	b = append(b, byte(r.Status))
	b = binary.BigEndian.AppendUint32(b, r.Leader)
	b = binary.BigEndian.AppendUint64(b, r.Index)
	b = binary.AppendUvarint(b, uint64(len(r.Err)))
	b = append(b, r.Err...)
	return append(b, r.Value...)
}

// DecodeResponse decodes a KindResponse payload. Value aliases p.
func DecodeResponse(p []byte) (Response, error) {
	const fixed = 8 + 1 + 4 + 8
	if len(p) < fixed+1 {
		return Response{}, fmt.Errorf("response frame: %w: %d bytes, need at least %d", ErrShort, len(p), fixed+1)
	}
	r := Response{
		ID:     binary.BigEndian.Uint64(p),
		Status: Status(p[8]),
		Leader: binary.BigEndian.Uint32(p[9:]),
		Index:  binary.BigEndian.Uint64(p[13:]),
	}
	if r.Status > statusMax {
		return Response{}, fmt.Errorf("response frame: unknown status %d", p[8])
	}
	rest := p[fixed:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return Response{}, errors.New("response frame: bad error-text length")
	}
	r.Err = string(rest[k : k+int(n)])
	r.Value = rest[k+int(n):]
	return r, nil
}
