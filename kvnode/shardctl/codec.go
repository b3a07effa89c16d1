package shardctl

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/chaoskv/chaos/kvnode/internal/wirebin"
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
	d := newDecoder(b)
	c := d.config()
	if err := d.Finish(); err != nil {
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
	d := newDecoder(b)
	o := Op{Kind: Kind(d.Byte("kind"))}
	switch o.Kind {
	case Join:
		o.Groups = d.groups()
	case Leave:
		n := d.Count("group count", 1)
		for i := 0; i < n && d.Err() == nil; i++ {
			o.GIDs = append(o.GIDs, d.gid())
		}
	case Move:
		s := d.Uvarint("shard")
		if d.Err() == nil && s >= NShards {
			d.Fail(fmt.Sprintf("shard %d outside 0..%d", s, NShards-1))
		}
		o.Shard = int(s)
		o.GID = d.gid()
	case Query:
		if d.Err() == nil {
			v, n := binary.Varint(d.Rest())
			if n <= 0 {
				d.Fail("bad query number")
			} else {
				o.Num = v
				d.Skip(n)
			}
		}
	default:
		d.Fail(fmt.Sprintf("unknown kind %d", o.Kind))
	}
	if err := d.Finish(); err != nil {
		return Op{}, fmt.Errorf("decode op: %w", err)
	}
	return o, nil
}

// Encode returns the reply's encoding: a flag byte (1 = error), then the
// error text or the configuration.
func (r Reply) Encode() []byte {
	if r.Err != "" {
		return wirebin.AppendString([]byte{1}, r.Err)
	}
	return appendConfig([]byte{0}, &r.Config)
}

// DecodeReply decodes a Reply.Encode output.
func DecodeReply(b []byte) (Reply, error) {
	d := newDecoder(b)
	var r Reply
	switch f := d.Byte("flag"); {
	case d.Err() != nil:
	case f == 1:
		n := d.Count("error length", 1)
		if d.Err() == nil {
			r.Err = string(d.Rest()[:n])
			d.Skip(n)
			if r.Err == "" {
				d.Fail("empty error")
			}
		}
	case f == 0:
		r.Config = d.config()
	default:
		d.Fail(fmt.Sprintf("unknown flag %d", f))
	}
	if err := d.Finish(); err != nil {
		return Reply{}, fmt.Errorf("decode reply: %w", err)
	}
	return r, nil
}

// decoder reads the encodings above with the shared wire decoder; the
// first error sticks and later reads return zero values.
type decoder struct{ wirebin.Decoder }

func newDecoder(b []byte) decoder { return decoder{wirebin.NewDecoder(b, ErrMalformed)} }

func (d *decoder) gid() replica.GroupID {
	v := d.Uvarint("group id")
	if d.Err() == nil && v > 1<<32-1 {
		d.Fail(fmt.Sprintf("group id %d too large", v))
	}
	return replica.GroupID(v)
}

func (d *decoder) groups() map[replica.GroupID][]replica.NodeID {
	n := d.Count("group count", 2)
	gs := make(map[replica.GroupID][]replica.NodeID, n)
	var prev replica.GroupID
	for i := 0; i < n && d.Err() == nil; i++ {
		g := d.gid()
		if d.Err() == nil && i > 0 && g <= prev {
			d.Fail(fmt.Sprintf("group %d not above previous %d", g, prev))
		}
		prev = g
		m := d.Count("member count", 1)
		members := make([]replica.NodeID, 0, m)
		for j := 0; j < m && d.Err() == nil; j++ {
			v := d.Uvarint("node id")
			if d.Err() == nil && (v == 0 || v > 1<<32-1) {
				d.Fail(fmt.Sprintf("bad node id %d", v))
			}
			members = append(members, replica.NodeID(v))
		}
		gs[g] = members
	}
	return gs
}

func (d *decoder) config() Config {
	c := Config{Num: d.Uvarint("config number")}
	for s := range c.Shards {
		c.Shards[s] = d.gid()
	}
	c.Groups = d.groups()
	for s, g := range c.Shards {
		if _, ok := c.Groups[g]; d.Err() == nil && g != 0 && !ok {
			d.Fail(fmt.Sprintf("shard %d assigned to group %d, which is not in the configuration", s, g))
		}
	}
	return c
}
