package dockerbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/kvnode/server/config"
	"github.com/chaoskv/chaos/nemesis"
)

// nodeTarget is the nemesis's view of a kvnode cluster in Docker: the
// container faults of docker.Cluster plus the clock faults, which go
// through each node's admin endpoint (POST /clock-offset) because
// containers share the host's kernel clock.
type nodeTarget struct {
	*docker.Cluster
	file *config.Cluster
	http *http.Client

	mu      sync.Mutex
	offsets map[string]time.Duration // non-zero clock offsets by node
	paused  map[string]bool          // nodes paused through this target
	stale   map[string]bool          // paused nodes whose offset changed meanwhile
}

var (
	_ nemesis.Target    = (*nodeTarget)(nil)
	_ nemesis.Clocker   = (*nodeTarget)(nil)
	_ nemesis.DiskLoser = (*nodeTarget)(nil)
	_ nemesis.Checker   = (*nodeTarget)(nil)
)

func (b *Backend) target(cl *docker.Cluster, file *config.Cluster) *nodeTarget {
	return &nodeTarget{Cluster: cl, file: file, http: b.http, offsets: map[string]time.Duration{},
		paused: map[string]bool{}, stale: map[string]bool{}}
}

// SetClockOffset shifts node's wall clock by offset; 0 sets it back. The
// offset is applied again whenever the node restarts. A node that is down
// or paused (by other faults) cannot answer; it gets the offset when it
// starts or resumes.
func (t *nodeTarget) SetClockOffset(ctx context.Context, node string, offset time.Duration) error {
	t.mu.Lock()
	if offset == 0 {
		delete(t.offsets, node)
	} else {
		t.offsets[node] = offset
	}
	paused := t.paused[node]
	if paused {
		t.stale[node] = true
	}
	t.mu.Unlock()
	if paused {
		return nil
	}
	if pid, err := t.PID(node); err == nil && pid == 0 {
		return nil // Start applies it
	}
	// The loss fault drops the admin traffic too; a few tries get through.
	var err error
	for range 3 {
		if err = t.postOffset(ctx, node, offset); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Pause freezes a node, noting it so that clock changes wait for Resume.
func (t *nodeTarget) Pause(ctx context.Context, node string) error {
	t.mu.Lock()
	t.paused[node] = true
	t.mu.Unlock()
	return t.Cluster.Pause(ctx, node)
}

// Resume thaws a node and gives it the clock offset set while it was
// frozen, if any.
func (t *nodeTarget) Resume(ctx context.Context, node string) error {
	if err := t.Cluster.Resume(ctx, node); err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.paused, node)
	stale, offset := t.stale[node], t.offsets[node]
	delete(t.stale, node)
	t.mu.Unlock()
	if !stale {
		return nil
	}
	return t.postOffset(ctx, node, offset)
}

func (t *nodeTarget) postOffset(ctx context.Context, node string, offset time.Duration) error {
	var addr string
	for _, n := range t.file.Nodes {
		if n.Name == node {
			addr = n.AdminAddr
		}
	}
	if addr == "" {
		return fmt.Errorf("clock of %s: no such node with an admin address", node)
	}
	u := "http://" + addr + "/clock-offset?offset=" + url.QueryEscape(offset.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return fmt.Errorf("clock of %s: %w", node, err)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return fmt.Errorf("clock of %s: %w", node, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("clock of %s: %s: %s", node, resp.Status, body)
	}
	return nil
}

// restartClockTimeout bounds the wait for a restarted node's admin
// endpoint, to give it its clock offset back.
const restartClockTimeout = 30 * time.Second

// Start starts a node and, if its clock was shifted, shifts it again once
// its admin endpoint answers: a restart begins with the flags' offset.
func (t *nodeTarget) Start(ctx context.Context, node string) error {
	if err := t.Cluster.Start(ctx, node); err != nil {
		return err
	}
	t.mu.Lock()
	offset, ok := t.offsets[node]
	t.mu.Unlock()
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restartClockTimeout)
	defer cancel()
	for {
		err := t.postOffset(ctx, node, offset)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("restore the clock offset of restarted %s", node), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
