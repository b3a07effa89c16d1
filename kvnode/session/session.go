// Package session holds the exactly-once session table: for every client,
// the sequence number of its last applied request and that request's result.
// The table is part of the replicated state, so every replica answers a
// retried request from the table instead of applying it a second time.
//
// The table is a plain deterministic value: no goroutines, clocks or I/O.
package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Status is the verdict of Check on a (client, seq) pair.
type Status uint8

const (
	// New means seq is above the client's last applied request: apply it.
	New Status = iota + 1
	// Duplicate means seq equals the last applied request: answer with the
	// stored result and do not apply it again.
	Duplicate
	// Stale means seq is below the last applied request: the client has
	// already moved on, so there is nothing to apply and no result to give.
	Stale
)

// String names the status for logs and test failures.
func (s Status) String() string {
	switch s {
	case New:
		return "new"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// encodingVersion leads every encoded table so the format can evolve.
const encodingVersion = 1

type entry struct {
	seq    uint64
	result []byte
}

// Table is the session table. The zero value is not usable; call NewTable.
// Memory is bounded by one stored result per client.
type Table struct {
	m map[uint64]entry
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{m: make(map[uint64]entry)}
}

// Len returns the number of clients in the table.
func (t *Table) Len() int { return len(t.m) }

// Check classifies request seq of client. For a Duplicate it also returns
// the stored result. A client the table has never seen is always New.
func (t *Table) Check(client, seq uint64) (cached []byte, st Status) {
	e, ok := t.m[client]
	switch {
	case !ok || seq > e.seq:
		return nil, New
	case seq == e.seq:
		return e.result, Duplicate
	default:
		return nil, Stale
	}
}

// Record stores result as the outcome of request seq of client, replacing
// the client's previous entry. A seq lower than the stored one is ignored,
// so the table never moves a client backwards. The table keeps result as
// given; the caller must not modify it afterwards.
func (t *Table) Record(client, seq uint64, result []byte) {
	if e, ok := t.m[client]; ok && seq < e.seq {
		return
	}
	t.m[client] = entry{seq: seq, result: result}
}

// Apply runs request seq of client exactly once: a New request runs apply
// and records its result; a Duplicate returns the stored result without
// running it; a Stale request returns nil and changes nothing.
func (t *Table) Apply(client, seq uint64, apply func() []byte) []byte {
	cached, st := t.Check(client, seq)
	switch st {
	case Duplicate:
		return cached
	case Stale:
		return nil
	}
	out := apply()
	t.Record(client, seq, out)
	return out
}

// Last returns the last applied sequence number of client and whether the
// table knows the client at all.
func (t *Table) Last(client uint64) (seq uint64, ok bool) {
	e, ok := t.m[client]
	return e.seq, ok
}

// Merge folds other into t, keeping for every client the entry with the
// higher sequence number. It is how a shard's sessions are handed over.
func (t *Table) Merge(other *Table) {
	for c, e := range other.m {
		if cur, ok := t.m[c]; ok && cur.seq >= e.seq {
			continue
		}
		t.m[c] = e
	}
}

// Subset returns a new table holding the entries of the clients for which
// keep returns true. The results are shared, not copied.
func (t *Table) Subset(keep func(client uint64) bool) *Table {
	out := NewTable()
	for c, e := range t.m {
		if keep(c) {
			out.m[c] = e
		}
	}
	return out
}

// clients returns the client ids in ascending order, which makes the
// encoding deterministic.
func (t *Table) clients() []uint64 {
	ids := make([]uint64, 0, len(t.m))
	for c := range t.m {
		ids = append(ids, c)
	}
	slices.Sort(ids)
	return ids
}

// AppendBinary appends the table's encoding to b. The output depends only
// on the table's contents: clients are written in ascending order.
//
// Layout: version byte, uvarint count, then per client uvarint client,
// uvarint seq, uvarint len(result), result.
func (t *Table) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, encodingVersion)
	b = binary.AppendUvarint(b, uint64(len(t.m)))
	for _, c := range t.clients() {
		e := t.m[c]
		b = binary.AppendUvarint(b, c)
		b = binary.AppendUvarint(b, e.seq)
		b = binary.AppendUvarint(b, uint64(len(e.result)))
		b = append(b, e.result...)
	}
	return b, nil
}

// MarshalBinary returns the table's encoding (see AppendBinary).
func (t *Table) MarshalBinary() ([]byte, error) { return t.AppendBinary(nil) }

// ErrMalformed is matched by every decoding error.
var ErrMalformed = errors.New("session: malformed table encoding")

// Decode decodes a table that AppendBinary produced and returns it with
// the number of bytes consumed, so a table can sit inside a larger
// encoding. It rejects truncated input, an unknown version, clients out of
// ascending order and impossible lengths.
func Decode(b []byte) (*Table, int, error) {
	if len(b) == 0 {
		return nil, 0, fmt.Errorf("%w: empty input", ErrMalformed)
	}
	if b[0] != encodingVersion {
		return nil, 0, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[0])
	}
	pos := 1
	next := func(what string) (uint64, error) {
		v, n := binary.Uvarint(b[pos:])
		// A non-minimal varint would give a second encoding of the same
		// table; refusing it keeps decoding and encoding inverse.
		if n <= 0 || (n > 1 && b[pos+n-1] == 0) {
			return 0, fmt.Errorf("%w: bad %s at byte %d", ErrMalformed, what, pos)
		}
		pos += n
		return v, nil
	}
	count, err := next("client count")
	if err != nil {
		return nil, 0, err
	}
	// Every client takes at least three bytes, which bounds a hostile count.
	if count > uint64(len(b)-pos)/3 {
		return nil, 0, fmt.Errorf("%w: client count %d exceeds input", ErrMalformed, count)
	}
	t := &Table{m: make(map[uint64]entry, count)}
	var prev uint64
	for i := uint64(0); i < count; i++ {
		c, err := next("client id")
		if err != nil {
			return nil, 0, err
		}
		if i > 0 && c <= prev {
			return nil, 0, fmt.Errorf("%w: client %d not above previous %d", ErrMalformed, c, prev)
		}
		prev = c
		seq, err := next("sequence number")
		if err != nil {
			return nil, 0, err
		}
		n, err := next("result length")
		if err != nil {
			return nil, 0, err
		}
		if n > uint64(len(b)-pos) {
			return nil, 0, fmt.Errorf("%w: result of client %d is %d bytes, %d left", ErrMalformed, c, n, len(b)-pos)
		}
		var res []byte
		if n > 0 {
			res = slices.Clone(b[pos : pos+int(n)])
		}
		pos += int(n)
		t.m[c] = entry{seq: seq, result: res}
	}
	return t, pos, nil
}

// UnmarshalBinary replaces t's contents with the decoded table; the input
// must hold exactly one table.
func (t *Table) UnmarshalBinary(b []byte) error {
	d, n, err := Decode(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-n)
	}
	t.m = d.m
	return nil
}
