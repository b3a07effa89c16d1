package sim

import (
	"errors"
	"math/rand"
	"sort"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// disk is a node's simulated storage, a replica.Storage that crashes like a
// disk: Write only reaches a cache (pending), Sync moves the cache to stable
// storage, and a crash keeps any subset of the pending writes, the last one
// it keeps possibly torn. A Sync can be made to fail, after which the
// pending writes are neither lost nor durable until the crash that must
// follow decides. That crash is a power loss; a process crash (flush)
// keeps every pending write, as the kernel writes back a dead process's
// page cache.
//
// A torn write keeps a prefix of the transactions the real store
// (server/storage) splits a Persist into: State and Entries together then
// Snapshot, or, when it truncates, State, Truncate, Entries, Snapshot.
// Everything stored is copied, so a core that reuses its buffers cannot
// change what is on disk.
type disk struct {
	stable  image
	pending []replica.Persist
	// lies makes Sync succeed without making anything durable, as a store
	// that fsyncs the wrong file: the writes leave pending (so the node
	// and the oracles believe them synced) for believed, which a process
	// crash keeps and a power loss may drop. Tests only.
	lies     bool
	believed []replica.Persist
	rng      *rand.Rand
	// failSyncs makes the next so many Syncs fail.
	failSyncs int
	written   uint64 // Writes so far
	synced    uint64 // Writes made durable by a Sync
	// Statistics.
	writes, syncs, lost, torn int
}

// image is what a disk holds: the state a restarting core reads.
type image struct {
	state    []byte
	snapshot *replica.Snapshot
	entries  []replica.Entry // ascending by Index
}

var _ replica.Storage = (*disk)(nil)

// errSyncFailed is what a failing Sync returns.
var errSyncFailed = errors.New("simulated disk: fsync failed")

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func clonePersist(p *replica.Persist) replica.Persist {
	c := replica.Persist{State: cloneBytes(p.State), Truncate: p.Truncate, TruncateAfter: p.TruncateAfter}
	if len(p.Entries) > 0 {
		c.Entries = make([]replica.Entry, len(p.Entries))
		for i, e := range p.Entries {
			c.Entries[i] = replica.Entry{Index: e.Index, Data: cloneBytes(e.Data)}
		}
	}
	if s := p.Snapshot; s != nil {
		c.Snapshot = &replica.Snapshot{Index: s.Index, Meta: cloneBytes(s.Meta), Data: cloneBytes(s.Data)}
	}
	return c
}

// Write puts a copy of p in the cache.
func (d *disk) Write(p *replica.Persist) error {
	if p.Empty() {
		return nil
	}
	d.writes++
	d.written++
	d.pending = append(d.pending, clonePersist(p))
	return nil
}

// Sync makes every pending write durable, unless it was told to fail.
func (d *disk) Sync() error {
	d.syncs++
	if d.failSyncs > 0 {
		d.failSyncs--
		return errSyncFailed
	}
	if d.lies {
		d.believed = append(d.believed, d.pending...)
		clear(d.pending)
		d.pending = d.pending[:0]
		d.synced = d.written
		return nil
	}
	d.flush()
	return nil
}

// Load returns a deep copy of what is durable.
func (d *disk) Load() (*replica.Durable, error) { return d.stable.durable(), nil }

// syncedState is the hard state the disk has acknowledged as synced: the
// oracles judge a node by what its storage told it, so a lying disk
// (lies) shows only when a power loss drops what it claimed.
func (d *disk) syncedState() []byte {
	for i := len(d.believed) - 1; i >= 0; i-- {
		if s := d.believed[i].State; s != nil {
			return s
		}
	}
	return d.stable.state
}

// unsynced reports whether writes wait in the cache.
func (d *disk) unsynced() bool { return len(d.pending) > 0 }

// flush moves every pending write to stable storage without a Sync, as
// the kernel writes back the page cache of a process that died: nothing is
// lost, nothing is torn, and no Sync is counted.
func (d *disk) flush() {
	d.pending = append(d.believed, d.pending...)
	d.believed = nil
	for i := range d.pending {
		d.stable.apply(&d.pending[i], -1)
	}
	clear(d.pending)
	d.pending = d.pending[:0]
	d.synced = d.written
}

// crash decides the fate of the pending writes: each survives or not (a
// coin each), and the last survivor may be torn.
func (d *disk) crash() {
	d.pending = append(d.believed, d.pending...)
	d.believed = nil
	if len(d.pending) == 0 {
		return
	}
	last := -1
	keep := make([]bool, len(d.pending))
	for i := range d.pending {
		if d.rng.Intn(2) == 0 {
			keep[i], last = true, i
		} else {
			d.lost++
		}
	}
	for i := range d.pending {
		if !keep[i] {
			continue
		}
		txns := -1
		if i == last && d.rng.Intn(2) == 0 {
			if n := transactions(&d.pending[i]); n > 1 {
				txns = 1 + d.rng.Intn(n-1)
				d.torn++
			}
		}
		d.stable.apply(&d.pending[i], txns)
	}
	clear(d.pending)
	d.pending = d.pending[:0]
	d.synced = d.written
}

// transactions counts the transactions the real store writes p in.
func transactions(p *replica.Persist) int {
	n := 0
	if p.Truncate {
		if p.State != nil {
			n++
		}
		n++ // the truncation
		if len(p.Entries) > 0 {
			n++
		}
	} else if p.State != nil || len(p.Entries) > 0 {
		n++
	}
	if p.Snapshot != nil {
		n++
	}
	return n
}

// apply applies p in the contract's field order: State, Truncate, Entries,
// Snapshot (which drops every entry at or below its index). txns >= 0
// keeps only the first txns transactions of p (see transactions).
func (im *image) apply(p *replica.Persist, txns int) {
	left := func() bool {
		if txns < 0 {
			return true
		}
		txns--
		return txns >= 0
	}
	if p.Truncate {
		if p.State != nil {
			if !left() {
				return
			}
			im.state = p.State
		}
		if !left() {
			return
		}
		i := sort.Search(len(im.entries), func(i int) bool { return im.entries[i].Index > p.TruncateAfter })
		clear(im.entries[i:])
		im.entries = im.entries[:i]
		if len(p.Entries) > 0 {
			if !left() {
				return
			}
			for _, e := range p.Entries {
				im.write(e)
			}
		}
	} else if p.State != nil || len(p.Entries) > 0 {
		if !left() {
			return
		}
		if p.State != nil {
			im.state = p.State
		}
		for _, e := range p.Entries {
			im.write(e)
		}
	}
	if s := p.Snapshot; s != nil {
		if !left() {
			return
		}
		im.snapshot = s
		i := sort.Search(len(im.entries), func(i int) bool { return im.entries[i].Index > s.Index })
		n := copy(im.entries, im.entries[i:])
		clear(im.entries[n:])
		im.entries = im.entries[:n]
	}
}

// write stores e, replacing an entry at the same index.
func (im *image) write(e replica.Entry) {
	n := len(im.entries)
	if n == 0 || im.entries[n-1].Index < e.Index {
		im.entries = append(im.entries, e)
		return
	}
	i := sort.Search(n, func(i int) bool { return im.entries[i].Index >= e.Index })
	if im.entries[i].Index == e.Index {
		im.entries[i] = e
		return
	}
	im.entries = append(im.entries, replica.Entry{})
	copy(im.entries[i+1:], im.entries[i:])
	im.entries[i] = e
}

// durable returns a deep copy, so the core cannot alter the disk through
// it.
func (im *image) durable() *replica.Durable {
	out := &replica.Durable{State: cloneBytes(im.state)}
	if im.snapshot != nil {
		s := *im.snapshot
		s.Meta, s.Data = cloneBytes(s.Meta), cloneBytes(s.Data)
		out.Snapshot = &s
	}
	if len(im.entries) > 0 {
		out.Entries = make([]replica.Entry, len(im.entries))
		for i, e := range im.entries {
			out.Entries[i] = replica.Entry{Index: e.Index, Data: cloneBytes(e.Data)}
		}
	}
	return out
}
