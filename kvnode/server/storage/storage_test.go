package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func entries(from, to uint64, tag string) []replica.Entry {
	var es []replica.Entry
	for i := from; i <= to; i++ {
		es = append(es, replica.Entry{Index: i, Data: []byte(fmt.Sprintf("%s%d", tag, i))})
	}
	return es
}

func reopen(t *testing.T, s *Store, dir string) (*Store, *replica.Durable) {
	t.Helper()
	if s != nil {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s, d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, d
}

func TestRecoverWhatWasSaved(t *testing.T) {
	for _, once := range []bool{false, true} {
		t.Run(fmt.Sprintf("SyncOnce=%v", once), func(t *testing.T) { testRecover(t, Options{SyncOnce: once}) })
	}
}

func testRecover(t *testing.T, opts Options) {
	dir := t.TempDir()
	s, d, err := OpenWith(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != nil || d.Snapshot != nil || len(d.Entries) != 0 {
		t.Fatalf("fresh store not empty: %+v", d)
	}
	syncs := 0
	s.OnSync = func(time.Duration) { syncs++ }
	steps := []struct {
		p         replica.Persist
		wantSyncs int
	}{
		{replica.Persist{State: []byte("s1"), Entries: entries(1, 5, "a")}, 1}, // one transaction
		{replica.Persist{Entries: entries(6, 7, "a")}, 1},
		{replica.Persist{State: []byte("s2")}, 1},
		{replica.Persist{State: []byte("s3"), Truncate: true, TruncateAfter: 4, Entries: entries(5, 6, "b")}, 3},
		{replica.Persist{Entries: []replica.Entry{{Index: 9, Data: []byte("hole")}}}, 1},
	}
	for i, st := range steps {
		syncs = 0
		if err := s.Save(&st.p); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if opts.SyncOnce {
			st.wantSyncs = 1
		}
		if syncs != st.wantSyncs {
			t.Errorf("step %d: %d fsynced writes, want %d", i, syncs, st.wantSyncs)
		}
	}
	s.Close()
	s, d, err = OpenWith(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := append(append(entries(1, 4, "a"), entries(5, 6, "b")...), replica.Entry{Index: 9, Data: []byte("hole")})
	if string(d.State) != "s3" || !reflect.DeepEqual(d.Entries, want) {
		t.Fatalf("recovered state %q entries %v, want s3 and %v", d.State, d.Entries, want)
	}
}

func TestNewerStateWins(t *testing.T) {
	// A state in the stable store written after one that rode with entries
	// must win, and the other way round.
	dir := t.TempDir()
	s, _ := reopen(t, nil, dir)
	mustSave(t, s, replica.Persist{State: []byte("old"), Entries: entries(1, 1, "x")})
	mustSave(t, s, replica.Persist{State: []byte("new")})
	s, d := reopen(t, s, dir)
	if string(d.State) != "new" {
		t.Fatalf("state %q, want new", d.State)
	}
	mustSave(t, s, replica.Persist{State: []byte("newer"), Entries: entries(2, 2, "x")})
	_, d = reopen(t, s, dir)
	if string(d.State) != "newer" {
		t.Fatalf("state %q, want newer", d.State)
	}
}

func mustSave(t *testing.T, s *Store, p replica.Persist) {
	t.Helper()
	if err := s.Save(&p); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotTruncatesLog(t *testing.T) {
	dir := t.TempDir()
	s, _ := reopen(t, nil, dir)
	mustSave(t, s, replica.Persist{State: []byte("s"), Entries: entries(1, 10, "e")})
	mustSave(t, s, replica.Persist{Snapshot: &replica.Snapshot{Index: 4, Meta: []byte("m4"), Data: []byte("d4")}})
	mustSave(t, s, replica.Persist{Snapshot: &replica.Snapshot{Index: 7, Meta: []byte("m7"), Data: []byte("d7")}})
	s, d := reopen(t, s, dir)
	if d.Snapshot == nil || d.Snapshot.Index != 7 || string(d.Snapshot.Meta) != "m7" || string(d.Snapshot.Data) != "d7" {
		t.Fatalf("snapshot %+v", d.Snapshot)
	}
	if !reflect.DeepEqual(d.Entries, entries(8, 10, "e")) {
		t.Fatalf("entries %v", d.Entries)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "snap-*"))
	if len(names) != 1 {
		t.Fatalf("snapshot files %v, want only the newest", names)
	}
	// A corrupt newest snapshot is skipped in favour of an older valid one
	// and a leftover temporary file is removed.
	b, _ := os.ReadFile(names[0])
	if err := os.WriteFile(filepath.Join(dir, snapName(9)), append(b[:len(b)-1], b[len(b)-1]^1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, snapName(10)+".tmp"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, d = reopen(t, s, dir)
	if d.Snapshot == nil || d.Snapshot.Index != 7 {
		t.Fatalf("snapshot after corruption: %+v", d.Snapshot)
	}
	if _, err := os.Stat(filepath.Join(dir, snapName(10)+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temporary snapshot not removed: %v", err)
	}
}

func TestIndexZeroRejected(t *testing.T) {
	s, _ := reopen(t, nil, t.TempDir())
	if err := s.Save(&replica.Persist{Entries: []replica.Entry{{Index: 0}}}); err == nil {
		t.Fatal("entry at index 0 accepted")
	}
}

// FuzzDecodeSnapshot checks that snapshot decoding rejects garbage without
// panicking.
func FuzzDecodeSnapshot(f *testing.F) {
	dir := f.TempDir()
	s, _, err := Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Save(&replica.Persist{Snapshot: &replica.Snapshot{Index: 3, Meta: []byte("meta"), Data: []byte("data")}}); err != nil {
		f.Fatal(err)
	}
	s.Close()
	good, err := os.ReadFile(filepath.Join(dir, snapName(3)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(snapMagic))
	f.Add(good[:len(good)-5])
	f.Fuzz(func(t *testing.T, b []byte) {
		sn, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		if bytes.Equal(b, good) && (sn.Index != 3 || string(sn.Data) != "data") {
			t.Fatalf("good snapshot decoded as %+v", sn)
		}
	})
}

// BenchmarkSave measures one fsynced Save of a batch of 150-byte entries
// (and a hard state), in both sync modes: the floor under every durable
// write the server does.
func BenchmarkSave(b *testing.B) {
	for _, once := range []bool{false, true} {
		for _, n := range []int{1, 64} {
			b.Run(fmt.Sprintf("SyncOnce=%v/entries=%d", once, n), func(b *testing.B) {
				s, _, err := OpenWith(b.TempDir(), Options{SyncOnce: once})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				data := make([]byte, 150)
				es := make([]replica.Entry, n)
				idx := uint64(0)
				for i := 0; i < b.N; i++ {
					for j := range es {
						idx++
						es[j] = replica.Entry{Index: idx, Data: data}
					}
					if err := s.Save(&replica.Persist{State: []byte("state"), Entries: es}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
