package nemesis

import (
	"context"
	"fmt"
	"time"
)

// Target is the cluster as the nemesis sees it. The Docker backend
// implements it; so can a simulator. Network faults are state, not events:
// each of Partition, Loss and Latency replaces the previous setting of its
// own kind and leaves the other kinds alone, and a node that restarts gets
// the current state re-applied before Start returns.
type Target interface {
	// Nodes returns the node names, in a stable order.
	Nodes() []string
	// Partition makes every node drop packets from the nodes its grudge
	// names. An empty grudge ends the partition.
	Partition(ctx context.Context, g Grudge) error
	// Loss makes every node drop the given percentage (0..100) of its
	// incoming packets at random; 0 stops it.
	Loss(ctx context.Context, percent int) error
	// Latency delays every node's outgoing packets; the zero value stops it.
	Latency(ctx context.Context, l LatencySpec) error
	// Heal ends every network fault: partition, loss and latency.
	Heal(ctx context.Context) error
	// Kill SIGKILLs a node's process and returns once it is dead.
	Kill(ctx context.Context, node string) error
	// Start starts a killed node again, with its network faults re-applied.
	Start(ctx context.Context, node string) error
	// Pause freezes a node's processes.
	Pause(ctx context.Context, node string) error
	// Resume thaws a paused node.
	Resume(ctx context.Context, node string) error
}

// LatencySpec is a packet delay: every packet waits Delay, give or take
// Jitter.
type LatencySpec struct {
	Delay  time.Duration
	Jitter time.Duration
}

// IsZero reports whether l asks for no delay at all.
func (l LatencySpec) IsZero() bool { return l.Delay == 0 && l.Jitter == 0 }

// LeaderFunc returns the current leader node of every replica group. The
// harness implements it by asking the nodes; partition-leader needs it.
type LeaderFunc func(ctx context.Context) ([]string, error)

// Checker is implemented by targets that can tell ahead of a test whether
// they can inject a kind of fault at all (latency needs kernel support,
// for example).
type Checker interface {
	Supports(ctx context.Context, k Kind) error
}

// Preflight asks t, if it is a Checker, whether it supports every kind,
// so that a test fails before it starts rather than at its first fault.
func Preflight(ctx context.Context, t Target, kinds []Kind) error {
	c, ok := t.(Checker)
	if !ok {
		return nil
	}
	for _, k := range kinds {
		if err := c.Supports(ctx, k); err != nil {
			return fmt.Errorf("nemesis %s: %w", k, err)
		}
	}
	return nil
}
