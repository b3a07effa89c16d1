package lazyfs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// kvnode's storage on a lazyfs, killed in the middle of saving: every
// Save the real store returned from survives the loss of unsynced writes
// (in the default mode with the last write torn too). The store that never syncs loses what it
// saved, or cannot even be opened: when the torn write was a bbolt meta
// page pointing past the end of the restored file, bbolt dies of SIGBUS
// reading it. bbolt reads its file through a shared mapping, so this also
// exercises mmap coherence.
func TestKvnodeStorageOnLazyfs(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		tear     bool
		wantKeep bool
	}{
		{"full", true, true},
		// One sync per Save survives losing every unsynced write, but not
		// a torn one: a torn meta page of a Save in flight may reach the
		// disk without the pages it points to, as the storage package
		// documents.
		{"once", false, true},
		{"unsafe-no-sync", true, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			for seed := range uint64(3) {
				l, mnt, _ := mount(t)
				dir := filepath.Join(mnt, "group-1")
				saved := saveUntilKilled(t, dir, tc.mode, 120+40*int(seed))
				loss := lose(t, l, tc.tear, seed)
				var got durable
				if err := tryHelper(&got, "load", dir, tc.mode); err != nil {
					if tc.wantKeep {
						t.Fatal(err)
					}
					got.Err = "the store does not open"
				}
				t.Logf("seed %d: %d saved, then %d changes lost in %d files, torn %+v; recovered %+v", seed, saved, loss.Changes, len(loss.Files), loss.Torn, got)
				kept := got.Err == "" && got.Last >= saved && got.State == fmt.Sprintf("state-%d", got.Last)
				if tc.wantKeep && !kept {
					t.Fatalf("seed %d: recovered %+v after a loss; want at least the %d saved persists", seed, got, saved)
				}
				if !tc.wantKeep && (kept || loss.Changes == 0) {
					t.Fatalf("seed %d: a store that never syncs kept its %d saved persists across a loss of %d changes", seed, saved, loss.Changes)
				}
			}
		})
	}
}

// saveUntilKilled runs the save helper and SIGKILLs it once it has
// reported at least n saved persists. It returns the last index reported.
func saveUntilKilled(t *testing.T, dir, mode string, n int) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", dir, mode, "0")
	cmd.Env = append(os.Environ(), helperEnv+"=save")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var last uint64
	for sc.Scan() {
		if last, err = strconv.ParseUint(sc.Text(), 10, 64); err != nil {
			t.Fatalf("save helper: %q", sc.Text())
		}
		if last >= uint64(n) {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if last < uint64(n) {
		t.Fatalf("save helper stopped after %d persists", last)
	}
	return last
}
