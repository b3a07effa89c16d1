// Package storage makes a replication core's Persist durable in one data
// directory and rebuilds its replica.Durable from that directory alone.
//
// Log entries and the hard state live in a raft-boltdb store (log.db):
// entries as raft.Log{Index, Data} in its LogStore, the hard state in its
// StableStore. Snapshots are files (snap-<index>.snap) written to a temporary
// name, fsynced, renamed and followed by an fsync of the directory.
//
// # One fsync per Persist
//
// bbolt itself syncs twice per transaction (data pages, then the meta
// page), which is what makes a bolt file survive power loss. With
// Options.SyncOnce the store opens bolt without its own syncs and ends each
// Save with a single fdatasync instead. That is as safe as the default
// against a process crash (SIGKILL: every write is in the page cache, in
// order), but a power loss in the middle of a Save may leave the meta page
// on disk without the pages it points to, so the default stays the
// two-sync mode.
//
// raft-boltdb runs every StoreLogs, DeleteRange and Set call as its own
// bbolt transaction, and every committed bbolt transaction is one fsync. To
// make the common Persist (new hard state plus new entries) a single
// transaction, the hard state then travels inside the StoreLogs call as a
// log record at the reserved index 0; otherwise it goes to the StableStore.
// Both copies carry a sequence number, and recovery takes the newer one.
// So State+Entries is atomic and costs one fsync.
//
// When a Persist truncates the log, the writes are separate transactions in
// the contract's field order: State, then Truncate, then Entries. A crash
// between them leaves a prefix of that order on disk. Because the runtime
// sends none of the Ready's messages before Save returns, such a prefix is
// the state of a replica that crashed while handling its input: everything
// promised by earlier messages is still there, except what the new State
// (already durable) tells the core to discard. Snapshots are written to
// their file before the entries they cover are deleted, so a crash in
// between only leaves redundant entries, which recovery skips.
package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

var stateKey = []byte("hard-state")

// Store is one replica's durable storage, a replica.Storage. It is not safe for concurrent
// use; the replica's event loop owns it.
type Store struct {
	dir     string
	db      *raftboltdb.BoltStore
	seq     uint64 // sequence number of the newest hard state written
	snapIdx uint64
	// OnSync, when set, is called with the duration of every fsync'd
	// write (one bbolt transaction or one snapshot file).
	OnSync func(time.Duration)
	logs   []*raft.Log // reused between Saves
	opts   Options
	dirty  bool // written since the last Sync (SyncOnce only)
}

// Options tune a Store.
type Options struct {
	// SyncOnce replaces bbolt's two syncs per transaction by one sync per
	// Save (see the package documentation for what that trades).
	SyncOnce bool
	// UnsafeNoSync never syncs anything: not bbolt's transactions, not its
	// file growth, not snapshot files. It exists only so that tests can
	// show a store that loses acknowledged writes at a power loss; no
	// real deployment may set it.
	UnsafeNoSync bool
}

// Open opens (creating if needed) the storage in dir with default options
// and returns what the core must restart from.
func Open(dir string) (*Store, *replica.Durable, error) {
	return OpenWith(dir, Options{})
}

// OpenWith is Open with options.
func OpenWith(dir string, opts Options) (*Store, *replica.Durable, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	db, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, "log.db"),
		BoltOptions: &bbolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType, NoGrowSync: opts.UnsafeNoSync},
		NoSync:      opts.SyncOnce || opts.UnsafeNoSync,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("storage: open %s: %w", filepath.Join(dir, "log.db"), err)
	}
	s := &Store{dir: dir, db: db, opts: opts}
	d, err := s.recover()
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return s, d, nil
}

// Close closes the bolt database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

func (s *Store) recover() (*replica.Durable, error) {
	d := &replica.Durable{}
	snap, err := s.loadSnapshot()
	if err != nil {
		return nil, err
	}
	if snap != nil {
		d.Snapshot = snap
		s.snapIdx = snap.Index
	}
	// The hard state: the newer of the StableStore copy and the index-0 log
	// record.
	if v, err := s.db.Get(stateKey); err == nil {
		seq, st, err := splitState(v)
		if err != nil {
			return nil, fmt.Errorf("storage: stable store hard state: %w", err)
		}
		s.seq, d.State = seq, st
	} else if !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return nil, fmt.Errorf("storage: read hard state: %w", err)
	}
	var l raft.Log
	if err := s.db.GetLog(0, &l); err == nil {
		seq, st, err := splitState(l.Data)
		if err != nil {
			return nil, fmt.Errorf("storage: log hard state: %w", err)
		}
		if seq > s.seq {
			s.seq, d.State = seq, st
		}
	} else if !errors.Is(err, raft.ErrLogNotFound) {
		return nil, fmt.Errorf("storage: read log hard state: %w", err)
	}
	first, err := s.db.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("storage: first index: %w", err)
	}
	last, err := s.db.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("storage: last index: %w", err)
	}
	first = max(first, s.snapIdx+1, 1)
	for i := first; i <= last && last != 0; i++ {
		var l raft.Log
		if err := s.db.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue // cores may leave holes (Paxos slots)
			}
			return nil, fmt.Errorf("storage: read entry %d: %w", i, err)
		}
		d.Entries = append(d.Entries, replica.Entry{Index: l.Index, Data: l.Data})
	}
	return d, nil
}

func splitState(v []byte) (uint64, []byte, error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("record of %d bytes is too short", len(v))
	}
	return binary.BigEndian.Uint64(v), append([]byte{}, v[8:]...), nil
}

func (s *Store) stateRecord(st []byte) []byte {
	s.seq++
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(st)), s.seq), st...)
}

var _ replica.Storage = (*Store)(nil)

// Load reads back everything durable in the directory.
func (s *Store) Load() (*replica.Durable, error) { return s.recover() }

// Write applies p. In the default mode every bbolt transaction syncs, so p
// is durable when Write returns; with SyncOnce it may sit in the page cache
// until Sync.
func (s *Store) Write(p *replica.Persist) error {
	if p.Empty() {
		return nil
	}
	if !s.opts.SyncOnce || s.opts.UnsafeNoSync {
		return s.save(p)
	}
	// The writes only reach the page cache; the time goes to Sync, which
	// reports it.
	onSync := s.OnSync
	s.OnSync = nil
	defer func() { s.OnSync = onSync }()
	s.dirty = true
	return s.save(p)
}

// Sync makes every earlier Write durable: one fdatasync with SyncOnce, and
// nothing to do otherwise (nor with UnsafeNoSync, which never syncs).
func (s *Store) Sync() error {
	if !s.dirty {
		return nil
	}
	t := time.Now()
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("storage: sync: %w", err)
	}
	s.dirty = false
	if s.OnSync != nil {
		s.OnSync(time.Since(t))
	}
	return nil
}

// Save writes p and syncs it.
func (s *Store) Save(p *replica.Persist) error {
	if err := s.Write(p); err != nil {
		return err
	}
	return s.Sync()
}

func (s *Store) save(p *replica.Persist) error {
	s.logs = s.logs[:0]
	if p.State != nil {
		rec := s.stateRecord(p.State)
		if len(p.Entries) > 0 && !p.Truncate {
			s.logs = append(s.logs, &raft.Log{Index: 0, Data: rec})
		} else if err := s.timed(func() error { return s.db.Set(stateKey, rec) }); err != nil {
			return fmt.Errorf("storage: write hard state: %w", err)
		}
	}
	if p.Truncate {
		if err := s.timed(func() error { return s.db.DeleteRange(p.TruncateAfter+1, math.MaxUint64) }); err != nil {
			return fmt.Errorf("storage: truncate after %d: %w", p.TruncateAfter, err)
		}
	}
	for i := range p.Entries {
		e := &p.Entries[i]
		if e.Index == 0 {
			return errors.New("storage: entry index 0 is reserved")
		}
		s.logs = append(s.logs, &raft.Log{Index: e.Index, Data: e.Data, Type: raft.LogCommand})
	}
	if len(s.logs) > 0 {
		if err := s.timed(func() error { return s.db.StoreLogs(s.logs) }); err != nil {
			return fmt.Errorf("storage: write %d entries: %w", len(p.Entries), err)
		}
		clear(s.logs)
	}
	if p.Snapshot != nil {
		if err := s.saveSnapshot(p.Snapshot); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) timed(f func() error) error {
	t := time.Now()
	err := f()
	if s.OnSync != nil {
		s.OnSync(time.Since(t))
	}
	return err
}

// Snapshot file layout: magic, index, meta length, meta, data length, data,
// CRC-32C of everything before it.
const snapMagic = "KVSNAP1\n"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func snapName(idx uint64) string { return fmt.Sprintf("snap-%020d.snap", idx) }

func (s *Store) saveSnapshot(sn *replica.Snapshot) error {
	if sn.Index < s.snapIdx {
		return nil // older than what we have; nothing to gain
	}
	b := make([]byte, 0, len(snapMagic)+8+4+len(sn.Meta)+8+len(sn.Data)+4)
	b = append(b, snapMagic...)
	b = binary.BigEndian.AppendUint64(b, sn.Index)
	b = binary.BigEndian.AppendUint32(b, uint32(len(sn.Meta)))
	b = append(b, sn.Meta...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(sn.Data)))
	b = append(b, sn.Data...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	final := filepath.Join(s.dir, snapName(sn.Index))
	err := s.timed(func() error { return writeFileSync(s.dir, final, b, !s.opts.UnsafeNoSync) })
	if err != nil {
		return fmt.Errorf("storage: snapshot %d: %w", sn.Index, err)
	}
	s.snapIdx = sn.Index
	// The snapshot is durable; now the entries it covers can go.
	if err := s.timed(func() error { return s.db.DeleteRange(1, sn.Index) }); err != nil {
		return fmt.Errorf("storage: drop entries up to snapshot %d: %w", sn.Index, err)
	}
	names, _ := filepath.Glob(filepath.Join(s.dir, "snap-*.snap"))
	for _, n := range names {
		if n != final {
			if err := os.Remove(n); err != nil {
				slog.Warn("storage: remove old snapshot", "file", n, "err", err)
			}
		}
	}
	return nil
}

// writeFileSync writes b to final through a temporary file, fsyncing the
// file before the rename and the directory after it unless sync is false.
func writeFileSync(dir, final string, b []byte, sync bool) error {
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadSnapshot returns the newest valid snapshot in the directory, or nil.
func (s *Store) loadSnapshot() (*replica.Snapshot, error) {
	tmps, _ := filepath.Glob(filepath.Join(s.dir, "snap-*.snap.tmp"))
	for _, t := range tmps {
		os.Remove(t) // an unfinished write from before a crash
	}
	names, err := filepath.Glob(filepath.Join(s.dir, "snap-*.snap"))
	if err != nil {
		return nil, fmt.Errorf("storage: list snapshots: %w", err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("storage: read snapshot: %w", err)
		}
		sn, err := DecodeSnapshot(b)
		if err != nil {
			slog.Warn("storage: skipping invalid snapshot", "file", n, "err", err)
			continue
		}
		want := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "snap-"), ".snap")
		if idx, _ := strconv.ParseUint(want, 10, 64); idx != sn.Index {
			slog.Warn("storage: skipping snapshot whose name disagrees with its index", "file", n, "index", sn.Index)
			continue
		}
		return sn, nil
	}
	return nil, nil
}

// DecodeSnapshot decodes a snapshot file's contents, checking its checksum.
func DecodeSnapshot(b []byte) (*replica.Snapshot, error) {
	const minLen = len(snapMagic) + 8 + 4 + 8 + 4
	if len(b) < minLen || string(b[:len(snapMagic)]) != snapMagic {
		return nil, errors.New("not a snapshot file (bad magic or too short)")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errors.New("snapshot checksum mismatch")
	}
	p := body[len(snapMagic):]
	sn := &replica.Snapshot{Index: binary.BigEndian.Uint64(p)}
	ml := uint64(binary.BigEndian.Uint32(p[8:]))
	p = p[12:]
	if ml > uint64(len(p)) {
		return nil, errors.New("snapshot meta length beyond the file")
	}
	sn.Meta = append([]byte{}, p[:ml]...)
	p = p[ml:]
	if len(p) < 8 {
		return nil, errors.New("snapshot truncated before data length")
	}
	dl := binary.BigEndian.Uint64(p)
	p = p[8:]
	if dl != uint64(len(p)) {
		return nil, fmt.Errorf("snapshot data length %d, file holds %d", dl, len(p))
	}
	sn.Data = append([]byte{}, p...)
	return sn, nil
}
