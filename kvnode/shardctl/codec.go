package shardctl

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Encodings: integers are uvarints (minimal), strings and lists are
// length-prefixed, and maps are written in ascending key order so that
// equal values encode identically.

func appendGroups(b []byte, gs map[replica.GroupID][]replica.NodeID) []byte {
	b = binary.AppendUvarint(b, uint64(len(gs)))
	for _, g := range slices.Sorted(maps.Keys(gs)) {
		b = binary.AppendUvarint(b, uint64(g))
		b = binary.AppendUvarint(b, uint64(len(gs[g])))
		for _, n := range gs[g] {
			b = binary.AppendUvarint(b, uint64(n))
		}
	}
	return b
}

func appendConfig(b []byte, c *Config) []byte {
	b = binary.AppendUvarint(b, c.Num)
	for _, g := range c.Shards {
		b = binary.AppendUvarint(b, uint64(g))
	}
	return appendGroups(b, c.Groups)
}

// EncodeConfig returns a configuration's encoding: Num, the NShards owners,
// then the groups in ascending id order with their members.
func EncodeConfig(c *Config) []byte { return appendConfig(nil, c) }

// DecodeConfig decodes an EncodeConfig output.
func DecodeConfig(b []byte) (Config, error) {
	d := decoder{b: b}
	c := d.config()
	if err := d.finish(); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	return c, nil
}

// Encode returns the op's encoding: kind byte, then the kind's fields.
func (o Op) Encode() []byte {
	b := []byte{byte(o.Kind)}
	switch o.Kind {
	case Join:
		b = appendGroups(b, o.Groups)
	case Leave:
		b = binary.AppendUvarint(b, uint64(len(o.GIDs)))
		for _, g := range o.GIDs {
			b = binary.AppendUvarint(b, uint64(g))
		}
	case Move:
		b = binary.AppendUvarint(b, uint64(o.Shard))
		b = binary.AppendUvarint(b, uint64(o.GID))
	case Query:
		b = binary.AppendVarint(b, o.Num)
	}
	return b
}

// DecodeOp decodes an Op.Encode output, rejecting unknown kinds, truncated
// input and trailing bytes.
func DecodeOp(b []byte) (Op, error) {
	d := decoder{b: b}
	o := Op{Kind: Kind(d.byte("kind"))}
	switch o.Kind {
	case Join:
		o.Groups = d.groups()
	case Leave:
		n := d.count("group count", 1)
		for i := 0; i < n && d.err == nil; i++ {
			o.GIDs = append(o.GIDs, d.gid())
		}
	case Move:
		s := d.uvarint("shard")
		if d.err == nil && s >= NShards {
			d.fail(fmt.Sprintf("shard %d outside 0..%d", s, NShards-1))
		}
		o.Shard = int(s)
		o.GID = d.gid()
	case Query:
		if d.err == nil {
			v, n := binary.Varint(d.b[d.pos:])
			if n <= 0 {
				d.fail("bad query number")
			} else {
				o.Num = v
				d.pos += n
			}
		}
	default:
		d.fail(fmt.Sprintf("unknown kind %d", o.Kind))
	}
	if err := d.finish(); err != nil {
		return Op{}, fmt.Errorf("decode op: %w", err)
	}
	return o, nil
}

// Encode returns the reply's encoding: a flag byte (1 = error), then the
// error text or the configuration.
func (r Reply) Encode() []byte {
	if r.Err != "" {
		b := []byte{1}
		b = binary.AppendUvarint(b, uint64(len(r.Err)))
		return append(b, r.Err...)
	}
	return appendConfig([]byte{0}, &r.Config)
}

// DecodeReply decodes a Reply.Encode output.
func DecodeReply(b []byte) (Reply, error) {
	d := decoder{b: b}
	var r Reply
	switch f := d.byte("flag"); {
	case d.err != nil:
	case f == 1:
		n := d.count("error length", 1)
		if d.err == nil {
			r.Err = string(d.b[d.pos : d.pos+n])
			d.pos += n
			if r.Err == "" {
				d.fail("empty error")
			}
		}
	case f == 0:
		r.Config = d.config()
	default:
		d.fail(fmt.Sprintf("unknown flag %d", f))
	}
	if err := d.finish(); err != nil {
		return Reply{}, fmt.Errorf("decode reply: %w", err)
	}
	return r, nil
}

type decoder struct {
	b   []byte
	pos int
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, msg)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.pos >= len(d.b) {
		d.fail("missing " + what)
		return 0
	}
	c := d.b[d.pos]
	d.pos++
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 || (n > 1 && d.b[d.pos+n-1] == 0) {
		d.fail(fmt.Sprintf("bad %s at byte %d", what, d.pos))
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) count(what string, min int) int {
	n := d.uvarint(what)
	if d.err == nil && n > uint64((len(d.b)-d.pos)/min) {
		d.fail(fmt.Sprintf("%s %d exceeds input", what, n))
		return 0
	}
	return int(n)
}

func (d *decoder) gid() replica.GroupID {
	v := d.uvarint("group id")
	if d.err == nil && v > 1<<32-1 {
		d.fail(fmt.Sprintf("group id %d too large", v))
	}
	return replica.GroupID(v)
}

func (d *decoder) groups() map[replica.GroupID][]replica.NodeID {
	n := d.count("group count", 2)
	gs := make(map[replica.GroupID][]replica.NodeID, n)
	var prev replica.GroupID
	for i := 0; i < n && d.err == nil; i++ {
		g := d.gid()
		if d.err == nil && i > 0 && g <= prev {
			d.fail(fmt.Sprintf("group %d not above previous %d", g, prev))
		}
		prev = g
		m := d.count("member count", 1)
		members := make([]replica.NodeID, 0, m)
		for j := 0; j < m && d.err == nil; j++ {
			v := d.uvarint("node id")
			if d.err == nil && (v == 0 || v > 1<<32-1) {
				d.fail(fmt.Sprintf("bad node id %d", v))
			}
			members = append(members, replica.NodeID(v))
		}
		gs[g] = members
	}
	return gs
}

func (d *decoder) config() Config {
	c := Config{Num: d.uvarint("config number")}
	for s := range c.Shards {
		c.Shards[s] = d.gid()
	}
	c.Groups = d.groups()
	for s, g := range c.Shards {
		if _, ok := c.Groups[g]; d.err == nil && g != 0 && !ok {
			d.fail(fmt.Sprintf("shard %d assigned to group %d, which is not in the configuration", s, g))
		}
	}
	return c
}

func (d *decoder) finish() error {
	if d.err == nil && d.pos != len(d.b) {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)-d.pos))
	}
	return d.err
}
