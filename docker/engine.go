// Package docker runs a test's nodes as Docker containers: it builds the
// node image from a static binary without a registry, creates a labelled
// bridge network with pinned addresses, starts one container per node, and
// injects faults (kill, pause, partitions, packet loss, latency) from the
// host into each container's network namespace. With Options.LazyFS each
// node's data directory is a lazyfs (package docker/lazyfs) served by this
// process, so that a crash can also lose the writes the node never synced.
// Cluster implements nemesis.Target.
//
// Every Docker SDK call goes through the small engine interface below, so
// the rest of the package never names an SDK type.
package docker

import (
	"context"
	"io"
	"net/netip"
)

// Labels on every object this package creates. LabelRun's value is the run
// id, so "all our objects" is a filter on the key and "one run's objects"
// a filter on key=value.
const (
	LabelRun   = "chaos.run"
	LabelNode  = "chaos.node"
	LabelImage = "chaos.image"
)

// containerSpec is what we ask of a new container.
type containerSpec struct {
	Name     string
	Image    string
	Hostname string
	Cmd      []string
	Env      []string // KEY=value
	Labels   map[string]string
	Binds    []string // host:container[:ro]
	Network  string
	IP       netip.Addr
	Aliases  []string
}

// containerState is what we read back from an existing container.
type containerState struct {
	Running bool
	Paused  bool
	Pid     int
}

// networkSpec is what we ask of a new network.
type networkSpec struct {
	Name    string
	Subnet  netip.Prefix
	Gateway netip.Addr
	Labels  map[string]string
}

// engine is every Docker Engine operation this package needs.
type engine interface {
	Ping(ctx context.Context) error
	Host() string
	Close() error

	ImageExists(ctx context.Context, ref string) (bool, error)
	ImageImport(ctx context.Context, layer io.Reader, ref string, changes []string) error
	ImagesWithLabel(ctx context.Context, key string) ([]string, error)
	ImageRemove(ctx context.Context, ref string) error

	NetworkCreate(ctx context.Context, spec networkSpec) (string, error)
	NetworkRemove(ctx context.Context, id string) error
	NetworksWithLabel(ctx context.Context, key, value string) ([]string, error)
	Subnets(ctx context.Context) ([]netip.Prefix, error)

	ContainerCreate(ctx context.Context, spec containerSpec) (string, error)
	ContainerStart(ctx context.Context, id string) error
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerWaitNotRunning(ctx context.Context, id string) error
	ContainerInspect(ctx context.Context, id string) (containerState, error)
	ContainerPause(ctx context.Context, id string) error
	ContainerUnpause(ctx context.Context, id string) error
	ContainerRemove(ctx context.Context, id string) error
	ContainersWithLabel(ctx context.Context, key, value string) ([]string, error)
	ContainerLogs(ctx context.Context, id string, w io.Writer) error
}
