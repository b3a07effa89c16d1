package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultInterval    = 10 * time.Second
	DefaultLossPercent = 20
	DefaultDelay       = 100 * time.Millisecond
	DefaultJitter      = 20 * time.Millisecond
	// DefaultClockSkew bounds the clock faults' shift.
	DefaultClockSkew = 5 * time.Second
	// DefaultStrobePeriod is how often clock-strobe flips the clock.
	DefaultStrobePeriod = 20 * time.Millisecond
)

// Step is one cycle of a schedule: stay quiet for Quiet, then hold a fault
// of kind Kind for Hold. Seed drives the fault's own random choices (which
// halves, which victims), so a step is fully determined by the schedule's
// seed and its position.
type Step struct {
	Kind  Kind
	Quiet time.Duration
	Hold  time.Duration
	Seed  uint64
}

// Schedule yields an endless, seed-determined sequence of steps.
type Schedule struct {
	kinds    []Kind
	interval time.Duration
	rng      *rand.Rand
}

// NewSchedule returns the schedule for kinds with the given mean interval
// and seed. Each step picks one kind uniformly; quiet and hold times are
// drawn uniformly from [interval/2, 3*interval/2).
func NewSchedule(kinds []Kind, interval time.Duration, seed int64) (*Schedule, error) {
	if len(kinds) == 0 {
		return nil, fmt.Errorf("nemesis schedule: no fault kinds")
	}
	for _, k := range kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("nemesis schedule: unknown fault kind %q (valid: %s)", string(k), validList())
		}
	}
	if interval <= 0 {
		return nil, fmt.Errorf("nemesis schedule: interval must be positive, got %v", interval)
	}
	return &Schedule{
		kinds:    slices.Clone(kinds),
		interval: interval,
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x6e656d65736973)),
	}, nil
}

// class groups kinds that act on the same thing and so must take turns:
// all partitions (one grudge at a time), pause, kill and lose-unsynced (a
// paused node cannot be killed cleanly), loss, latency, the clocks.
func (k Kind) class() int {
	switch {
	case k.IsPartition():
		return 0
	case k == Pause || k == Kill || k == LoseUnsynced:
		return 1
	case k == Loss:
		return 2
	case k == Reconfig:
		return 4
	case k.IsClock():
		return 5
	case k == Membership:
		return 6
	}
	return 3
}

// Schedules splits kinds into their classes and returns one schedule per
// class, in order of first appearance, each seeded from seed and its
// class so that adding a kind of another class leaves a class's own
// sequence unchanged. No kinds yields no schedules.
func Schedules(kinds []Kind, interval time.Duration, seed int64) ([]*Schedule, error) {
	var order []int
	byClass := make(map[int][]Kind)
	for _, k := range kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("nemesis schedule: unknown fault kind %q (valid: %s)", string(k), validList())
		}
		c := k.class()
		if _, ok := byClass[c]; !ok {
			order = append(order, c)
		}
		byClass[c] = append(byClass[c], k)
	}
	var out []*Schedule
	for _, c := range order {
		s, err := NewSchedule(byClass[c], interval, seed+int64(c)*0x3c6ef372)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// jitter draws a duration uniformly from [d/2, 3d/2).
func (s *Schedule) jitter() time.Duration {
	d := s.interval
	return d/2 + time.Duration(s.rng.Int64N(int64(d)))
}

// Next returns the next step.
func (s *Schedule) Next() Step {
	k := s.kinds[s.rng.IntN(len(s.kinds))]
	quiet := s.jitter()
	hold := s.jitter()
	return Step{Kind: k, Quiet: quiet, Hold: hold, Seed: s.rng.Uint64()}
}

// Fault is a fully decided fault: everything a Target needs to inject it
// and everything a history needs to say what was done.
type Fault struct {
	Kind       Kind
	Grudge     Grudge      // partitions
	Components [][]string  // component-shaped partitions
	Bridge     string      // partition-bridge: the node hearing both sides
	Nodes      []string    // pause, kill, lose-unsynced and clock victims; isolated leaders
	Percent    int         // loss
	Latency    LatencySpec // latency
	// Tear makes lose-unsynced keep a prefix of each victim's newest
	// unsynced write; Seed draws the prefix lengths.
	Tear bool
	Seed uint64
	// Offset is clock-bump's shift of the victim's clock and
	// clock-strobe's amplitude; Period is clock-strobe's flip interval.
	Offset time.Duration
	Period time.Duration
}

// Params are the knobs of the non-partition faults.
type Params struct {
	LossPercent int
	Latency     LatencySpec
	// KillAny lets a kill or lose-unsynced take down any number of nodes,
	// all included (KillAny policy); otherwise it takes a minority.
	KillAny bool
	// Tear is lose-unsynced's Fault.Tear.
	Tear bool
	// ClockSkew bounds the clock faults' shift; StrobePeriod is
	// clock-strobe's flip interval.
	ClockSkew    time.Duration
	StrobePeriod time.Duration
}

// Plan decides the fault of one step for the given nodes. leaders is used
// only by partition-leader. Plan is a pure function of its arguments.
func Plan(step Step, nodes []string, leaders []string, p Params) (Fault, error) {
	if len(nodes) == 0 {
		return Fault{}, fmt.Errorf("nemesis: no nodes to hurt")
	}
	rng := rand.New(rand.NewPCG(step.Seed, uint64(len(nodes))))
	f := Fault{Kind: step.Kind}
	var err error
	switch step.Kind {
	case Partition:
		f.Components, err = Halves(nodes, rng)
	case PartitionOne:
		f.Components, err = One(nodes, rng)
	case PartitionLeader:
		if len(leaders) == 0 {
			return Fault{}, fmt.Errorf("nemesis: partition-leader: no current leader known")
		}
		f.Nodes = slices.Clone(leaders)
		f.Components, err = Isolate(nodes, leaders)
	case PartitionMajoritiesRing:
		f.Grudge, err = MajoritiesRing(nodes, rng)
	case PartitionBridge:
		f.Grudge, f.Bridge, err = Bridge(nodes, rng)
	case Kill, LoseUnsynced:
		if p.KillAny {
			f.Nodes = anyVictims(nodes, rng)
		} else {
			f.Nodes = victims(nodes, rng)
		}
		if step.Kind == LoseUnsynced {
			f.Tear, f.Seed = p.Tear, step.Seed
		}
	case ClockBump, ClockStrobe:
		if p.ClockSkew < time.Millisecond {
			return Fault{}, fmt.Errorf("nemesis: %s needs a clock skew of at least 1ms, got %v", step.Kind, p.ClockSkew)
		}
		f.Nodes = []string{nodes[rng.IntN(len(nodes))]}
		// At least a millisecond either way, so that the fault is never a
		// no-op.
		f.Offset = time.Millisecond + time.Duration(rng.Int64N(int64(p.ClockSkew-time.Millisecond)+1))
		if rng.IntN(2) == 0 {
			f.Offset = -f.Offset
		}
		if step.Kind == ClockStrobe {
			if p.StrobePeriod <= 0 {
				return Fault{}, fmt.Errorf("nemesis: clock-strobe needs a positive period, got %v", p.StrobePeriod)
			}
			f.Period = p.StrobePeriod
		}
	case Pause:
		f.Nodes = victims(nodes, rng)
	case Loss:
		if p.LossPercent < 1 || p.LossPercent > 100 {
			return Fault{}, fmt.Errorf("nemesis: loss percentage must be 1..100, got %d", p.LossPercent)
		}
		f.Percent = p.LossPercent
	case Latency:
		if p.Latency.Delay <= 0 || p.Latency.Jitter < 0 {
			return Fault{}, fmt.Errorf("nemesis: latency needs a positive delay and a non-negative jitter, got %v±%v", p.Latency.Delay, p.Latency.Jitter)
		}
		f.Latency = p.Latency
	case Reconfig:
		return Fault{}, fmt.Errorf("nemesis: reconfig is decided by PlanReconfig from the shard layout, not by Plan")
	case Membership:
		return Fault{}, fmt.Errorf("nemesis: membership is decided by PlanMembership from the groups' configurations, not by Plan")
	default:
		return Fault{}, fmt.Errorf("nemesis: unknown fault kind %q (valid: %s)", string(step.Kind), validList())
	}
	if err != nil {
		return Fault{}, fmt.Errorf("nemesis: %w", err)
	}
	if f.Components != nil {
		f.Grudge = Complete(f.Components...)
	}
	return f, nil
}

// victims picks a random non-empty minority of nodes (one node when there
// are fewer than three), in the nodes' own order.
func victims(nodes []string, rng *rand.Rand) []string {
	most := max(1, (len(nodes)-1)/2)
	k := 1 + rng.IntN(most)
	picked := shuffled(nodes, rng)[:k]
	var out []string
	for _, n := range nodes {
		if slices.Contains(picked, n) {
			out = append(out, n)
		}
	}
	return out
}

// Value renders f as a history op value saying exactly what it does.
func (f Fault) Value() map[string]any {
	v := map[string]any{"kind": string(f.Kind)}
	if f.Grudge != nil {
		v["grudge"] = f.Grudge.Value()
	}
	if f.Components != nil {
		comps := make([]any, len(f.Components))
		for i, c := range f.Components {
			comps[i] = anyList(c)
		}
		v["components"] = comps
	}
	if f.Bridge != "" {
		v["bridge"] = f.Bridge
	}
	if f.Nodes != nil {
		v["nodes"] = anyList(f.Nodes)
	}
	if f.Kind == Loss {
		v["percent"] = int64(f.Percent)
	}
	if f.Kind == LoseUnsynced {
		v["tear"] = f.Tear
	}
	if f.Kind.IsClock() {
		v["offset_ms"] = float64(f.Offset) / float64(time.Millisecond)
	}
	if f.Kind == ClockStrobe {
		v["period_ms"] = float64(f.Period) / float64(time.Millisecond)
	}
	if f.Kind == Latency {
		v["delay_ms"] = float64(f.Latency.Delay) / float64(time.Millisecond)
		v["jitter_ms"] = float64(f.Latency.Jitter) / float64(time.Millisecond)
	}
	return v
}

// anyList converts names to a history list value.
func anyList(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}
