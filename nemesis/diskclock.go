package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// DiskLoser is implemented by targets whose nodes' disks can lose the
// writes they have not synced (for Docker, a lazyfs under each node's data
// directory).
type DiskLoser interface {
	// LoseUnsynced SIGKILLs node and then discards every write its disk
	// has not synced; with tear non-nil, a prefix (of a length tear draws)
	// of the newest unsynced write survives. It returns once the node is
	// dead and its disk rolled back; Start brings the node up again.
	LoseUnsynced(ctx context.Context, node string, tear *rand.Rand) (Lost, error)
}

// Lost says what a node's disk lost.
type Lost struct {
	// Files is how many files lost changes; Changes how many writes and
	// truncations were undone.
	Files   int
	Changes int
	// TornFile names the file whose newest write was torn ("" when
	// nothing was); TornKept of its TornLen bytes survived.
	TornFile string
	TornKept int
	TornLen  int
}

// Value renders l as a history value.
func (l Lost) Value() map[string]any {
	v := map[string]any{"files": int64(l.Files), "changes": int64(l.Changes)}
	if l.TornFile != "" {
		v["torn"] = map[string]any{"file": l.TornFile, "kept": int64(l.TornKept), "len": int64(l.TornLen)}
	}
	return v
}

// Clocker is implemented by targets that can shift a node's wall clock.
// The offset holds until it is set again, across restarts of the node.
type Clocker interface {
	SetClockOffset(ctx context.Context, node string, offset time.Duration) error
}

var (
	errNoDiskLoser = errors.New("nemesis: lose-unsynced needs a cluster whose disks can lose unsynced writes (Docker with FUSE)")
	errNoClocker   = errors.New("nemesis: the clock faults need a cluster whose node clocks can be shifted")
)

// loseUnsynced crashes f's victims with their unsynced writes. n.mu must
// be held.
func (n *Nemesis) loseUnsynced(ctx context.Context, f Fault, value map[string]any) error {
	dl, ok := n.t.(DiskLoser)
	if !ok {
		return errNoDiskLoser
	}
	var errs []error
	lost := make(map[string]any, len(f.Nodes))
	for i, node := range f.Nodes {
		var tear *rand.Rand
		if f.Tear {
			tear = rand.New(rand.NewPCG(f.Seed, uint64(i)))
		}
		n.killed[node] = true
		l, err := dl.LoseUnsynced(ctx, node, tear)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lost[node] = l.Value()
	}
	n.peakDown = max(n.peakDown, len(n.killed))
	value["lost"] = lost
	return errors.Join(errs...)
}

// strobe flips node's clock between offset and -offset every period until
// stopped.
type strobe struct {
	cancel context.CancelFunc
	done   chan struct{}
	flips  int
	err    error
}

// startClock applies a clock fault to f's victims. n.mu must be held.
func (n *Nemesis) startClock(ctx context.Context, f Fault) error {
	c, ok := n.t.(Clocker)
	if !ok {
		return errNoClocker
	}
	var errs []error
	for _, node := range f.Nodes {
		n.skewed[node] = true
		if err := c.SetClockOffset(ctx, node, f.Offset); err != nil {
			errs = append(errs, err)
			continue
		}
		if f.Kind != ClockStrobe {
			continue
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s := &strobe{cancel: cancel, done: make(chan struct{})}
		n.strobes[node] = s
		go s.run(sctx, c, node, f.Offset, f.Period)
	}
	return errors.Join(errs...)
}

func (s *strobe) run(ctx context.Context, c Clocker, node string, offset, period time.Duration) {
	defer close(s.done)
	t := time.NewTicker(period)
	defer t.Stop()
	cur := offset
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur = -cur
		if err := c.SetClockOffset(ctx, node, cur); err != nil {
			if ctx.Err() == nil && s.err == nil {
				// A node that is down (killed by another schedule) cannot
				// be flipped; the first failure is reported at the stop.
				s.err = err
			}
			continue
		}
		s.flips++
	}
}

// resetClocks stops any strobe of nodes and sets their clocks back. The
// completion value says how often each strobe flipped. n.mu must be held.
func (n *Nemesis) resetClocks(ctx context.Context, kind Kind, nodes []string) error {
	c, ok := n.t.(Clocker)
	if !ok {
		return errNoClocker
	}
	value := map[string]any{"kind": string(kind), "nodes": anyList(nodes), "offset_ms": 0.0}
	return n.doWith(StopF(kind), value, func() (map[string]any, error) {
		var errs []error
		flips := map[string]any{}
		for _, node := range nodes {
			if s := n.strobes[node]; s != nil {
				s.cancel()
				<-s.done
				delete(n.strobes, node)
				flips[node] = int64(s.flips)
			}
			if err := c.SetClockOffset(ctx, node, 0); err != nil {
				errs = append(errs, fmt.Errorf("reset the clock of %s: %w", node, err))
				continue
			}
			delete(n.skewed, node)
		}
		if len(flips) == 0 {
			return nil, errors.Join(errs...)
		}
		return map[string]any{"flips": flips}, errors.Join(errs...)
	})
}
