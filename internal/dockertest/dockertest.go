// Package dockertest connects tests to the Docker engine: a test skips when
// no engine is reachable, except under CI=true, where Docker is part of the
// contract and its absence fails the test.
package dockertest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/chaoskv/chaos/docker"
)

// Connect returns a client of the engine, closed when the test ends.
func Connect(t testing.TB) *docker.Docker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := docker.Connect(ctx)
	if err != nil {
		if errors.Is(err, docker.ErrUnreachable) && os.Getenv("CI") != "true" {
			t.Skipf("skipping Docker test: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
