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
	kinds  []Kind
	aimed  []Kind // the kinds that are Aimed, when the rhythm aims
	rhythm Rhythm
	rng    *rand.Rand
}

// Rhythm is a schedule's timing and how it draws kinds.
type Rhythm struct {
	// Interval is the mean quiet time and the mean hold: each is drawn
	// uniformly from [Interval/2, 3*Interval/2).
	Interval time.Duration
	// Flap is the probability that a step is short instead: quiet and
	// hold drawn from [Interval/64, Interval/2). Faults that come and go
	// at a protocol's own time scale (elections, retransmissions) hit
	// windows that long faults miss. Zero draws nothing extra, so a
	// schedule without flaps is the same sequence as before flaps existed.
	Flap float64
	// Aim makes half the steps of a schedule that mixes Aimed kinds with
	// others draw from the aimed ones.
	Aim bool
}

// NewSchedule returns the schedule for kinds with the given mean interval
// and seed. Each step picks one kind uniformly; quiet and hold times are
// drawn uniformly from [interval/2, 3*interval/2).
func NewSchedule(kinds []Kind, interval time.Duration, seed int64) (*Schedule, error) {
	return NewScheduleWith(kinds, Rhythm{Interval: interval}, seed)
}

// NewScheduleWith is NewSchedule with a full Rhythm.
func NewScheduleWith(kinds []Kind, r Rhythm, seed int64) (*Schedule, error) {
	if len(kinds) == 0 {
		return nil, fmt.Errorf("nemesis schedule: no fault kinds")
	}
	for _, k := range kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("nemesis schedule: unknown fault kind %q (valid: %s)", string(k), validList())
		}
	}
	if r.Interval <= 0 {
		return nil, fmt.Errorf("nemesis schedule: interval must be positive, got %v", r.Interval)
	}
	if !(r.Flap >= 0 && r.Flap <= 1) {
		return nil, fmt.Errorf("nemesis schedule: flap probability must be in [0, 1], got %v", r.Flap)
	}
	s := &Schedule{
		kinds:  slices.Clone(kinds),
		rhythm: r,
		rng:    rand.New(rand.NewPCG(uint64(seed), 0x6e656d65736973)),
	}
	if r.Aim {
		for _, k := range kinds {
			if k.Aimed() {
				s.aimed = append(s.aimed, k)
			}
		}
	}
	return s, nil
}

// class groups kinds that act on the same thing and so must take turns:
// all partitions (one grudge at a time); pause and the crashes (a paused
// node cannot be killed cleanly); loss and dup (the fate of a message);
// latency and delay (its delay); reconfig; the clocks; membership.
func (k Kind) class() int {
	switch {
	case k.IsPartition():
		return 0
	case k == Pause || k == Kill || k == LoseUnsynced || k == CrashMoment || k == Disk:
		return 1
	case k == Loss || k == Dup:
		return 2
	case k == Reconfig:
		return 4
	case k.IsClock() || k == Clock:
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
	return SchedulesWith(kinds, Rhythm{Interval: interval}, seed)
}

// SchedulesWith is Schedules with a full Rhythm.
func SchedulesWith(kinds []Kind, r Rhythm, seed int64) ([]*Schedule, error) {
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
		s, err := NewScheduleWith(byClass[c], r, seed+int64(c)*0x3c6ef372)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// jitter draws a duration uniformly from [d/2, 3d/2).
func (s *Schedule) jitter() time.Duration {
	d := s.rhythm.Interval
	return d/2 + time.Duration(s.rng.Int64N(int64(d)))
}

// Next returns the next step.
func (s *Schedule) Next() Step {
	var k Kind
	if len(s.aimed) > 0 && len(s.aimed) < len(s.kinds) && s.rng.IntN(2) == 0 {
		k = s.aimed[s.rng.IntN(len(s.aimed))]
	} else {
		k = s.kinds[s.rng.IntN(len(s.kinds))]
	}
	quiet := s.jitter()
	hold := s.jitter()
	if s.rhythm.Flap > 0 && s.rng.Float64() < s.rhythm.Flap {
		lo, span := s.rhythm.Interval/64, s.rhythm.Interval/2-s.rhythm.Interval/64
		quiet = lo + time.Duration(s.rng.Int64N(int64(span)))
		hold = lo + time.Duration(s.rng.Int64N(int64(span)))
	}
	return Step{Kind: k, Quiet: quiet, Hold: hold, Seed: s.rng.Uint64()}
}

// Fault is a fully decided fault: everything a Target needs to inject it
// and everything a history needs to say what was done.
type Fault struct {
	Kind       Kind
	Grudge     Grudge      // partitions
	Components [][]string  // component-shaped partitions
	Bridge     string      // partition-bridge: the node hearing both sides
	Nodes      []string    // pause, kill, lose-unsynced, clock and disk victims; isolated leaders; swizzle's clog order
	Percent    int         // loss, dup
	Latency    LatencySpec // latency
	// Tear makes lose-unsynced keep a prefix of each victim's newest
	// unsynced write; Seed draws the prefix lengths.
	Tear bool
	Seed uint64
	// Offset is clock-bump's shift of the victim's clock and
	// clock-strobe's amplitude; Period is clock-strobe's flip interval.
	Offset time.Duration
	Period time.Duration
	// Rates are clock's rates, one per node of Nodes (RateFactor or its
	// inverse).
	Rates []float64
	// Order is partition-swizzle's unclog order; Period is the time
	// between two of its clogs or unclogs.
	Order []string
	// Count is how many fsyncs in a row disk makes fail.
	Count int
}

// Fixed shapes of the simulator's network and clock kinds.
const (
	// DefaultDupPercent is the share of messages dup duplicates.
	DefaultDupPercent = 30
	// RateFactor is how much faster (or, inverted, slower) clock makes a
	// node's clock run.
	RateFactor = 3.0
)

// Params are the knobs of the non-partition faults.
type Params struct {
	LossPercent int
	Latency     LatencySpec
	// DupPercent is dup's share of duplicated messages.
	DupPercent int
	// Kill bounds how many nodes kill and lose-unsynced take down (""
	// means KillMinority).
	Kill KillPolicy
	// Tear is lose-unsynced's Fault.Tear.
	Tear bool
	// ClockSkew bounds the clock faults' shift; StrobePeriod is
	// clock-strobe's flip interval.
	ClockSkew    time.Duration
	StrobePeriod time.Duration
}

// Plan decides the fault of one step for the given nodes. leaders is what
// the backend knows of the current leaders: partition-leader needs them,
// and pause, given them, freezes one of them half the time (a leader that
// wakes up after the others moved on is where stale answers come from).
// Plan is a pure function of its arguments. Reconfig and Membership depend
// on the cluster's configuration and are planned by PlanReconfig and
// PlanMembership instead.
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
		switch p.Kill {
		case KillAny:
			f.Nodes = anyVictims(nodes, rng)
		case KillMinorityOrAll:
			if len(nodes) > 1 && rng.IntN(5) != 0 {
				f.Nodes = victims(nodes, rng)
			} else {
				f.Nodes = slices.Clone(nodes)
			}
		default:
			f.Nodes = victims(nodes, rng)
		}
		if step.Kind == LoseUnsynced {
			f.Tear, f.Seed = p.Tear, step.Seed
		}
	case CrashMoment:
		// The moments are the backend's own; it draws one from Seed.
		f.Seed = step.Seed
	case Disk:
		f.Nodes = []string{nodes[rng.IntN(len(nodes))]}
		f.Count = 1 + rng.IntN(2)
	case Clock:
		k := 1 + rng.IntN(max(1, (len(nodes)+1)/2))
		f.Nodes = inOrder(nodes, shuffled(nodes, rng)[:k])
		for range f.Nodes {
			r := RateFactor
			if rng.IntN(2) == 0 {
				r = 1 / RateFactor
			}
			f.Rates = append(f.Rates, r)
		}
	case PartitionSwizzle:
		if len(nodes) < 2 {
			return Fault{}, fmt.Errorf("nemesis: partition-swizzle needs at least 2 nodes, have %d", len(nodes))
		}
		f.Nodes, f.Order = shuffled(nodes, rng), shuffled(nodes, rng)
		f.Period = 20*time.Millisecond + time.Duration(rng.Int64N(int64(80*time.Millisecond)+1))
	case Dup:
		if p.DupPercent < 1 || p.DupPercent > 100 {
			return Fault{}, fmt.Errorf("nemesis: dup percentage must be 1..100, got %d", p.DupPercent)
		}
		f.Percent = p.DupPercent
	case Delay:
		// Its shape is fixed (see Delay).
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
		if len(leaders) > 0 && rng.IntN(2) == 0 {
			if l := leaders[rng.IntN(len(leaders))]; !slices.Contains(f.Nodes, l) && slices.Contains(nodes, l) {
				f.Nodes[0] = l
				f.Nodes = inOrder(nodes, f.Nodes)
			}
		}
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
	return inOrder(nodes, shuffled(nodes, rng)[:k])
}

// inOrder returns the picked nodes in the order of nodes.
func inOrder(nodes, picked []string) []string {
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
	if f.Kind == Loss || f.Kind == Dup {
		v["percent"] = int64(f.Percent)
	}
	if f.Rates != nil {
		rates := make(map[string]any, len(f.Rates))
		for i, r := range f.Rates {
			rates[f.Nodes[i]] = r
		}
		v["rates"] = rates
	}
	if f.Order != nil {
		v["unclog"] = anyList(f.Order)
		v["period_ms"] = float64(f.Period) / float64(time.Millisecond)
	}
	if f.Count > 0 {
		v["failing_syncs"] = int64(f.Count)
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
