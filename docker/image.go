package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"
)

// imageName restricts the names EnsureImage accepts: they become both a
// path in the image and part of a tag.
var imageName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// ImageRef returns the image reference for a binary with the given content
// hash: "chaos-<name>:<first 16 hex digits of its sha256>".
func ImageRef(name string, sum [sha256.Size]byte) string {
	return fmt.Sprintf("chaos-%s:%s", name, hex.EncodeToString(sum[:8]))
}

// EnsureImage returns the reference of a one-layer image holding the static
// binary at path as /<name> (its entrypoint) plus empty /tmp and /data
// directories. The image is tagged with the binary's content hash and
// imported only when no image with that tag exists yet, so an unchanged
// binary costs one hash and one inspect. No registry and no Go toolchain
// are involved. The binary must be static (CGO_ENABLED=0): the image has no
// libc, so a dynamically linked one is refused (see CheckStatic).
func (d *Docker) EnsureImage(ctx context.Context, path, name string) (string, error) {
	if !imageName.MatchString(name) {
		return "", fmt.Errorf("image name %q: want lower-case letters, digits, '_', '.' or '-'", name)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read node binary: %w", err)
	}
	if err := CheckStatic(path, bin); err != nil {
		return "", err
	}
	ref := ImageRef(name, sha256.Sum256(bin))
	ok, err := d.e.ImageExists(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if ok {
		return ref, nil
	}
	layer, err := imageLayer(name, bin)
	if err != nil {
		return "", err
	}
	entry, _ := json.Marshal([]string{"/" + name})
	changes := []string{
		"ENTRYPOINT " + string(entry),
		"WORKDIR /",
		fmt.Sprintf("LABEL %s=%s", LabelImage, name),
	}
	if err := d.e.ImageImport(ctx, bytes.NewReader(layer), ref, changes); err != nil {
		return "", fmt.Errorf("import image %s from %s: %w", ref, path, err)
	}
	return ref, nil
}

// imageLayer builds the image's only layer as a tar archive.
func imageLayer(name string, bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time keeps the layer, and so the image id, a function of the
	// binary alone.
	mtime := time.Unix(0, 0)
	for _, dir := range []struct {
		name string
		mode int64
	}{{"tmp/", 0o1777}, {"data/", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir.name, Mode: dir.mode, ModTime: mtime}); err != nil {
			return nil, fmt.Errorf("build image layer: %w", err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return nil, fmt.Errorf("build image layer: %w", err)
	}
	if _, err := io.Copy(tw, bytes.NewReader(bin)); err != nil {
		return nil, fmt.Errorf("build image layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("build image layer: %w", err)
	}
	return buf.Bytes(), nil
}
