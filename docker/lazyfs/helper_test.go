package lazyfs

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/storage"
)

// A process that serves a FUSE mount must not fault in pages of a mapping
// of that same mount: the faulting thread cannot be stopped for the
// garbage collector, which then waits forever while the serving goroutines
// wait for it. So everything that maps files of a test mount (bbolt does)
// runs in a child: this test binary re-executed with helperEnv set.
const helperEnv = "LAZYFS_TEST_HELPER"

func TestMain(m *testing.M) {
	if op := os.Getenv(helperEnv); op != "" {
		if err := helper(op, os.Args[len(os.Args)-3:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper runs op in a child process and decodes its JSON answer.
func runHelper(t *testing.T, into any, op string, args ...string) {
	t.Helper()
	if err := tryHelper(into, op, args...); err != nil {
		t.Fatal(err)
	}
}

// tryHelper is runHelper returning the child's failure.
func tryHelper(into any, op string, args ...string) error {
	for len(args) < 3 {
		args = append(args, "")
	}
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+op)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		if len(stderr) > 2000 {
			stderr = stderr[:2000] + "..."
		}
		return fmt.Errorf("helper %s %v: %v\n%s", op, args, err, stderr)
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			return fmt.Errorf("helper %s: %v: %q", op, err, out)
		}
	}
	return nil
}

// durable is what the storage helper read back.
type durable struct {
	Err      string `json:"err,omitempty"`
	State    string `json:"state"`
	Last     uint64 `json:"last"`
	Snapshot uint64 `json:"snapshot"`
}

func storageOptions(mode string) storage.Options {
	return storage.Options{SyncOnce: mode == "once", UnsafeNoSync: mode == "unsafe-no-sync"}
}

func helper(op string, args []string) error {
	switch op {
	case "mmap":
		// args: file, offset, data to pwrite there. Prints the mapped bytes
		// at offset before and after the write.
		f, err := os.OpenFile(args[0], os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		off, _ := strconv.Atoi(args[1])
		st, err := f.Stat()
		if err != nil {
			return err
		}
		m, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			return err
		}
		defer syscall.Munmap(m)
		n := len(args[2])
		before := string(m[off : off+n])
		if _, err := f.WriteAt([]byte(args[2]), int64(off)); err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode([]string{before, string(m[off : off+n])})
	case "serve":
		// args: backing, mountpoint. Mounts and serves until killed.
		if _, err := Mount(args[0], args[1]); err != nil {
			return err
		}
		fmt.Println("mounted")
		select {}
	case "save":
		// args: dir, mode, count. Saves count persists (0: until killed),
		// a snapshot every 50, printing the index of each saved one, and
		// closes the store.
		s, _, err := storage.OpenWith(args[0], storageOptions(args[1]))
		if err != nil {
			return err
		}
		n, _ := strconv.ParseUint(args[2], 10, 64)
		for i := uint64(1); n == 0 || i <= n; i++ {
			p := replica.Persist{State: fmt.Appendf(nil, "state-%d", i), Entries: []replica.Entry{{Index: i, Data: fmt.Appendf(nil, "entry-%d", i)}}}
			if i%50 == 0 {
				p.Snapshot = &replica.Snapshot{Index: i - 10, Meta: []byte("m"), Data: fmt.Appendf(nil, "snap-%d", i-10)}
			}
			if err := s.Save(&p); err != nil {
				return err
			}
			fmt.Println(i)
		}
		return s.Close()
	case "load":
		// args: dir, mode. Prints what the store recovers.
		s, d, err := storage.OpenWith(args[0], storageOptions(args[1]))
		if err != nil {
			return json.NewEncoder(os.Stdout).Encode(durable{Err: err.Error()})
		}
		defer s.Close()
		out := durable{State: string(d.State)}
		if len(d.Entries) > 0 {
			out.Last = d.Entries[len(d.Entries)-1].Index
		}
		if d.Snapshot != nil {
			out.Snapshot = d.Snapshot.Index
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	return fmt.Errorf("unknown helper %q", op)
}
