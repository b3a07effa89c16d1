package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// fsType is the type every lazyfs mount shows in /proc/self/mountinfo.
const fsType = "fuse.chaos-lazyfs"

// UnmountStale detaches every lazyfs mount whose serving process is gone
// (a chaos run that was killed leaves its mounts answering ENOTCONN) and
// returns their mount points. Mounts still served, by this process or
// another run's, are left alone.
func UnmountStale() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("lazyfs: list mounts: %w", err)
	}
	var out []string
	var errs []error
	for _, mp := range lazyfsMounts(string(b)) {
		var st syscall.Stat_t
		if err := syscall.Stat(mp, &st); !errors.Is(err, syscall.ENOTCONN) {
			continue
		}
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("lazyfs: unmount stale %s: %w", mp, err))
			continue
		}
		out = append(out, mp)
	}
	return out, errors.Join(errs...)
}

// lazyfsMounts returns the mount points of lazyfs mounts in a mountinfo
// text (proc(5): fields up to a " - " separator, then type and source;
// blanks and backslashes in paths are octal escapes).
func lazyfsMounts(mountinfo string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(p) < 1 || p[0] != fsType {
			continue
		}
		out = append(out, unescape(f[4]))
	}
	return out
}

// unescape decodes mountinfo's \ooo escapes.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
