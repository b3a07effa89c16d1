package lazyfs

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mount mounts a lazyfs over a fresh backing directory. It skips only when
// /dev/fuse is missing outside CI; any other failure to mount fails.
func mount(t *testing.T) (l *FS, mnt, backing string) {
	t.Helper()
	if _, err := os.Stat(DevFUSE); errors.Is(err, fs.ErrNotExist) && os.Getenv("CI") == "" {
		t.Skipf("skipping FUSE test: %s is missing (CI would fail here)", DevFUSE)
	}
	dir := t.TempDir()
	backing, mnt = filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return l, mnt, backing
}

func writeAt(t *testing.T, f *os.File, s string, off int64) {
	t.Helper()
	if _, err := f.WriteAt([]byte(s), off); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

func lose(t *testing.T, l *FS, tear bool, seed uint64) Loss {
	t.Helper()
	loss, err := l.Lose(tear, rand.New(rand.NewPCG(seed, 0)))
	if err != nil {
		t.Fatal(err)
	}
	return loss
}

func TestSyncedSurvivesUnsyncedIsLost(t *testing.T) {
	l, mnt, backing := mount(t)
	p := filepath.Join(mnt, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, f, "hello world", 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	writeAt(t, f, "HELLO", 0)
	writeAt(t, f, ", and more", 11)
	// Unsynced writes are visible to readers, through the mount and on
	// the backing directory alike.
	if got := read(t, p); got != "HELLO world, and more" {
		t.Fatalf("before loss: %q", got)
	}
	if files, bytes := l.Unsynced(); files != 1 || bytes != 5 {
		t.Fatalf("Unsynced() = %d files, %d bytes; want 1 file, 5 saved bytes", files, bytes)
	}
	f.Close()
	loss := lose(t, l, false, 1)
	if loss.Changes != 2 || len(loss.Files) != 1 || loss.Files[0] != "f" || loss.Torn != nil {
		t.Fatalf("loss = %+v", loss)
	}
	if got := read(t, p); got != "hello world" {
		t.Fatalf("after loss through the mount: %q, want the synced content", got)
	}
	if got := read(t, filepath.Join(backing, "f")); got != "hello world" {
		t.Fatalf("after loss on the backing directory: %q", got)
	}
	if files, _ := l.Unsynced(); files != 0 {
		t.Fatalf("%d files still unsynced after a loss", files)
	}
}

func TestFdatasyncAndOSyncAreDurable(t *testing.T) {
	l, mnt, _ := mount(t)
	a, err := os.Create(filepath.Join(mnt, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	writeAt(t, a, "data", 0)
	if err := syscall.Fdatasync(int(a.Fd())); err != nil {
		t.Fatal(err)
	}
	b, err := os.OpenFile(filepath.Join(mnt, "b"), os.O_CREATE|os.O_RDWR|os.O_SYNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	writeAt(t, b, "sync", 0)
	lose(t, l, false, 1)
	if got := read(t, filepath.Join(mnt, "a")); got != "data" {
		t.Errorf("fdatasync'd file after loss: %q", got)
	}
	if got := read(t, filepath.Join(mnt, "b")); got != "sync" {
		t.Errorf("O_SYNC file after loss: %q", got)
	}
}

func TestTruncationsAreUndone(t *testing.T) {
	l, mnt, _ := mount(t)
	p := filepath.Join(mnt, "t")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Shrink by path, grow by handle, write into the grown part, then
	// reopen with O_TRUNC: every step must be undone.
	if err := os.Truncate(p, 3); err != nil {
		t.Fatal(err)
	}
	f, err = os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(20); err != nil {
		t.Fatal(err)
	}
	writeAt(t, f, "xy", 15)
	f.Close()
	if got := read(t, p); got != "012"+string(make([]byte, 12))+"xy"+string(make([]byte, 3)) {
		t.Fatalf("before loss: %q", got)
	}
	f, err = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, f, "new", 0)
	f.Close()
	if got := read(t, p); got != "new" {
		t.Fatalf("after O_TRUNC rewrite: %q", got)
	}
	lose(t, l, false, 1)
	if got := read(t, p); got != "0123456789" {
		t.Fatalf("after loss: %q, want the synced content and size", got)
	}
}

// A file created and renamed into place without fsync keeps its name but
// loses its content: metadata is durable at once, data is not.
func TestRenameWithoutFsyncLosesContent(t *testing.T) {
	l, mnt, _ := mount(t)
	tmp, final := filepath.Join(mnt, "x.tmp"), filepath.Join(mnt, "x")
	if err := os.WriteFile(tmp, []byte("snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	loss := lose(t, l, false, 1)
	if len(loss.Files) != 1 || loss.Files[0] != "x.tmp" {
		t.Fatalf("loss names %v, want the file under its first name", loss.Files)
	}
	if got := read(t, final); got != "" {
		t.Fatalf("renamed unsynced file after loss: %q, want empty", got)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old name after loss: %v", err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "d")); err != nil || !st.IsDir() {
		t.Fatalf("directory after loss: %v", err)
	}
	// The same with an fsync before the rename keeps the content.
	if err := writeSynced(tmp, "durable"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	lose(t, l, false, 1)
	if got := read(t, final); got != "durable" {
		t.Fatalf("synced then renamed file after loss: %q", got)
	}
}

func writeSynced(path, s string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		return err
	}
	return f.Sync()
}

func TestTornLastWriteKeepsAPrefix(t *testing.T) {
	for seed := range uint64(8) {
		l, mnt, _ := mount(t)
		p := filepath.Join(mnt, "log")
		if err := writeSynced(p, "base|"); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(mnt, "other")
		if err := os.WriteFile(other, []byte("lost"), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("first|"); err != nil {
			t.Fatal(err)
		}
		last := "the-last-write-of-this-node"
		if _, err := f.WriteString(last); err != nil {
			t.Fatal(err)
		}
		f.Close()
		loss := lose(t, l, true, seed)
		tn := loss.Torn
		if tn == nil || tn.File != "log" || tn.Offset != int64(len("base|first|")) || tn.Len != len(last) || tn.Kept < 0 || tn.Kept >= len(last) {
			t.Fatalf("seed %d: torn = %+v", seed, tn)
		}
		want := "base|" + string(make([]byte, len("first|"))) + last[:tn.Kept]
		if tn.Kept == 0 {
			want = "base|"
		}
		if got := read(t, p); got != want {
			t.Fatalf("seed %d: after torn loss: %q, want %q", seed, got, want)
		}
		if got := read(t, other); got != "" {
			t.Fatalf("seed %d: other file after loss: %q", seed, got)
		}
	}
}

// bbolt reads its file through a shared mapping while writing it with
// pwrite; a reader of the mount must see writes at once, and after a loss
// and a fresh mapping, only what was synced.
func TestMmapReadersSeeWritesAndLoss(t *testing.T) {
	l, mnt, _ := mount(t)
	p := filepath.Join(mnt, "m")
	if err := writeSynced(p, string(bytes.Repeat([]byte("a"), 8192))); err != nil {
		t.Fatal(err)
	}
	var seen []string
	runHelper(t, &seen, "mmap", p, "4096", "bbbb")
	if len(seen) != 2 || seen[0] != "aaaa" || seen[1] != "bbbb" {
		t.Fatalf("mapping read %q before and after a pwrite; want aaaa then bbbb", seen)
	}
	lose(t, l, false, 1)
	runHelper(t, &seen, "mmap", p, "4096", "cccc")
	if seen[0] != "aaaa" {
		t.Fatalf("fresh mapping after loss reads %q, want the synced bytes", seen[0])
	}
}

func TestUnmountKeepsEverything(t *testing.T) {
	l, mnt, backing := mount(t)
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(backing, "f")); got != "kept" {
		t.Fatalf("backing after unmount: %q", got)
	}
	if err := l.Unmount(); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
}
