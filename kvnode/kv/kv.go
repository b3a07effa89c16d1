// Package kv is the replicated key-value state machine: a map of strings
// guarded by the exactly-once session table. It implements
// replica.StateMachine and is deterministic: the same requests in the same
// order give the same replies and byte-identical snapshots.
package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/chaoskv/chaos/kvnode/internal/wirebin"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/session"
	"github.com/chaoskv/chaos/kvnode/txn"
)

// Kind is an operation's type.
type Kind uint8

// The operation kinds. Their numeric values are part of the wire format.
const (
	// Get reads a key.
	Get Kind = 1
	// Put sets a key.
	Put Kind = 2
	// Append appends to a key's value (a missing key counts as "").
	Append Kind = 3
	// Cas sets Key to Value if its current value equals Old. A missing key
	// never matches, not even Old == "".
	Cas Kind = 4
	// Txn runs a one-shot transaction atomically: Value holds the
	// txn.Encode of its micro-ops and the reply's Value the
	// txn.EncodeResults of their outcomes. The whole transaction is one
	// log entry, so it is all-or-nothing and serializable with every
	// other op of the group.
	Txn Kind = 5
)

// String names the kind for logs and test failures.
func (k Kind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case Append:
		return "append"
	case Cas:
		return "cas"
	case Txn:
		return "txn"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Op is one key-value operation.
type Op struct {
	Kind  Kind
	Key   string
	Value string // Put, Append, Cas: the new value or suffix
	Old   string // Cas: the expected current value
}

// ErrMalformed is matched by every decoding error of this package.
var ErrMalformed = errors.New("kv: malformed encoding")

// Encode returns the op's compact encoding: the kind byte, then Key, Value
// and Old, each as uvarint length and bytes.
func (o Op) Encode() []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen16+len(o.Key)+len(o.Value)+len(o.Old))
	b = append(b, byte(o.Kind))
	b = wirebin.AppendString(b, o.Key)
	b = wirebin.AppendString(b, o.Value)
	return wirebin.AppendString(b, o.Old)
}

// DecodeOp decodes an Encode output. It rejects unknown kinds, truncated
// input and trailing bytes.
func DecodeOp(b []byte) (Op, error) {
	d := wirebin.NewDecoder(b, ErrMalformed)
	k := Kind(d.Byte("kind"))
	o := Op{Kind: k, Key: d.String("key"), Value: d.String("value"), Old: d.String("old")}
	if err := d.Finish(); err != nil {
		return Op{}, fmt.Errorf("decode op: %w", err)
	}
	if k < Get || k > Txn {
		return Op{}, fmt.Errorf("decode op: %w: unknown kind %d", ErrMalformed, uint8(k))
	}
	return o, nil
}

// Reply is the outcome of an Op.
type Reply struct {
	Value string // Get: current value; Append: the new value; Cas failure: current value
	Found bool   // the key existed (Get, and Cas failure)
	Ok    bool   // Put/Append: true; Cas: whether it swapped; Get: true
	Err   string // non-empty for an op the store cannot apply (bad encoding, unknown kind)
}

const (
	flagFound = 1 << iota
	flagOk
	flagErr
)

// Encode returns the reply's compact encoding: a flags byte, Value as
// uvarint length and bytes, then Err the same way if it is non-empty.
func (r Reply) Encode() []byte {
	var flags byte
	if r.Found {
		flags |= flagFound
	}
	if r.Ok {
		flags |= flagOk
	}
	if r.Err != "" {
		flags |= flagErr
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen16+len(r.Value)+len(r.Err))
	b = append(b, flags)
	b = wirebin.AppendString(b, r.Value)
	if r.Err != "" {
		b = wirebin.AppendString(b, r.Err)
	}
	return b
}

// DecodeReply decodes a Reply.Encode output.
func DecodeReply(b []byte) (Reply, error) {
	d := wirebin.NewDecoder(b, ErrMalformed)
	flags := d.Byte("flags")
	r := Reply{Value: d.String("value"), Found: flags&flagFound != 0, Ok: flags&flagOk != 0}
	if flags&flagErr != 0 {
		r.Err = d.String("err")
		if d.Err() == nil && r.Err == "" {
			d.Fail("empty err with err flag")
		}
	}
	if d.Err() == nil && flags&^(flagFound|flagOk|flagErr) != 0 {
		d.Fail(fmt.Sprintf("unknown flags %#x", flags))
	}
	if err := d.Finish(); err != nil {
		return Reply{}, fmt.Errorf("decode reply: %w", err)
	}
	return r, nil
}

// Store is the key-value state machine. It is not safe for concurrent use;
// the replication core calls it from one goroutine.
type Store struct {
	data     map[string]string
	sessions *session.Table
}

var _ replica.StateMachine = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{data: make(map[string]string), sessions: session.NewTable()}
}

// Get returns key's value and whether it exists, without going through
// the log; for tests and inspection.
func (s *Store) Get(key string) (string, bool) {
	v, ok := s.data[key]
	return v, ok
}

// Len returns the number of keys.
func (s *Store) Len() int { return len(s.data) }

// Apply applies req at log position index and returns the encoded Reply.
// A retry of the client's last request returns the stored reply without
// applying it again; an older request returns nil and changes nothing.
func (s *Store) Apply(index uint64, req replica.Request) []byte {
	return s.sessions.Apply(req.ClientID, req.Seq, func() []byte {
		var r Reply
		op, err := DecodeOp(req.Op)
		if err != nil {
			r.Err = err.Error()
		} else {
			r = s.apply(op)
		}
		return r.Encode()
	})
}

func (s *Store) apply(op Op) Reply {
	cur, found := s.data[op.Key]
	switch op.Kind {
	case Get:
		return Reply{Value: cur, Found: found, Ok: true}
	case Put:
		s.data[op.Key] = op.Value
		return Reply{Ok: true}
	case Append:
		nv := cur + op.Value
		s.data[op.Key] = nv
		return Reply{Value: nv, Found: found, Ok: true}
	case Cas:
		if !found || cur != op.Old {
			return Reply{Value: cur, Found: found}
		}
		s.data[op.Key] = op.Value
		return Reply{Found: true, Ok: true}
	case Txn:
		ops, err := txn.Decode([]byte(op.Value))
		if err != nil {
			return Reply{Err: err.Error()}
		}
		res, writes, ok := txn.Exec(ops, s.Get)
		if !ok {
			// A Check failed: nothing is applied, and Ok says so.
			return Reply{Value: string(txn.EncodeResults(res))}
		}
		for _, w := range writes {
			s.data[w.Key] = w.Value
		}
		return Reply{Value: string(txn.EncodeResults(res)), Ok: true}
	}
	return Reply{Err: fmt.Sprintf("unknown op kind %d", uint8(op.Kind))}
}

const snapshotVersion = 1

// Snapshot returns the whole state: version byte, uvarint key count, the
// key/value pairs in ascending key order, then the session table.
func (s *Store) Snapshot() ([]byte, error) {
	keys := make([]string, 0, len(s.data))
	size := 16
	for k, v := range s.data {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, snapshotVersion)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = wirebin.AppendString(b, k)
		b = wirebin.AppendString(b, s.data[k])
	}
	b, err := s.sessions.AppendBinary(b)
	if err != nil {
		return nil, fmt.Errorf("kv snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the whole state with a snapshot's. On error the store
// is unchanged.
func (s *Store) Restore(data []byte) error {
	d := wirebin.NewDecoder(data, ErrMalformed)
	if v := d.Byte("version"); d.Err() == nil && v != snapshotVersion {
		d.Fail(fmt.Sprintf("unknown snapshot version %d", v))
	}
	n := d.Count("key count", 2)
	m := make(map[string]string)
	var prev string
	for i := 0; i < n && d.Err() == nil; i++ {
		k, v := d.String("key"), d.String("value")
		if d.Err() == nil && i > 0 && k <= prev {
			d.Fail(fmt.Sprintf("key %q not above previous %q", k, prev))
		}
		prev = k
		m[k] = v
	}
	if d.Err() != nil {
		return fmt.Errorf("kv restore: %w", d.Err())
	}
	tab := session.NewTable()
	if err := tab.UnmarshalBinary(d.Rest()); err != nil {
		return fmt.Errorf("kv restore: sessions: %w", err)
	}
	s.data, s.sessions = m, tab
	return nil
}
