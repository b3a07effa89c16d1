// Package wirebin holds the binary encoding helpers shared by the kvnode
// codecs: append helpers for bools, length-prefixed bytes and strings, and
// Decoder, a bounds-checked reader whose first error sticks.
//
// Integers are uvarints and must be minimally encoded; byte strings and
// strings are a uvarint length followed by the bytes. Every decoding
// error wraps the sentinel the caller passes to NewDecoder, so each
// package keeps its own ErrMalformed.
package wirebin

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// AppendUvarint appends v as a uvarint.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendBool appends v as one byte, 1 or 0.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendBytes appends p as a uvarint length and the bytes.
func AppendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// AppendString appends s as a uvarint length and the bytes.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decoder reads the encodings above. The first error sticks: later reads
// return zero values and do not advance. It never panics on any input.
type Decoder struct {
	b         []byte
	pos       int
	err       error
	malformed error
	share     bool // b is private: byte fields may alias it
	noOffsets bool // uvarint errors omit "at byte N"
}

// NewDecoder returns a decoder over b whose errors wrap malformed.
// Byte fields read by Bytes are copies, so b may be reused afterwards.
func NewDecoder(b []byte, malformed error) Decoder {
	return Decoder{b: b, malformed: malformed}
}

// Shared returns d with Bytes returning subslices of the input instead of
// copies; use it only when the input is private to the decoded value.
func (d Decoder) Shared() Decoder {
	d.share = true
	return d
}

// WithoutOffsets returns d with uvarint errors reading "bad <what>"
// instead of "bad <what> at byte N".
func (d Decoder) WithoutOffsets() Decoder {
	d.noOffsets = true
	return d
}

// Err returns the sticky error, or nil.
func (d *Decoder) Err() error { return d.err }

// Rest returns the input not read yet (empty after an error-free full read).
func (d *Decoder) Rest() []byte { return d.b[d.pos:] }

// Skip advances past n bytes of the input, failing if fewer remain.
func (d *Decoder) Skip(n int) {
	if d.err != nil {
		return
	}
	if n < 0 || n > len(d.b)-d.pos {
		d.Fail(fmt.Sprintf("cannot skip %d bytes, %d left", n, len(d.b)-d.pos))
		return
	}
	d.pos += n
}

// Fail records the error "<malformed>: msg" unless there is one already.
func (d *Decoder) Fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", d.malformed, msg)
	}
}

// Byte reads one byte.
func (d *Decoder) Byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.pos >= len(d.b) {
		d.Fail("missing " + what)
		return 0
	}
	c := d.b[d.pos]
	d.pos++
	return c
}

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool(what string) bool {
	switch c := d.Byte(what); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.Fail(fmt.Sprintf("bad %s byte %d", what, c))
		return false
	}
}

// Uvarint reads a minimally encoded uvarint.
func (d *Decoder) Uvarint(what string) uint64 {
	return d.UvarintSuffix(what, "")
}

// UvarintSuffix reads a uvarint named what+suffix in errors; the name is
// only built on failure, which keeps the hot path free of allocations.
// A non-minimal encoding is rejected so every value has one encoding.
func (d *Decoder) UvarintSuffix(what, suffix string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 || (n > 1 && d.b[d.pos+n-1] == 0) {
		if d.noOffsets {
			d.Fail("bad " + what + suffix)
		} else {
			d.Fail(fmt.Sprintf("bad %s%s at byte %d", what, suffix, d.pos))
		}
		return 0
	}
	d.pos += n
	return v
}

// Uint32 reads a uvarint that must fit in 32 bits.
func (d *Decoder) Uint32(what string) uint32 {
	v := d.Uvarint(what)
	if v > math.MaxUint32 {
		d.Fail(fmt.Sprintf("%s %d out of range", what, v))
		return 0
	}
	return uint32(v)
}

// Count reads a length named what that must fit in the remaining input,
// given that each element takes at least min (> 0) bytes.
func (d *Decoder) Count(what string, min int) int {
	n := d.Uvarint(what)
	if d.err == nil && n > uint64((len(d.b)-d.pos)/min) {
		d.Fail(fmt.Sprintf("%s %d exceeds input", what, n))
		return 0
	}
	return int(n)
}

// length reads the uvarint length of a byte field named what.
func (d *Decoder) length(what string) (int, bool) {
	n := d.UvarintSuffix(what, " length")
	if d.err != nil {
		return 0, false
	}
	if n > uint64(len(d.b)-d.pos) {
		d.Fail(fmt.Sprintf("%s is %d bytes, %d left", what, n, len(d.b)-d.pos))
		return 0, false
	}
	return int(n), true
}

// Bytes reads a length-prefixed byte field; empty fields are nil.
func (d *Decoder) Bytes(what string) []byte {
	n, ok := d.length(what)
	if !ok || n == 0 {
		return nil
	}
	end := d.pos + n
	var p []byte
	if d.share {
		p = d.b[d.pos:end:end]
	} else {
		p = slices.Clone(d.b[d.pos:end])
	}
	d.pos = end
	return p
}

// String reads a length-prefixed string.
func (d *Decoder) String(what string) string {
	n, ok := d.length(what)
	if !ok {
		return ""
	}
	s := string(d.b[d.pos : d.pos+n])
	d.pos += n
	return s
}

// Finish fails on trailing bytes and returns the sticky error.
func (d *Decoder) Finish() error {
	if d.err == nil && d.pos != len(d.b) {
		d.Fail(fmt.Sprintf("%d trailing bytes", len(d.b)-d.pos))
	}
	return d.err
}
