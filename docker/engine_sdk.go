package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// sdkEngine implements engine with github.com/docker/docker/client, which
// negotiates the API version down to what the engine speaks (1.41 for
// engine 20.10).
type sdkEngine struct {
	c *client.Client
}

func newSDKEngine() (*sdkEngine, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	return &sdkEngine{c: c}, nil
}

func (e *sdkEngine) Host() string { return e.c.DaemonHost() }
func (e *sdkEngine) Close() error { return e.c.Close() }

func (e *sdkEngine) Ping(ctx context.Context) error {
	_, err := e.c.Ping(ctx)
	return err
}

func (e *sdkEngine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.c.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (e *sdkEngine) ImageImport(ctx context.Context, layer io.Reader, ref string, changes []string) error {
	rc, err := e.c.ImageImport(ctx, image.ImportSource{Source: layer, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return err
	}
	defer rc.Close()
	// The engine streams JSON progress messages; an error arrives as one of
	// them, not as an HTTP status.
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read import progress: %w", err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

func (e *sdkEngine) ImagesWithLabel(ctx context.Context, key string) ([]string, error) {
	imgs, err := e.c.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", key))})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, im := range imgs {
		out = append(out, im.ID)
	}
	return out, nil
}

func (e *sdkEngine) ImageRemove(ctx context.Context, ref string) error {
	_, err := e.c.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	if client.IsErrNotFound(err) {
		return nil
	}
	return err
}

func (e *sdkEngine) NetworkCreate(ctx context.Context, spec networkSpec) (string, error) {
	resp, err := e.c.NetworkCreate(ctx, spec.Name, network.CreateOptions{
		Driver: "bridge",
		Labels: spec.Labels,
		IPAM: &network.IPAM{
			Driver: "default",
			Config: []network.IPAMConfig{{Subnet: spec.Subnet.String(), Gateway: spec.Gateway.String()}},
		},
	})
	if err != nil {
		return "", err
	}
	return resp.ID, nil
}

func (e *sdkEngine) NetworkRemove(ctx context.Context, id string) error {
	err := e.c.NetworkRemove(ctx, id)
	if client.IsErrNotFound(err) {
		return nil
	}
	return err
}

func labelFilter(key, value string) filters.Args {
	if value == "" {
		return filters.NewArgs(filters.Arg("label", key))
	}
	return filters.NewArgs(filters.Arg("label", key+"="+value))
}

func (e *sdkEngine) NetworksWithLabel(ctx context.Context, key, value string) ([]string, error) {
	nets, err := e.c.NetworkList(ctx, network.ListOptions{Filters: labelFilter(key, value)})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nets {
		out = append(out, n.ID)
	}
	return out, nil
}

func (e *sdkEngine) Subnets(ctx context.Context) ([]netip.Prefix, error) {
	nets, err := e.c.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, n := range nets {
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (e *sdkEngine) ContainerCreate(ctx context.Context, spec containerSpec) (string, error) {
	cfg := &container.Config{
		Image:    spec.Image,
		Hostname: spec.Hostname,
		Cmd:      spec.Cmd,
		Env:      spec.Env,
		Labels:   spec.Labels,
	}
	host := &container.HostConfig{
		Binds:       spec.Binds,
		NetworkMode: container.NetworkMode(spec.Network),
		// ContainerLogs needs a driver that can be read back.
		LogConfig: container.LogConfig{Type: "json-file"},
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		spec.Network: {
			IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: spec.IP.String()},
			Aliases:    spec.Aliases,
		},
	}}
	resp, err := e.c.ContainerCreate(ctx, cfg, host, netCfg, nil, spec.Name)
	if err != nil {
		return "", err
	}
	return resp.ID, nil
}

func (e *sdkEngine) ContainerStart(ctx context.Context, id string) error {
	return e.c.ContainerStart(ctx, id, container.StartOptions{})
}

func (e *sdkEngine) ContainerKill(ctx context.Context, id, signal string) error {
	return e.c.ContainerKill(ctx, id, signal)
}

func (e *sdkEngine) ContainerWaitNotRunning(ctx context.Context, id string) error {
	resC, errC := e.c.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-resC:
		return nil
	case err := <-errC:
		return err
	}
}

func (e *sdkEngine) ContainerInspect(ctx context.Context, id string) (containerState, error) {
	j, err := e.c.ContainerInspect(ctx, id)
	if err != nil {
		return containerState{}, err
	}
	if j.State == nil {
		return containerState{}, fmt.Errorf("container %s: engine returned no state", id)
	}
	return containerState{Running: j.State.Running, Paused: j.State.Paused, Pid: j.State.Pid}, nil
}

func (e *sdkEngine) ContainerPause(ctx context.Context, id string) error {
	return e.c.ContainerPause(ctx, id)
}

func (e *sdkEngine) ContainerUnpause(ctx context.Context, id string) error {
	return e.c.ContainerUnpause(ctx, id)
}

func (e *sdkEngine) ContainerRemove(ctx context.Context, id string) error {
	err := e.c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if client.IsErrNotFound(err) {
		return nil
	}
	return err
}

func (e *sdkEngine) ContainersWithLabel(ctx context.Context, key, value string) ([]string, error) {
	cs, err := e.c.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter(key, value)})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out, nil
}

func (e *sdkEngine) ContainerLogs(ctx context.Context, id string, w io.Writer) error {
	rc, err := e.c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	// Without a TTY the stream is multiplexed; both halves go to one file
	// so that their order is kept.
	_, err = stdcopy.StdCopy(w, w, rc)
	return err
}
