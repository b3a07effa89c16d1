// Package txn holds kvnode's one-shot transactions: a list of micro-ops
// (read, write, append, check) over string keys, their compact encoding,
// and Exec, the pure function that runs them with read-your-writes against
// a key-value view and says what to write back.
//
// It also holds Group, the state machine of a sharded transactional
// replica group: shards assigned by the shard controller (package
// shardctl), single-group transactions applied in one log entry, and
// cross-group ones by two-phase commit with no-wait strict two-phase
// locking, every inter-group message travelling through the receiving
// group's log. Reconfiguration waits until the group holds no locks and
// has no undecided transaction, so locks and prepared records never move
// with a shard; shard data and the session table do (see Group).
//
// Lists: a key used by "append" holds its elements in order, each followed
// by the separator byte ListSep (0x1f, ASCII unit separator). A read returns
// the raw value and, split, its List, so a list-append read sees the whole
// list in append order. An element may not contain ListSep; Validate
// refuses such a transaction. Mixing "w" and "append" on one key is allowed
// but gives a List whose first element is the written value's remainder;
// workloads keep the two kinds on separate keys.
//
// Guards: a "check" micro-op makes the whole transaction fail, applying
// nothing, unless its key's value (as the transaction sees it, a missing
// key counting as "") equals Value. With it a client reads, computes and
// then writes only if what it read is still there, as a bank transfer
// needs; a failed check is a definite failure, not an abort to retry.
package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The micro-op functions, as Jepsen's transactional workloads name them.
const (
	Read   = "r"
	Write  = "w"
	Append = "append"
	Check  = "check"
)

// ListSep terminates every element of a list built by Append.
const ListSep = "\x1f"

// MaxOps bounds the micro-ops of one transaction.
const MaxOps = 1024

// MicroOp is one operation of a transaction: F is Read, Write or Append;
// Value is the written value or the appended element (ignored by Read).
type MicroOp struct {
	F     string
	Key   string
	Value string
}

// MicroResult is the outcome of one MicroOp, in the transaction's order.
// For a Read, Value and Found describe the key as the transaction saw it
// (its own earlier writes included) and List is Value split into append
// elements (nil when the key does not exist). For Write and Append, Value
// echoes the op's value.
type MicroResult struct {
	F     string
	Key   string
	Value string
	Found bool
	List  []string
}

// ErrMalformed is matched by every decoding error of this package.
var ErrMalformed = errors.New("txn: malformed encoding")

// ErrCheckFailed says a transaction applied nothing because one of its
// Check micro-ops did not match.
var ErrCheckFailed = errors.New("txn: check failed")

// ErrInvalid is matched by every error of Validate.
var ErrInvalid = errors.New("txn: invalid transaction")

// Validate reports the first problem with ops: no ops, too many, an unknown
// F, or an appended element that contains ListSep.
func Validate(ops []MicroOp) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: no micro-ops", ErrInvalid)
	}
	if len(ops) > MaxOps {
		return fmt.Errorf("%w: %d micro-ops, at most %d", ErrInvalid, len(ops), MaxOps)
	}
	for i, o := range ops {
		switch o.F {
		case Read, Write, Check:
		case Append:
			if strings.Contains(o.Value, ListSep) {
				return fmt.Errorf("%w: op %d appends %q, which contains the list separator 0x1f", ErrInvalid, i, o.Value)
			}
		default:
			return fmt.Errorf("%w: op %d has unknown function %q (want r, w, append or check)", ErrInvalid, i, o.F)
		}
	}
	return nil
}

// SplitList returns the elements of a list value built by Append.
func SplitList(v string) []string {
	if v == "" {
		return []string{}
	}
	parts := strings.Split(v, ListSep)
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

// Keys returns the distinct keys ops touch, sorted.
func Keys(ops []MicroOp) []string {
	ks := make([]string, 0, len(ops))
	for _, o := range ops {
		ks = append(ks, o.Key)
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// KV is one key's new value, as Exec returns them.
type KV struct {
	Key, Value string
}

// Exec runs ops against get (the store's view before the transaction) with
// read-your-writes, and returns the results and the final value of every
// key the transaction wrote, sorted by key; ok is false when a Check
// failed, and then nothing may be applied. ops must have passed Validate.
func Exec(ops []MicroOp, get func(key string) (string, bool)) (res []MicroResult, writes []KV, ok bool) {
	local := map[string]string{}
	res = make([]MicroResult, len(ops))
	ok = true
	for i, o := range ops {
		cur, found := local[o.Key]
		if !found {
			cur, found = get(o.Key)
		}
		r := MicroResult{F: o.F, Key: o.Key, Value: o.Value}
		switch o.F {
		case Read:
			r.Value, r.Found = cur, found
			if found {
				r.List = SplitList(cur)
			}
		case Write:
			local[o.Key] = o.Value
		case Append:
			local[o.Key] = cur + o.Value + ListSep
		case Check:
			r.Value, r.Found = cur, found
			ok = ok && cur == o.Value
		}
		res[i] = r
	}
	writes = make([]KV, 0, len(local))
	for k, v := range local {
		writes = append(writes, KV{k, v})
	}
	slices.SortFunc(writes, func(a, b KV) int { return strings.Compare(a.Key, b.Key) })
	return res, writes, ok
}

func fcode(f string) byte {
	switch f {
	case Read:
		return 1
	case Write:
		return 2
	case Append:
		return 3
	case Check:
		return 4
	}
	return 0
}

var fnames = [...]string{1: Read, 2: Write, 3: Append, 4: Check}

// Encode returns the ops' compact encoding: uvarint count, then per op a
// function byte (1 r, 2 w, 3 append, 4 check), key, and for all but r the value,
// strings as uvarint length and bytes. ops must have passed Validate.
func Encode(ops []MicroOp) []byte {
	return AppendOps(nil, ops)
}

// AppendOps appends Encode(ops) to b.
func AppendOps(b []byte, ops []MicroOp) []byte {
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, o := range ops {
		b = append(b, fcode(o.F))
		b = appendString(b, o.Key)
		if o.F != Read {
			b = appendString(b, o.Value)
		}
	}
	return b
}

// Decode decodes an Encode output, rejecting truncated input, trailing
// bytes, unknown functions and anything Validate refuses.
func Decode(b []byte) ([]MicroOp, error) {
	d := Decoder{B: b}
	ops := d.Ops()
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode txn: %w", err)
	}
	if err := Validate(ops); err != nil {
		return nil, fmt.Errorf("decode txn: %w", err)
	}
	return ops, nil
}

const flagFound = 1

// EncodeResults returns the results' compact encoding: uvarint count, then
// per result a function byte, a flags byte (1 = found), key and value. List
// is not sent: DecodeResults rebuilds it from Value.
func EncodeResults(rs []MicroResult) []byte {
	return AppendResults(nil, rs)
}

// AppendResults appends EncodeResults(rs) to b.
func AppendResults(b []byte, rs []MicroResult) []byte {
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		var flags byte
		if r.Found {
			flags = flagFound
		}
		b = append(b, fcode(r.F), flags)
		b = appendString(b, r.Key)
		b = appendString(b, r.Value)
	}
	return b
}

// DecodeResults decodes an EncodeResults output.
func DecodeResults(b []byte) ([]MicroResult, error) {
	d := Decoder{B: b}
	rs := d.Results()
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode txn results: %w", err)
	}
	return rs, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decoder reads this package's encodings from B; the first error sticks
// and every later read returns zero values. Other packages use it to embed
// transactions in their own records.
type Decoder struct {
	B   []byte
	Pos int
	Err error
}

// Fail records msg as the decoder's error unless it already has one.
func (d *Decoder) Fail(msg string) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: %s", ErrMalformed, msg)
	}
}

// Byte reads one byte.
func (d *Decoder) Byte(what string) byte {
	if d.Err != nil {
		return 0
	}
	if d.Pos >= len(d.B) {
		d.Fail("missing " + what)
		return 0
	}
	c := d.B[d.Pos]
	d.Pos++
	return c
}

// Uvarint reads a minimally encoded uvarint.
func (d *Decoder) Uvarint(what string) uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B[d.Pos:])
	if n <= 0 || (n > 1 && d.B[d.Pos+n-1] == 0) {
		d.Fail(fmt.Sprintf("bad %s at byte %d", what, d.Pos))
		return 0
	}
	d.Pos += n
	return v
}

// String reads a uvarint-length-prefixed string.
func (d *Decoder) String(what string) string {
	n := d.Uvarint(what + " length")
	if d.Err != nil {
		return ""
	}
	if n > uint64(len(d.B)-d.Pos) {
		d.Fail(fmt.Sprintf("%s is %d bytes, %d left", what, n, len(d.B)-d.Pos))
		return ""
	}
	s := string(d.B[d.Pos : d.Pos+int(n)])
	d.Pos += int(n)
	return s
}

// Count reads an element count and refuses one that the remaining input
// cannot hold at min bytes per element.
func (d *Decoder) Count(what string, min int) int {
	n := d.Uvarint(what)
	if d.Err == nil && n > uint64((len(d.B)-d.Pos)/min) {
		d.Fail(fmt.Sprintf("%s %d exceeds input", what, n))
		return 0
	}
	return int(n)
}

func (d *Decoder) fname(what string) string {
	c := d.Byte(what)
	if d.Err == nil && (c == 0 || int(c) >= len(fnames)) {
		d.Fail(fmt.Sprintf("unknown %s %d", what, c))
		return ""
	}
	return fnames[c]
}

// Ops reads an AppendOps encoding.
func (d *Decoder) Ops() []MicroOp {
	n := d.Count("op count", 2)
	if d.Err == nil && n > MaxOps {
		d.Fail(fmt.Sprintf("%d ops, at most %d", n, MaxOps))
	}
	var ops []MicroOp
	for i := 0; i < n && d.Err == nil; i++ {
		o := MicroOp{F: d.fname("function")}
		o.Key = d.String("key")
		if o.F != Read {
			o.Value = d.String("value")
		}
		ops = append(ops, o)
	}
	return ops
}

// Results reads an AppendResults encoding.
func (d *Decoder) Results() []MicroResult {
	n := d.Count("result count", 4)
	var rs []MicroResult
	for i := 0; i < n && d.Err == nil; i++ {
		r := MicroResult{F: d.fname("function")}
		flags := d.Byte("flags")
		if d.Err == nil && flags&^flagFound != 0 {
			d.Fail(fmt.Sprintf("unknown flags %#x", flags))
		}
		r.Found = flags&flagFound != 0
		r.Key = d.String("key")
		r.Value = d.String("value")
		if r.F == Read && r.Found {
			r.List = SplitList(r.Value)
		}
		rs = append(rs, r)
	}
	return rs
}

// Finish returns the decoder's error, or one for trailing bytes.
func (d *Decoder) Finish() error {
	if d.Err == nil && d.Pos != len(d.B) {
		d.Fail(fmt.Sprintf("%d trailing bytes", len(d.B)-d.Pos))
	}
	return d.Err
}
