package docker

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
)

// ErrDynamic is matched by the error CheckStatic returns for a binary that
// needs a dynamic loader or shared libraries.
var ErrDynamic = errors.New("dynamically linked")

// CheckStatic reports whether the ELF executable bin (read from path, which
// only names it in errors) can run in an image with no libc: it must ask
// for no program interpreter (PT_INTERP) and need no shared library
// (DT_NEEDED). A static-PIE binary has a dynamic section but neither of
// these, and passes. Failing here, at image time, spares the user a
// container that exits at once with a bare "no such file or directory"
// about a loader that is not in the image.
func CheckStatic(path string, bin []byte) (err error) {
	// debug/elf is not hardened against malformed input; a file it chokes
	// on is reported, not allowed to take chaos down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node binary %s: malformed ELF file: %v", path, r)
		}
	}()
	if !bytes.HasPrefix(bin, []byte(elf.ELFMAG)) {
		return fmt.Errorf("node binary %s is not an ELF executable", path)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("node binary %s: read ELF headers: %w", path, err)
	}
	defer f.Close()
	var why []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			why = append(why, "it asks for a program interpreter")
			break
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("node binary %s: read its dynamic section: %w", path, err)
	}
	if len(libs) > 0 {
		why = append(why, fmt.Sprintf("it needs %v", libs))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("node binary %s is %w (%s); build it with CGO_ENABLED=0 (make build)",
		path, ErrDynamic, joinWhy(why))
}

func joinWhy(why []string) string {
	if len(why) == 1 {
		return why[0]
	}
	return why[0] + " and " + why[1]
}
