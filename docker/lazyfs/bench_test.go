package lazyfs

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWrite compares 4 KiB pwrites, without syncs and with an fsync
// every 8 (roughly bbolt's pattern), on the backing directory itself and
// through a lazyfs over it, in one run, so that their ratios are the
// lazyfs overhead. A lazyfs fsync only drops an undo log; the backing disk
// is not synced.
func BenchmarkWrite(b *testing.B) {
	if _, err := os.Stat(DevFUSE); err != nil {
		b.Skipf("no %s", DevFUSE)
	}
	dir := b.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	l, err := Mount(backing, mnt)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Unmount()
	block := make([]byte, 4096)
	for _, tc := range []struct {
		name, dir string
		sync      bool
	}{{"direct", backing, false}, {"lazyfs", mnt, false}, {"direct-fsync", backing, true}, {"lazyfs-fsync", mnt, true}} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(tc.dir, "bench-"+tc.name))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(int64(len(block)))
			for i := 0; b.Loop(); i++ {
				if _, err := f.WriteAt(block, int64(i%1024)*4096); err != nil {
					b.Fatal(err)
				}
				if tc.sync && i%8 == 7 {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
