// Package lazyfs is a FUSE file system that can forget what was never
// synced. It passes every operation through to a backing directory, but
// before a write or a truncation changes a file it saves the bytes about to
// be overwritten in an undo log kept per file. fsync or fdatasync of the
// file drops that log: the file's content is now durable. Lose plays every
// log backwards, leaving each file as its last sync left it, as a power
// loss would, and can let a prefix of the very last write survive (a torn
// write).
//
// The backing directory always holds the current content, so reads, mmap
// and stat are plain pass-through, and page-cache coherence for mmap
// readers (bbolt reads its file through a MAP_SHARED mapping) is the
// kernel's usual FUSE behaviour: no direct I/O, no writeback cache, and no
// kept cache across opens. After Lose the kernel's cached pages and
// attributes of every changed file are invalidated.
//
// Metadata (create, rename, unlink, mkdir, link) is durable at once, as in
// Jepsen's lazyfs: only file contents and sizes can be lost. A file created
// and never synced therefore survives a loss, empty.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// DevFUSE is the device a mount needs.
const DevFUSE = "/dev/fuse"

// ErrUnavailable wraps every reason a mount is impossible on this host.
var ErrUnavailable = errors.New("lazyfs: FUSE is unavailable")

// Available reports whether this process can mount a lazyfs: /dev/fuse
// must open read-write, and mounting needs root (CAP_SYS_ADMIN).
func Available() error {
	f, err := os.OpenFile(DevFUSE, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: mounting needs root", ErrUnavailable)
	}
	return nil
}

// FS is one mounted lazyfs.
type FS struct {
	backing string
	mnt     string
	server  *fuse.Server

	mu        sync.Mutex
	unmounted bool
	files     map[uint64]*file // by inode number: files changed since their last sync
	order     []*file          // files in the order they were first changed
	last      *lastWrite       // the newest unsynced write, for tearing
}

// file is the undo log of one file changed since its last sync.
type file struct {
	ino   uint64
	inode *fs.Inode
	name  string // its path when first changed, for reports
	fd    int    // our own descriptor of the backing file, read-write
	size  int64  // its size at the last sync
	undo  []undo // oldest first
	bytes int64  // saved bytes in undo
	ops   int    // writes and truncations since the last sync
}

// undo restores old at off.
type undo struct {
	off int64
	old []byte
}

type lastWrite struct {
	f    *file
	off  int64
	data []byte
}

// Mount mounts a lazyfs at mountpoint showing backing. Both must be
// existing directories.
func Mount(backing, mountpoint string) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: backing directory: %w", err)
	}
	l := &FS{backing: backing, mnt: mountpoint, files: make(map[uint64]*file)}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, l: l}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	sec := time.Second
	srv, err := fs.Mount(mountpoint, root.RootNode, &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			AllowOther:        true, // the node's container reaches it through a bind mount
			DirectMount:       true,
			DirectMountStrict: true,
			FsName:            backing,
			Name:              "chaos-lazyfs",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: mount %s: %v", ErrUnavailable, mountpoint, err)
	}
	l.server = srv
	return l, nil
}

// Mountpoint returns where l is mounted.
func (l *FS) Mountpoint() string { return l.mnt }

// Unmount unmounts l, keeping every write: a clean shutdown. It retries
// for a while when the mount is still busy (a container being torn down).
func (l *FS) Unmount() error {
	l.mu.Lock()
	done := l.unmounted
	l.mu.Unlock()
	if done {
		return nil
	}
	var err error
	for range 50 {
		if err = l.server.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("lazyfs: unmount %s: %w", l.mnt, err)
	}
	l.server.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unmounted = true
	l.forgetAll()
	return nil
}

// Unsynced reports how many files have unsynced changes and how many
// bytes their undo logs hold.
func (l *FS) Unsynced() (files int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.order {
		bytes += f.bytes
	}
	return len(l.order), bytes
}

// Loss says what Lose discarded.
type Loss struct {
	// Files are the files that lost changes, by path relative to the
	// root as they were named when first changed.
	Files []string `json:"files"`
	// Changes is the number of writes and truncations undone.
	Changes int `json:"changes"`
	// Torn is the newest write, of which a prefix was kept; nil when
	// nothing was torn.
	Torn *Torn `json:"torn,omitempty"`
}

// Torn describes a torn write: Kept of its Len bytes at Offset reached
// the file.
type Torn struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Len    int    `json:"len"`
	Kept   int    `json:"kept"`
}

// Lose discards every change not covered by a sync: each file gets back
// the content and size of its last sync. With tear, a prefix of the newest
// unsynced write, of a length rng picks from [0, len), is then written
// back (the torn tail of a write the disk was in the middle of). The
// process using the files should be dead: a live one would see its own
// writes vanish under it.
func (l *FS) Lose(tear bool, rng *rand.Rand) (Loss, error) {
	l.mu.Lock()
	var loss Loss
	var errs []error
	for _, f := range l.order {
		loss.Files = append(loss.Files, f.name)
		loss.Changes += f.ops
		for i := len(f.undo) - 1; i >= 0; i-- {
			u := f.undo[i]
			if _, err := syscall.Pwrite(f.fd, u.old, u.off); err != nil {
				errs = append(errs, fmt.Errorf("restore %s at %d: %w", f.name, u.off, err))
			}
		}
		if err := syscall.Ftruncate(f.fd, f.size); err != nil {
			errs = append(errs, fmt.Errorf("restore size of %s: %w", f.name, err))
		}
	}
	if w := l.last; tear && w != nil && len(w.data) > 0 && rng != nil {
		k := rng.IntN(len(w.data))
		if _, err := syscall.Pwrite(w.f.fd, w.data[:k], w.off); err != nil {
			errs = append(errs, fmt.Errorf("tear %s at %d: %w", w.f.name, w.off, err))
		}
		loss.Torn = &Torn{File: w.f.name, Offset: w.off, Len: len(w.data), Kept: k}
	}
	inodes := make([]*fs.Inode, 0, len(l.order))
	for _, f := range l.order {
		inodes = append(inodes, f.inode)
	}
	l.forgetAll()
	l.mu.Unlock()
	// The kernel still caches the lost pages and sizes; drop them, outside
	// l.mu so that reads it issues meanwhile are never held up by us.
	for _, in := range inodes {
		in.NotifyContent(0, 0) // ENOENT: the kernel has forgotten the inode, nothing cached
	}
	if len(errs) > 0 {
		return loss, fmt.Errorf("lazyfs: lose unsynced writes: %w", errors.Join(errs...))
	}
	return loss, nil
}

// forgetAll drops every undo log. l.mu must be held.
func (l *FS) forgetAll() {
	for _, f := range l.order {
		syscall.Close(f.fd)
	}
	clear(l.files)
	l.order = nil
	l.last = nil
}

// changed returns the undo log of n's file, starting one (with our own
// descriptor, a reopen of fd) when the file has none. l.mu must be held.
func (l *FS) changed(n *node, fd int) (*file, error) {
	ino := n.StableAttr().Ino
	if f := l.files[ino]; f != nil {
		return f, nil
	}
	// A reopen through /proc gives a read-write descriptor whatever the
	// caller's access mode, and works for unlinked files too.
	own, err := syscall.Open(fmt.Sprintf("/proc/self/fd/%d", fd), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(own, &st); err != nil {
		syscall.Close(own)
		return nil, err
	}
	f := &file{ino: ino, inode: n.EmbeddedInode(), name: n.relPath(), fd: own, size: st.Size}
	l.files[ino] = f
	l.order = append(l.order, f)
	return f, nil
}

// save appends to f's log the current bytes of [off, end) that lie within
// the file. l.mu must be held.
func (f *file) save(off, end int64) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return err
	}
	end = min(end, st.Size)
	if end <= off {
		return nil
	}
	old := make([]byte, end-off)
	n, err := syscall.Pread(f.fd, old, off)
	if err != nil {
		return err
	}
	f.undo = append(f.undo, undo{off: off, old: old[:n]})
	f.bytes += int64(n)
	return nil
}

// synced drops the undo log of inode ino: its content is durable.
func (l *FS) synced(ino uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.files[ino]
	if f == nil {
		return
	}
	delete(l.files, ino)
	for i, g := range l.order {
		if g == f {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
	if l.last != nil && l.last.f == f {
		l.last = nil
	}
	syscall.Close(f.fd)
}

// write writes data at off through fd, saving what it overwrites.
func (l *FS) write(n *node, fd int, data []byte, off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.changed(n, fd)
	if err != nil {
		return 0, err
	}
	if err := f.save(off, off+int64(len(data))); err != nil {
		return 0, err
	}
	f.ops++
	w, err := syscall.Pwrite(fd, data, off)
	if err != nil {
		return 0, err
	}
	if l.last == nil {
		l.last = &lastWrite{}
	}
	l.last.f, l.last.off = f, off
	l.last.data = append(l.last.data[:0], data[:w]...)
	return w, nil
}

// truncate sets the size of n's file through fd, saving what it cuts off.
func (l *FS) truncate(n *node, fd int, size int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.changed(n, fd)
	if err != nil {
		return err
	}
	if err := f.save(size, 1<<62); err != nil {
		return err
	}
	f.ops++
	return syscall.Ftruncate(fd, size)
}

// node is a loopback node whose files are opened through handle.
type node struct {
	fs.LoopbackNode
	l *FS
	// createdAs names a node made by Create, which has no path until the
	// kernel learns of it, after Create returns.
	createdAs string
}

var (
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeTmpfiler  = (*node)(nil)
)

func (n *node) relPath() string {
	if p := n.Path(nil); p != "" || n.createdAs == "" {
		return p
	}
	return n.createdAs
}

// backingFlags turns open flags into those of the backing open: always
// readable (the undo log reads before it writes), no append (writes come
// with their offset), no truncation (done through the undo log).
func backingFlags(flags uint32) (uint32, bool) {
	trunc := flags&syscall.O_TRUNC != 0
	flags &^= syscall.O_TRUNC | syscall.O_APPEND | fuse.FMODE_EXEC
	if flags&syscall.O_ACCMODE == syscall.O_WRONLY {
		flags = flags&^syscall.O_ACCMODE | syscall.O_RDWR
	}
	return flags, trunc
}

// Open opens the backing file and wraps it in a handle.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	bflags, trunc := backingFlags(flags)
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, bflags)
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.wrap(fh, flags, trunc)
	return h, fuseFlags, errno
}

// Create creates the backing file and wraps its handle.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	bflags, trunc := backingFlags(flags)
	child, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, bflags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	cn, ok := child.Operations().(*node)
	if !ok {
		fh.(fs.FileReleaser).Release(ctx)
		return nil, nil, 0, syscall.EIO
	}
	cn.createdAs = filepath.Join(n.relPath(), name)
	h, errno := cn.wrap(fh, flags, trunc)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return child, h, fuseFlags, 0
}

func (n *node) wrap(fh fs.FileHandle, flags uint32, trunc bool) (*handle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	fd := -1
	if ok {
		fd, ok = lf.PassthroughFd()
	}
	if !ok {
		if r, isR := fh.(fs.FileReleaser); isR {
			r.Release(context.Background())
		}
		return nil, syscall.EIO
	}
	h := &handle{lf: lf, fd: fd, n: n, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}
	if trunc {
		if err := n.l.truncate(n, fd, 0); err != nil {
			lf.Release(context.Background())
			return nil, fs.ToErrno(err)
		}
	}
	return h, 0
}

// Tmpfile is refused: an O_TMPFILE file is named only by a descriptor the
// loopback cannot wrap.
func (n *node) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// Setattr records a truncation made by path (truncate(2)) before passing
// the other attributes through.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Setattr(ctx, in, out)
	}
	if sz, ok := in.GetSize(); ok {
		fd, err := syscall.Open(filepath.Join(n.l.backing, n.relPath()), syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return fs.ToErrno(err)
		}
		err = n.l.truncate(n, fd, int64(sz))
		syscall.Close(fd)
		if err != nil {
			return fs.ToErrno(err)
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	return n.LoopbackNode.Setattr(ctx, nil, in, out)
}

// handle is an open file. It implements the data operations that must go
// through the undo log and delegates the rest. It deliberately offers no
// kernel passthrough, vectored write or fallocate: each would change the
// file behind the undo log's back.
type handle struct {
	lf   *fs.LoopbackFile
	fd   int
	n    *node
	sync bool // O_SYNC or O_DSYNC: every write is durable when it returns
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileSetattrer = (*handle)(nil)
	_ fs.FileLseeker   = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return h.lf.Read(ctx, buf, off)
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	w, err := h.n.l.write(h.n, h.fd, data, off)
	if err != nil {
		return uint32(max(w, 0)), fs.ToErrno(err)
	}
	if h.sync {
		h.n.l.synced(h.n.StableAttr().Ino)
	}
	return uint32(w), 0
}

// Fsync makes the file's content durable by forgetting its undo log. The
// backing file is not fsynced: the backing directory plays the disk, and
// what the host's own disk keeps at a host crash is beside the point.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.n.l.synced(h.n.StableAttr().Ino)
	return 0
}

func (h *handle) Flush(ctx context.Context) syscall.Errno   { return h.lf.Flush(ctx) }
func (h *handle) Release(ctx context.Context) syscall.Errno { return h.lf.Release(ctx) }

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Getattr(ctx, out)
}

func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		if err := h.n.l.truncate(h.n, h.fd, int64(sz)); err != nil {
			return fs.ToErrno(err)
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	return h.lf.Setattr(ctx, in, out)
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return h.lf.Lseek(ctx, off, whence)
}

// Allocate is refused; callers such as posix_fallocate fall back to
// writing, which the undo log sees.
func (h *handle) Allocate(context.Context, uint64, uint64, uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}
