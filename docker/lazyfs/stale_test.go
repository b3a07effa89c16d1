package lazyfs

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func TestLazyfsMounts(t *testing.T) {
	info := `22 1 0:21 / /sys rw,relatime shared:7 - sysfs sysfs rw
93 26 0:89 / /tmp/a\040b/mnt rw,nosuid,nodev,relatime - fuse.chaos-lazyfs /tmp/a\040b/backing rw,user_id=0
94 26 0:90 / /tmp/other rw - fuse.sshfs host:/ rw
95 26 0:91 / /tmp/c rw shared:1 master:2 - fuse.chaos-lazyfs /b rw
garbage line
`
	got := lazyfsMounts(info)
	if want := []string{"/tmp/a b/mnt", "/tmp/c"}; !slices.Equal(got, want) {
		t.Fatalf("lazyfsMounts = %q, want %q", got, want)
	}
}

func FuzzLazyfsMounts(f *testing.F) {
	f.Add("93 26 0:89 / /tmp/x\\040y rw - fuse.chaos-lazyfs /b rw\n")
	f.Add("1 2 3 4 \\0 - fuse.chaos-lazyfs")
	f.Fuzz(func(t *testing.T, s string) {
		for _, mp := range lazyfsMounts(s) {
			if mp == "" {
				t.Fatalf("empty mount point from %q", s)
			}
		}
	})
}

// A mount whose serving process died answers ENOTCONN; UnmountStale
// detaches it and leaves a live one alone.
func TestUnmountStale(t *testing.T) {
	if _, err := os.Stat(DevFUSE); errors.Is(err, fs.ErrNotExist) && os.Getenv("CI") == "" {
		t.Skipf("skipping FUSE test: %s is missing", DevFUSE)
	}
	_, live, _ := mount(t)
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", backing, mnt, "")
	cmd.Env = append(os.Environ(), helperEnv+"=serve")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	if sc := bufio.NewScanner(out); !sc.Scan() || sc.Text() != "mounted" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the serving helper did not mount")
	}
	cmd.Process.Kill()
	cmd.Wait()
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("stat of a mount whose server died: %v, want ENOTCONN", err)
	}
	got, err := UnmountStale()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, mnt) || slices.Contains(got, live) {
		t.Fatalf("UnmountStale detached %q; want %s and not the live %s", got, mnt, live)
	}
	if err := syscall.Stat(mnt, &st); err != nil {
		t.Fatalf("mount point after the detach: %v", err)
	}
}
