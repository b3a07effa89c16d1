// Package results holds the run store on disk: one directory per test run
// under store/<test-name>/<timestamp>/ with test.json, history.jsonl,
// results.json, report.html and the nodes' files, and a store/latest
// symlink to the newest run.
package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside a run directory.
const (
	TestFile    = "test.json"
	HistoryFile = "history.jsonl"
	ResultsFile = "results.json"
	ReportFile  = "report.html"
	NodesDir    = "nodes"
	LatestLink  = "latest"
)

// TimeFormat is the layout of a run directory's name: UTC, millisecond
// precision, sortable as a string.
const TimeFormat = "20060102T150405.000"

// DirName returns the run directory name for a run started at t.
func DirName(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ParseDirName parses a run directory name back into its start time.
func ParseDirName(name string) (time.Time, error) {
	t, err := time.ParseInLocation(TimeFormat, name, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("run directory name %q: want a UTC timestamp like 20261124T101500.123: %w", name, err)
	}
	if DirName(t) != name {
		// time.Parse also takes a comma before the fraction; only the
		// canonical spelling names a run.
		return time.Time{}, fmt.Errorf("run directory name %q: want exactly the form 20261124T101500.123", name)
	}
	return t, nil
}

// ValidateName checks that a test name can be one path element of the
// store: non-empty, at most 128 bytes, of letters, digits, '-', '_' and
// '.', not starting with '.', and not the reserved name "latest".
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("test name is empty")
	case len(name) > 128:
		return fmt.Errorf("test name %.20q... is longer than 128 bytes", name)
	case name[0] == '.':
		return fmt.Errorf("test name %q starts with '.'", name)
	case name == LatestLink:
		return fmt.Errorf("test name %q is reserved for the store's symlink", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("test name %q: character %q at byte %d is not a letter, digit, '-', '_' or '.'", name, r, i)
		}
	}
	return nil
}

// Run is one run's directory in the store.
type Run struct {
	Root  string    // the store directory
	Name  string    // the test name
	Start time.Time // when the run started
	Dir   string    // Root/Name/DirName(Start), or with a suffix on collision
}

// Create makes a fresh run directory for test name under root. Two runs
// started within the same millisecond get distinct directories: the later
// one gets a "-2", "-3", ... suffix.
func Create(root, name string, start time.Time) (*Run, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	parent := filepath.Join(root, name)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	base := DirName(start)
	for i := 1; i < 1000; i++ {
		dir := filepath.Join(parent, base)
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", dir, i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return &Run{Root: root, Name: name, Start: start, Dir: dir}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create run directory: %w", err)
		}
	}
	return nil, fmt.Errorf("create run directory: %s has 999 runs started in the same millisecond", filepath.Join(parent, base))
}

// Path returns the path of a file inside the run directory.
func (r *Run) Path(elem ...string) string {
	return filepath.Join(append([]string{r.Dir}, elem...)...)
}

// NodeDir returns (and creates) the directory for node's files.
func (r *Run) NodeDir(node string) (string, error) {
	if node == "" || strings.ContainsAny(node, `/\`) || node == "." || node == ".." {
		return "", fmt.Errorf("node name %q is not a single path element", node)
	}
	dir := r.Path(NodesDir, node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create node directory: %w", err)
	}
	return dir, nil
}

// WriteJSON writes v as indented JSON to the named file in the run
// directory, atomically: readers see the old file or the new one, never a
// half-written one.
func (r *Run) WriteJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return WriteFileAtomic(r.Path(name), append(b, '\n'))
}

// CreateHistory creates the run's history.jsonl for streaming.
func (r *Run) CreateHistory() (*os.File, error) {
	f, err := os.OpenFile(r.Path(HistoryFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create history: %w", err)
	}
	return f, nil
}

// MarkLatest points root/latest at this run.
func (r *Run) MarkLatest() error { return UpdateLatest(r.Root, r.Dir) }

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(name, 0o644); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// UpdateLatest atomically points root/latest at dir, with a target relative
// to root so the store can be moved or mounted elsewhere.
func UpdateLatest(root, dir string) error {
	target, err := filepath.Rel(root, dir)
	if err != nil || target == ".." || strings.HasPrefix(target, ".."+string(filepath.Separator)) {
		return fmt.Errorf("update latest: run %s is not inside store %s", dir, root)
	}
	link := filepath.Join(root, LatestLink)
	tmp := fmt.Sprintf("%s.tmp%d", link, os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("update latest: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("update latest: %w", err)
	}
	return nil
}

// Latest returns the run directory root/latest points at.
func Latest(root string) (string, error) {
	link := filepath.Join(root, LatestLink)
	target, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", link, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(root, target)
	}
	return target, nil
}
