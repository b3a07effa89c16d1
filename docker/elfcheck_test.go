package docker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildProgram compiles a one-file main package with the given cgo
// setting and returns the executable's path.
func buildProgram(t *testing.T, src string, cgo bool) (string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module elfprobe\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	env := "CGO_ENABLED=0"
	if cgo {
		env = "CGO_ENABLED=1"
	}
	cmd.Env = append(os.Environ(), env, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
}

func TestCheckStatic(t *testing.T) {
	static, err := buildProgram(t, "package main\n\nfunc main() {}\n", false)
	if err != nil {
		t.Fatalf("build static program: %v", err)
	}
	dynamic, err := buildProgram(t, "package main\n\n// int one(void) { return 1; }\nimport \"C\"\n\nfunc main() { _ = C.one() }\n", true)
	if err != nil {
		// No C toolchain: any dynamically linked host program will do.
		t.Logf("cgo unavailable (%v); using /bin/true as the dynamic example", strings.TrimSpace(err.Error()))
		dynamic = "/bin/true"
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	if err := CheckStatic(static, read(static)); err != nil {
		t.Errorf("static binary refused: %v", err)
	}
	err = CheckStatic(dynamic, read(dynamic))
	if !errors.Is(err, ErrDynamic) {
		t.Fatalf("dynamic binary %s: err %v, want ErrDynamic", dynamic, err)
	}
	for _, want := range []string{dynamic, "dynamically linked", "CGO_ENABLED=0", "make build", "interpreter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// A Docker with no engine behind it: the check must refuse the binary
	// before EnsureImage asks the engine anything.
	if _, err := (&Docker{}).EnsureImage(context.Background(), dynamic, "kvnode"); !errors.Is(err, ErrDynamic) {
		t.Errorf("EnsureImage of a dynamic binary: err %v, want ErrDynamic", err)
	}

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not an ELF executable"},
		{"text", []byte("#!/bin/sh\necho hi\n"), "not an ELF executable"},
		{"truncated header", []byte("\x7fELF\x02\x01\x01"), "read ELF headers"},
		{"truncated binary", read(static)[:100], "node binary"},
	}
	for _, tt := range tests {
		err := CheckStatic("x", tt.data)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one containing %q", tt.name, err, tt.want)
		}
		if errors.Is(err, ErrDynamic) {
			t.Errorf("%s: a broken file reported as dynamically linked: %v", tt.name, err)
		}
	}
}

func FuzzCheckStatic(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"))
	f.Add([]byte("not elf"))
	if b, err := os.ReadFile("/bin/true"); err == nil && len(b) > 4096 {
		f.Add(b[:4096])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckStatic("fuzz", data)
		if err == nil && !strings.HasPrefix(string(data), "\x7fELF") {
			t.Fatalf("a file without the ELF magic was accepted")
		}
	})
}
