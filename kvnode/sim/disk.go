package sim

import (
	"sort"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// disk is a node's stable storage: it survives crashes. It applies
// replica.Persist exactly as the contract says, in field order: State,
// Truncate, Entries, Snapshot (which drops every entry at or below its
// index). Everything stored is copied, so a core that reuses its buffers
// cannot change what is "on disk".
type disk struct {
	state    []byte
	snapshot *replica.Snapshot
	entries  []replica.Entry // ascending by Index
	writes   int             // Persist records applied, for statistics
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func (d *disk) apply(p *replica.Persist) {
	if p.Empty() {
		return
	}
	d.writes++
	if p.State != nil {
		d.state = cloneBytes(p.State)
	}
	if p.Truncate {
		i := sort.Search(len(d.entries), func(i int) bool { return d.entries[i].Index > p.TruncateAfter })
		clear(d.entries[i:])
		d.entries = d.entries[:i]
	}
	for _, e := range p.Entries {
		d.write(replica.Entry{Index: e.Index, Data: cloneBytes(e.Data)})
	}
	if s := p.Snapshot; s != nil {
		d.snapshot = &replica.Snapshot{Index: s.Index, Meta: cloneBytes(s.Meta), Data: cloneBytes(s.Data)}
		i := sort.Search(len(d.entries), func(i int) bool { return d.entries[i].Index > s.Index })
		n := copy(d.entries, d.entries[i:])
		clear(d.entries[n:])
		d.entries = d.entries[:n]
	}
}

// write stores e, replacing an entry at the same index.
func (d *disk) write(e replica.Entry) {
	n := len(d.entries)
	if n == 0 || d.entries[n-1].Index < e.Index {
		d.entries = append(d.entries, e)
		return
	}
	i := sort.Search(n, func(i int) bool { return d.entries[i].Index >= e.Index })
	if d.entries[i].Index == e.Index {
		d.entries[i] = e
		return
	}
	d.entries = append(d.entries, replica.Entry{})
	copy(d.entries[i+1:], d.entries[i:])
	d.entries[i] = e
}

// durable returns what a restarting core reads: a deep copy, so the core
// cannot alter the disk through it.
func (d *disk) durable() *replica.Durable {
	out := &replica.Durable{State: cloneBytes(d.state)}
	if d.snapshot != nil {
		s := *d.snapshot
		s.Meta, s.Data = cloneBytes(s.Meta), cloneBytes(s.Data)
		out.Snapshot = &s
	}
	if len(d.entries) > 0 {
		out.Entries = make([]replica.Entry, len(d.entries))
		for i, e := range d.entries {
			out.Entries[i] = replica.Entry{Index: e.Index, Data: cloneBytes(e.Data)}
		}
	}
	return out
}
