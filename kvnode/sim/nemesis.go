package sim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// The simulator's nemesis is a backend of package nemesis: the kinds, their
// schedules (nemesis.SchedulesWith) and every random decision of a fault
// (nemesis.Plan, PlanReconfig, PlanMembership, the grudge maths) are that
// package's; this file only applies decided faults to the simulated world
// on virtual time and records them as chaos run does (an invoke and an
// info per action, nemesis.StartF and StopF names, Fault.Value values).
// Only what needs the world's live state is decided here: which leader to
// chase, which protocol moment a crash-moment trap waits for.

// NemesisSchedule sets the rhythm of faults. Zero fields take the
// defaults in parentheses.
type NemesisSchedule struct {
	// Interval is the mean quiet time and the mean fault length of each
	// class's schedule (700ms), as chaos run's --nemesis-interval.
	Interval time.Duration
	// Flap is the probability that a fault and the quiet before it are
	// short (nemesis.Rhythm.Flap; 0.5 when Interval is defaulted).
	Flap float64
	// ClockSkew bounds the clock faults' step (5s, as chaos run's
	// --clock-skew); StrobePeriod is how often clock-strobe flips a clock
	// (20ms, as --strobe-period).
	ClockSkew, StrobePeriod time.Duration
	// MaxFaults, when positive, ends the schedules after that many faults;
	// FaultCap, when positive, cuts every fault short at that length. Both
	// leave the random draws as they are, so a schedule with them is the
	// same schedule up to the cut: they are how a failing run shrinks.
	MaxFaults int
	FaultCap  time.Duration
}

// DefaultNemesisInterval and DefaultFlap are NemesisSchedule's Interval
// and Flap defaults.
const (
	DefaultNemesisInterval = 700 * time.Millisecond
	DefaultFlap            = 0.5
)

func (s *NemesisSchedule) defaults() {
	if s.Interval == 0 {
		s.Interval = DefaultNemesisInterval
		if s.Flap == 0 {
			s.Flap = DefaultFlap
		}
	}
	if s.ClockSkew == 0 {
		s.ClockSkew = nemesis.DefaultClockSkew
	}
	if s.StrobePeriod == 0 {
		s.StrobePeriod = nemesis.DefaultStrobePeriod
	}
}

// CheckNemesis refuses a nemesis list the simulator cannot honour as given
// for workload: a kind it cannot inject at all, or one the workload's
// world cannot host (reconfig needs shard groups, membership a single
// group with spare nodes). Nothing is dropped silently.
func CheckNemesis(workload string, kinds []nemesis.Kind) error {
	sharded := sharded(workload)
	for _, k := range kinds {
		if err := nemesis.Sim.Supported(k); err != nil {
			return err
		}
		switch {
		case k == nemesis.Reconfig && !sharded:
			return fmt.Errorf("nemesis: reconfig needs %s", nemesis.Sim.Needs(k))
		case k == nemesis.Membership && sharded:
			return fmt.Errorf("nemesis: membership needs %s; the sharded world's groups have fixed members", nemesis.Sim.Needs(k))
		}
	}
	return nil
}

// simNemesis runs nemesis schedules against a placement on virtual time.
type simNemesis struct {
	p      *placement
	at     func(time.Duration, func())
	record func(history.Op)
	sched  NemesisSchedule
	scheds []*nemesis.Schedule
	params nemesis.Params
	base   Network
	// event performs the world's own events (reconfig, membership),
	// which happen rather than being held, and calls done when the
	// world has answered.
	event   func(k nemesis.Kind, seed uint64, done func())
	faults  *int    // fault windows opened (Result.Faults)
	active  []*held // faults in force, in the order they started
	stopped bool
}

// held is a fault in force and how to end it.
type held struct {
	f    nemesis.Fault
	stop func() map[string]any // ends the fault; returns its stop op's value
}

func newSimNemesis(p *placement, kinds []nemesis.Kind, seed int64, sched NemesisSchedule, at func(time.Duration, func()), record func(history.Op), faults *int) (*simNemesis, error) {
	scheds, err := nemesis.SchedulesWith(kinds, nemesis.Rhythm{Interval: sched.Interval, Flap: sched.Flap, Aim: true}, seed)
	if err != nil {
		return nil, err
	}

	return &simNemesis{p: p, at: at, record: record, sched: sched, scheds: scheds, base: p.clusters[0].Net(), faults: faults,
		params: nemesis.Params{LossPercent: nemesis.DefaultLossPercent, DupPercent: nemesis.DefaultDupPercent,
			Latency: nemesis.LatencySpec{Delay: nemesis.DefaultDelay, Jitter: nemesis.DefaultJitter},
			Kill:    nemesis.KillMinorityOrAll, ClockSkew: sched.ClockSkew, StrobePeriod: sched.StrobePeriod}}, nil
}

// begin starts every schedule.
func (nm *simNemesis) begin() {
	for _, s := range nm.scheds {
		nm.loop(s)
	}
}

// loop runs one schedule: quiet, start a fault, hold it, stop it, again.
func (nm *simNemesis) loop(s *nemesis.Schedule) {
	step := s.Next()
	nm.at(step.Quiet, func() {
		if nm.stopped || nm.sched.MaxFaults > 0 && *nm.faults >= nm.sched.MaxFaults {
			return
		}
		*nm.faults++
		if step.Kind == nemesis.Reconfig || step.Kind == nemesis.Membership {
			// As chaos run's nemesis waits for the controller to answer
			// before its next step, the schedule goes on once the event
			// is done; the hold then lets the cluster digest it (a shard
			// migration), which chaos run's real-time answers give too.
			nm.event(step.Kind, step.Seed, func() {
				nm.at(step.Hold, func() {
					if !nm.stopped {
						nm.loop(s)
					}
				})
			})
			return
		}
		h := nm.start(step)
		hold := step.Hold
		if nm.sched.FaultCap > 0 {
			hold = min(hold, nm.sched.FaultCap)
		}
		nm.at(hold, func() {
			if nm.stopped {
				return
			}
			nm.end(h)
			nm.loop(s)
		})
	})
}

// stop ends every fault in force and the schedules.
func (nm *simNemesis) stop() {
	if nm.stopped {
		return
	}
	nm.stopped = true
	for len(nm.active) > 0 {
		nm.end(nm.active[0])
	}
}

// do records an action as chaos run does: an invoke, then its info
// completion with what the action added to the value.
func (nm *simNemesis) do(f string, v map[string]any, extra map[string]any, errText string) {
	nm.record(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: f, Value: v})
	if len(extra) > 0 {
		v = maps.Clone(v)
		maps.Copy(v, extra)
	}
	nm.record(history.Op{Type: history.Info, Process: history.NemesisProcess, F: f, Value: v, Error: errText})
}

// note records something a running fault did on its own (a trap that
// fired, a leader chased), as a single info op.
func (nm *simNemesis) note(f string, v any) {
	nm.record(history.Op{Type: history.Info, Process: history.NemesisProcess, F: f, Value: v})
}

// end stops h and records it.
func (nm *simNemesis) end(h *held) {
	i := slices.Index(nm.active, h)
	if i < 0 {
		return
	}
	nm.active = slices.Delete(nm.active, i, i+1)
	v := h.stop()
	v["kind"] = string(h.f.Kind)
	nm.do(nemesis.StopF(h.f.Kind), v, nil, "")
}

// start plans step's fault, applies it and records it.
func (nm *simNemesis) start(step nemesis.Step) *held {
	var leaders []string
	if step.Kind == nemesis.PartitionLeader || step.Kind == nemesis.Pause {
		leaders = nm.p.leaders()
	}
	h := &held{f: nemesis.Fault{Kind: step.Kind}}
	f, err := nemesis.Plan(step, nm.p.names, leaders, nm.params)
	if step.Kind == nemesis.PartitionLeader && len(leaders) == 0 {
		// Between leaders there is nobody to cut off yet: the chase
		// isolates the first one elected.
		f, err = nemesis.Fault{Kind: step.Kind}, nil
	}
	if err != nil {
		// A fault this world is too small for (a ring of two nodes):
		// say so, and hold nothing (end finds nothing to stop).
		nm.do(nemesis.StartF(step.Kind), map[string]any{"kind": string(step.Kind)}, nil, err.Error())
		return h
	}
	h.f = f
	nm.active = append(nm.active, h)
	extra := map[string]any{}
	h.stop = nm.apply(f, step.Seed, extra)
	nm.do(nemesis.StartF(f.Kind), f.Value(), extra, "")
	return h
}

// apply injects f and returns how to end it; extra receives what the start
// op's completion should add.
func (nm *simNemesis) apply(f nemesis.Fault, seed uint64, extra map[string]any) func() map[string]any {
	p := nm.p
	nodes := func() map[string]any { return map[string]any{"nodes": anyNames(f.Nodes)} }
	switch f.Kind {
	case nemesis.Partition, nemesis.PartitionOne, nemesis.PartitionMajoritiesRing, nemesis.PartitionBridge:
		p.setGrudge(f.Grudge)
		return nm.healPartition
	case nemesis.PartitionLeader:
		return nm.chaseLeader(f, seed)
	case nemesis.PartitionSwizzle:
		return nm.swizzle(f)
	case nemesis.Kill, nemesis.LoseUnsynced:
		for _, n := range f.Nodes {
			if f.Kind == nemesis.Kill {
				p.each(nodeID(n), (*Cluster).CrashProcess)
			} else {
				p.crash(nodeID(n))
			}
		}
		return func() map[string]any {
			for _, n := range f.Nodes {
				p.restart(nodeID(n))
			}
			return nodes()
		}
	case nemesis.Pause:
		for _, n := range f.Nodes {
			p.each(nodeID(n), (*Cluster).Pause)
		}
		return func() map[string]any {
			for _, n := range f.Nodes {
				p.each(nodeID(n), (*Cluster).Resume)
			}
			return nodes()
		}
	case nemesis.CrashMoment:
		return nm.crashMoment(f, extra)
	case nemesis.Disk:
		for _, n := range f.Nodes {
			p.each(nodeID(n), func(c *Cluster, id replica.NodeID) { c.FailSyncs(id, f.Count) })
		}
		return func() map[string]any {
			for _, n := range f.Nodes {
				p.each(nodeID(n), func(c *Cluster, id replica.NodeID) { c.FailSyncs(id, 0) })
			}
			return nodes()
		}
	case nemesis.Loss:
		p.setNet(func(n *Network) { n.Loss = float64(f.Percent) / 100 })
		return func() map[string]any {
			p.setNet(func(n *Network) { n.Loss = nm.base.Loss })
			return map[string]any{"percent": int64(0)}
		}
	case nemesis.Dup:
		p.setNet(func(n *Network) { n.Dup, n.DupDelay = float64(f.Percent)/100, time.Second })
		return func() map[string]any {
			p.setNet(func(n *Network) { n.Dup, n.DupDelay = nm.base.Dup, nm.base.DupDelay })
			return map[string]any{"percent": int64(0)}
		}
	case nemesis.Latency, nemesis.Delay:
		p.setNet(func(n *Network) {
			if f.Kind == nemesis.Latency {
				n.MinDelay, n.MaxDelay, n.TailProb, n.TailDelay = f.Latency.Delay-f.Latency.Jitter, f.Latency.Delay+f.Latency.Jitter, 0, 0
			} else {
				n.MinDelay, n.MaxDelay, n.TailProb, n.TailDelay = 5*time.Millisecond, 60*time.Millisecond, 0.1, 200*time.Millisecond
			}
		})
		return func() map[string]any {
			b := nm.base
			p.setNet(func(n *Network) {
				n.MinDelay, n.MaxDelay, n.TailProb, n.TailDelay = b.MinDelay, b.MaxDelay, b.TailProb, b.TailDelay
			})
			return map[string]any{"delay_ms": 0.0}
		}
	case nemesis.ClockBump:
		fired := 0
		for _, n := range f.Nodes {
			p.each(nodeID(n), func(c *Cluster, id replica.NodeID) { fired += c.JumpClock(id, f.Offset) })
		}
		extra["ticks_fired"] = int64(fired)
		return func() map[string]any {
			for _, n := range f.Nodes {
				p.each(nodeID(n), func(c *Cluster, id replica.NodeID) { c.JumpClock(id, -f.Offset) })
			}
			return map[string]any{"nodes": anyNames(f.Nodes), "offset_ms": 0.0}
		}
	case nemesis.ClockStrobe:
		return nm.strobe(f)
	case nemesis.Clock:
		for i, n := range f.Nodes {
			p.each(nodeID(n), func(c *Cluster, id replica.NodeID) { _ = c.SetClockRate(id, f.Rates[i]) })
		}
		return func() map[string]any {
			for _, n := range f.Nodes {
				p.each(nodeID(n), func(c *Cluster, id replica.NodeID) { _ = c.SetClockRate(id, 1) })
			}
			return nodes()
		}
	}
	// Plan knows no other kinds, and reconfig and membership are events.
	panic(fmt.Sprintf("sim: nemesis: no way to apply %q", f.Kind))
}

func (nm *simNemesis) healPartition() map[string]any {
	nm.p.heal()
	return map[string]any{"healed": true}
}

func anyNames(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// chaseLeader cuts the current leaders off from the rest, then chases
// leadership until the fault ends: every 100-500ms, leaders the others
// elected meanwhile are cut off in turn and those cut off before rejoin.
// Each ex-leader comes back with a tail it could not get chosen while the
// new leader has just chosen slots its followers may not know are chosen:
// the elections that follow must merge such logs, where phase-1 and
// view-change bugs live.
func (nm *simNemesis) chaseLeader(f nemesis.Fault, seed uint64) func() map[string]any {
	rng := rand.New(rand.NewPCG(seed, 0x6c6561646572))
	cut := f.Nodes
	if len(cut) > 0 {
		nm.p.setGrudge(f.Grudge)
	}
	on := true
	var chase func()
	chase = func() {
		if !on {
			return
		}
		if l := nm.p.leaders(); len(l) > 0 && !slices.Equal(l, cut) && !isSubset(l, cut) {
			comps, err := nemesis.Isolate(nm.p.names, l)
			if err == nil {
				cut = l
				g := nemesis.Complete(comps...)
				nm.p.setGrudge(g)
				nm.note(nemesis.StartF(nemesis.PartitionLeader), map[string]any{"kind": string(nemesis.PartitionLeader), "nodes": anyNames(l), "grudge": g.Value()})
			}
		}
		nm.at(100*time.Millisecond+time.Duration(rng.Int64N(int64(400*time.Millisecond)+1)), chase)
	}
	nm.at(100*time.Millisecond+time.Duration(rng.Int64N(int64(400*time.Millisecond)+1)), chase)
	return func() map[string]any {
		on = false
		return nm.healPartition()
	}
}

// isSubset reports whether every node of a is in b.
func isSubset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// swizzle clogs f.Nodes one at a time, then unclogs them in f.Order, a
// f.Period apart, until the fault ends: a clogged node neither hears nor
// is heard by anyone.
func (nm *simNemesis) swizzle(f nemesis.Fault) func() map[string]any {
	on := true
	clogged := map[string]bool{}
	apply := func() {
		var c []string
		for _, n := range nm.p.names {
			if clogged[n] {
				c = append(c, n)
			}
		}
		g := nemesis.Grudge{}
		for _, a := range nm.p.names {
			for _, b := range nm.p.names {
				if a != b && (clogged[a] || clogged[b]) {
					g[a] = append(g[a], b)
				}
			}
		}
		nm.p.setGrudge(g)
	}
	for k, n := range f.Nodes {
		nm.at(time.Duration(k+1)*f.Period, func() {
			if on {
				clogged[n] = true
				apply()
			}
		})
	}
	for k, n := range f.Order {
		nm.at(time.Duration(len(f.Nodes)+k+1)*f.Period, func() {
			if on {
				delete(clogged, n)
				apply()
			}
		})
	}
	return func() map[string]any {
		on = false
		return nm.healPartition()
	}
}

// strobe steps f's node's clock to f.Offset, then flips it to -Offset,
// +Offset, ... every f.Period until the fault ends: each flip is a step of
// twice the offset, so the node's timers alternate between bursts and
// silence (see Cluster.JumpClock).
func (nm *simNemesis) strobe(f nemesis.Fault) func() map[string]any {
	on, cur, flips := true, f.Offset, 0
	jump := func(d time.Duration) {
		for _, n := range f.Nodes {
			nm.p.each(nodeID(n), func(c *Cluster, id replica.NodeID) { c.JumpClock(id, d) })
		}
	}
	jump(cur)
	var flip func()
	flip = func() {
		if !on {
			return
		}
		flips++
		jump(-2 * cur)
		cur = -cur
		nm.at(f.Period, flip)
	}
	nm.at(f.Period, flip)
	return func() map[string]any {
		on = false
		jump(-cur)
		return map[string]any{"nodes": anyNames(f.Nodes), "offset_ms": 0.0, "flips": int64(flips)}
	}
}

// crashMoment arms a trap at a protocol moment drawn from f.Seed, in a
// group drawn from it too: the first replica to reach the moment crashes
// its world node (a power loss). While the crashed nodes are a minority it
// arms another, so one fault can crash a leader right after it picks
// slots and the leader that replaces it right after it commits: the
// cascades in which a new leader must recover a log from replicas that
// each saw only part of it.
func (nm *simNemesis) crashMoment(f nemesis.Fault, extra map[string]any) func() map[string]any {
	rng := rand.New(rand.NewPCG(f.Seed, 0x6d6f6d656e74))
	var crashed []string
	var armed *Cluster
	var arm func() moment
	arm = func() moment {
		g := rng.IntN(len(nm.p.clusters))
		c := nm.p.clusters[g]
		ms := moments
		if c.cfg.MayDecide != nil {
			ms = append(slices.Clone(moments), momentDecide)
		}
		m := ms[rng.IntN(len(ms))]
		armed = c
		c.trap = &trap{moment: m, fire: func(id replica.NodeID) {
			c.trap, armed = nil, nil
			n := nm.p.members[g][id-1]
			nm.p.crash(n)
			crashed = append(crashed, nodeName(n))
			nm.note("kill", []any{nodeName(n), m.String()})
			if 2*(len(crashed)+1) < len(nm.p.names) {
				arm()
			}
		}}
		return m
	}
	extra["moment"] = arm().String()
	return func() map[string]any {
		if armed != nil {
			armed.trap = nil
		}
		for _, n := range crashed {
			nm.p.restart(nodeID(n))
		}
		return map[string]any{"nodes": anyNames(crashed)}
	}
}

// changeMembers is the single-group world's membership event: it plans a
// change with nemesis.PlanMembership, the rule chaos run's nemesis uses,
// from the configuration in force, and proposes it. It is recorded as chaos
// run records it: the change's value (the configurations before and after,
// which the report draws on the group's lane), or why there was none.
func (g *groupWorld) changeMembers(seed uint64, done func()) {
	defer done()
	c := g.c
	cur, inForce := c.Members()
	gm := nemesis.GroupMembers{Group: 1, Members: slices.Sorted(slices.Values(nameList(cur))), Hosts: slices.Sorted(slices.Values(g.place.names)), InForce: cur != nil && inForce}
	ch, err := nemesis.PlanMembership(seed, []nemesis.GroupMembers{gm}, func(n string) bool { return c.Healthy(nodeID(n)) }, false)
	if err != nil {
		g.nem.do(string(nemesis.Membership), map[string]any{"op": "none"}, nil, err.Error())
		return
	}
	ids := make([]replica.NodeID, len(ch.To))
	for i, n := range ch.To {
		ids[i] = nodeID(n)
	}
	slices.Sort(ids)
	errText := ""
	if _, err := c.ChangeMembers(ids); err != nil {
		errText = err.Error()
	}
	g.nem.do(string(nemesis.Membership), ch.Value(), nil, errText)
}

// nameList returns the node names of ids.
func nameList(ids []replica.NodeID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = nodeName(id)
	}
	return out
}
