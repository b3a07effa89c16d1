package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrUnreachable is wrapped by every error that means "no Docker engine
// answered", so callers (and tests deciding whether to skip) can tell it
// apart from other failures with errors.Is.
var ErrUnreachable = errors.New("docker engine unreachable")

// Docker is a connection to a Docker engine.
type Docker struct {
	e engine
}

// Connect reaches the Docker engine named by DOCKER_HOST (or the default
// socket) and checks that it answers.
func Connect(ctx context.Context) (*Docker, error) {
	e, err := newSDKEngine()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrUnreachable, unreachableHelp("", err))
	}
	return connectEngine(ctx, e)
}

// connectEngine pings e and wraps it.
func connectEngine(ctx context.Context, e engine) (*Docker, error) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.Ping(pctx); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("%w: %s", ErrUnreachable, unreachableHelp(e.Host(), err))
	}
	return &Docker{e: e}, nil
}

// unreachableHelp says what was tried and how to fix it.
func unreachableHelp(host string, err error) string {
	tried := "the default socket unix:///var/run/docker.sock (DOCKER_HOST is not set)"
	if v := os.Getenv("DOCKER_HOST"); v != "" {
		tried = fmt.Sprintf("DOCKER_HOST=%s", v)
	} else if host != "" && host != "unix:///var/run/docker.sock" {
		tried = host
	}
	return fmt.Sprintf("cannot reach the Docker engine at %s: %v; "+
		"start the engine (e.g. `systemctl start docker`), make sure this user may use its socket "+
		"(root or the docker group), or point DOCKER_HOST at a running engine", tried, err)
}

// Close releases the connection.
func (d *Docker) Close() error { return d.e.Close() }
