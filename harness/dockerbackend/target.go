package dockerbackend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/nemesis"
)

// Target is the nemesis's view of a cluster in Docker: the container
// faults of docker.Cluster plus the clock faults, which go through the
// adapter (ClockSetter) because containers share the host's kernel clock.
// It remembers every shifted clock so that a node that was paused or down
// when its clock changed, or that restarted (and so began with no
// offset), gets its offset when it comes back.
type Target struct {
	*docker.Cluster
	clock ClockSetter // nil: the database has no clock to shift

	mu      sync.Mutex
	offsets map[string]time.Duration // non-zero clock offsets by node
	paused  map[string]bool          // nodes paused through this target
	stale   map[string]bool          // paused nodes whose offset changed meanwhile
}

var (
	_ nemesis.Target    = (*Target)(nil)
	_ nemesis.Clocker   = (*Target)(nil)
	_ nemesis.DiskLoser = (*Target)(nil)
	_ nemesis.Checker   = (*Target)(nil)
)

func newTarget(cl *docker.Cluster, conn Conn) *Target {
	t := &Target{Cluster: cl, offsets: map[string]time.Duration{},
		paused: map[string]bool{}, stale: map[string]bool{}}
	t.clock, _ = conn.(ClockSetter)
	return t
}

// errNoClock refuses the clock kinds for a database without a clock
// offset.
var errNoClock = errors.New("the database's nodes have no clock offset to set (its adapter is no ClockSetter)")

// Supports reports whether the target can inject faults of kind k: the
// clock kinds need the adapter's clock, the rest the cluster's say.
func (t *Target) Supports(ctx context.Context, k nemesis.Kind) error {
	if k.IsClock() && t.clock == nil {
		return errNoClock
	}
	return t.Cluster.Supports(ctx, k)
}

// SetClockOffset shifts node's wall clock by offset; 0 sets it back. The
// offset is applied again whenever the node restarts. A node that is down
// or paused (by other faults) cannot answer; it gets the offset when it
// starts or resumes.
func (t *Target) SetClockOffset(ctx context.Context, node string, offset time.Duration) error {
	if t.clock == nil {
		return fmt.Errorf("clock of %s: %w", node, errNoClock)
	}
	n, err := t.node(node)
	if err != nil {
		return err
	}
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
	for range 3 {
		if err = t.setClock(ctx, n, offset); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (t *Target) setClock(ctx context.Context, n docker.Node, offset time.Duration) error {
	if err := t.clock.SetNodeClock(ctx, n, offset); err != nil {
		return fmt.Errorf("clock of %s: %w", n.Name, err)
	}
	return nil
}

func (t *Target) node(name string) (docker.Node, error) {
	for _, n := range t.Members() {
		if n.Name == name {
			return n, nil
		}
	}
	return docker.Node{}, fmt.Errorf("no node %q in this cluster", name)
}

// Pause freezes a node, noting it so that clock changes wait for Resume.
func (t *Target) Pause(ctx context.Context, node string) error {
	t.mu.Lock()
	t.paused[node] = true
	t.mu.Unlock()
	return t.Cluster.Pause(ctx, node)
}

// Resume thaws a node and gives it the clock offset set while it was
// frozen, if any.
func (t *Target) Resume(ctx context.Context, node string) error {
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
	n, err := t.node(node)
	if err != nil {
		return err
	}
	return t.setClock(ctx, n, offset)
}

// restartClockTimeout bounds the wait for a restarted node's admin
// endpoint, to give it its clock offset back.
const restartClockTimeout = 30 * time.Second

// Start starts a node and, if its clock was shifted, shifts it again once
// it answers: a restarted process has lost the offset it was given.
func (t *Target) Start(ctx context.Context, node string) error {
	if err := t.Cluster.Start(ctx, node); err != nil {
		return err
	}
	t.mu.Lock()
	offset, ok := t.offsets[node]
	t.mu.Unlock()
	if !ok {
		return nil
	}
	n, err := t.node(node)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restartClockTimeout)
	defer cancel()
	for {
		err := t.setClock(ctx, n, offset)
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
