package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/replica"
	faultkind "github.com/chaoskv/chaos/nemesis"
)

// Nemesis fault kinds, as `chaos sim --nemesis` names them. The kinds
// `chaos run` also has (nemesis.Kinds) carry the same names and mean the
// same faults; the rest exist in the simulator only.
const (
	NemesisNone            = "none"
	NemesisPartition       = "partition"                 // random majority/minority halves
	NemesisPartitionOne    = "partition-one"             // isolate one node
	NemesisMajoritiesRing  = "partition-majorities-ring" // every node sees a different majority
	NemesisPartitionBridge = "partition-bridge"          // two halves joined by one node
	NemesisKill            = "kill"                      // SIGKILL a minority (sometimes all), restart later: unsynced writes survive in the page cache
	NemesisLoseUnsynced    = "lose-unsynced"             // as kill, but a power loss: unsynced writes may be lost, the newest kept one torn
	NemesisPause           = "pause"                     // freeze a minority (often the leader), resume later
	NemesisClock           = "clock"                     // some nodes' clocks run 3x fast or 3x slow
	NemesisClockBump       = "clock-bump"                // step one node's clock by up to ±ClockSkew
	NemesisClockStrobe     = "clock-strobe"              // flip one node's clock between +d and -d every StrobePeriod
	NemesisLoss            = "loss"                      // drop 20% of messages
	NemesisDup             = "dup"                       // duplicate 30% of messages, half the copies up to 1s late
	NemesisDelay           = "delay"                     // 5-60 ms latency, 10% of messages up to 200 ms more
	NemesisLatency         = "latency"                   // every message delayed 100ms ± 20ms, as chaos run's netem
	NemesisPartitionLeader = "partition-leader"          // cut the current leader off, then each leader elected after it
	NemesisSwizzle         = "partition-swizzle"         // clog nodes one by one, then unclog them one by one
	NemesisCrashMoment     = "crash-moment"              // power-loss crash of a node right after it promises, accepts or votes, or a leader right after it picks slots, sends them ahead of its own write, or commits them; re-armed while the crashed are a minority
	NemesisDisk            = "disk"                      // a node's fsync fails: it stops, losing unsynced writes, and restarts
	NemesisMembership      = "membership"                // add, remove or replace a replica of the group, keeping a majority of the old and new configurations healthy
)

// NemesisKinds lists every fault kind.
var NemesisKinds = []string{NemesisNone, NemesisPartition, NemesisPartitionOne, NemesisMajoritiesRing,
	NemesisPartitionBridge, NemesisKill, NemesisLoseUnsynced, NemesisPause, NemesisClock, NemesisClockBump,
	NemesisClockStrobe, NemesisLoss, NemesisDup, NemesisDelay, NemesisLatency, NemesisPartitionLeader,
	NemesisSwizzle, NemesisCrashMoment, NemesisDisk, NemesisMembership}

// unsupported says why the simulator refuses a kind `chaos run` has.
var unsupported = map[faultkind.Kind]string{
	faultkind.Reconfig: "it moves shards between replica groups through the shard controller, " +
		"and the simulator's nemesis drives one replica group (its sharded workloads run a fixed fault mix of their own)",
}

// ParseNemesis parses a comma-separated list of fault kinds; "all" stands
// for every kind but membership, which must be named: it needs spare nodes
// and a core that implements replica.Reconfigurer. A kind only `chaos run`
// can inject is refused with the reason.
func ParseNemesis(s string) ([]string, error) {
	var out []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
			continue
		case k == "all":
			for _, a := range NemesisKinds {
				if a != NemesisNone && a != NemesisMembership && !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		case slices.Contains(NemesisKinds, k):
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		case unsupported[faultkind.Kind(k)] != "":
			return nil, fmt.Errorf("nemesis %q is chaos run only: %s", k, unsupported[faultkind.Kind(k)])
		default:
			return nil, fmt.Errorf("unknown nemesis %q (want a comma-separated list of: all, %s)", k, strings.Join(NemesisKinds, ", "))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty nemesis list (use %q for no faults)", NemesisNone)
	}
	return out, nil
}

func isPartition(kind string) bool { return strings.HasPrefix(kind, "partition") }

// NemesisSchedule sets the rhythm of faults.
type NemesisSchedule struct {
	// First fault after this much time (default 300ms), so the group has
	// a chance to elect a leader first.
	Start time.Duration
	// Each fault lasts uniformly in [MinFault, MaxFault] (default 200ms
	// to 2s), then there is a quiet period uniformly in [MinQuiet,
	// MaxQuiet] (default 100ms to 1s).
	MinFault, MaxFault time.Duration
	MinQuiet, MaxQuiet time.Duration
	// Flap is the probability that a fault and the quiet period after it
	// are short instead (10-300ms and 10-200ms): faults that come and go
	// at the protocol's own time scale (elections, retransmissions) hit
	// the narrow windows that slow faults miss. The default schedule uses
	// 0.5.
	Flap float64
	// ClockSkew bounds the clock faults' step (5s, as chaos run's
	// --clock-skew); StrobePeriod is how often clock-strobe flips a clock
	// (20ms, as --strobe-period).
	ClockSkew, StrobePeriod time.Duration
	// MaxFaults, when positive, ends the schedule after that many faults;
	// FaultCap, when positive, cuts every fault short at that length. Both
	// leave the random draws as they are, so a schedule with them is the
	// same schedule up to the cut: they are how a failing run shrinks.
	MaxFaults int
	FaultCap  time.Duration
}

func (s *NemesisSchedule) defaults() {
	if s.Start == 0 {
		s.Start = 300 * time.Millisecond
	}
	if s.MaxFault == 0 {
		s.MinFault, s.MaxFault = 200*time.Millisecond, 2*time.Second
		if s.Flap == 0 {
			s.Flap = 0.5
		}
	}
	if s.MaxQuiet == 0 {
		s.MinQuiet, s.MaxQuiet = 100*time.Millisecond, time.Second
	}
	if s.ClockSkew == 0 {
		s.ClockSkew = faultkind.DefaultClockSkew
	}
	if s.StrobePeriod == 0 {
		s.StrobePeriod = faultkind.DefaultStrobePeriod
	}
}

// nemesis injects faults on a seeded schedule and records each start and
// stop in the history. Faults are chosen from kinds (see pick); with probability 1/3
// two compatible kinds run together.
type nemesis struct {
	r         *runner
	kinds     []string
	aimed     []string // the kinds that are aimedKinds too
	sched     NemesisSchedule
	base      Network
	active    []string
	killed    []replica.NodeID
	powered   []replica.NodeID // crashed by lose-unsynced
	bumped    map[replica.NodeID]time.Duration
	strobe    *strobe          // the running clock-strobe; nil when none runs
	trapped   []replica.NodeID // crashed by a crash-moment trap
	swizzling *int             // the running swizzle's token; nil when none runs
	chasing   *int             // the running partition-leader's token; nil when none runs
	paused    []replica.NodeID
	stopped   bool
	gen       int
}

func (nm *nemesis) begin() {
	if len(nm.kinds) == 1 && nm.kinds[0] == NemesisNone {
		return
	}
	for _, k := range nm.kinds {
		if slices.Contains(aimedKinds, k) {
			nm.aimed = append(nm.aimed, k)
		}
	}
	nm.r.c.At(nm.sched.Start, nm.startFault)
}

func (nm *nemesis) uniform(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(nm.r.c.rng.Int63n(int64(hi-lo)+1))
}

// aimedKinds are the faults aimed at protocol moments: the leader, the
// instant after a promise, a pick or a commit, a power loss, links failing
// one by one. Each finds more per fault than a random cut or a slow
// network, so pick draws half the faults from those in the mix.
var aimedKinds = []string{NemesisCrashMoment, NemesisPartitionLeader, NemesisSwizzle, NemesisLoseUnsynced}

// pick draws the next fault kind: with probability 1/2 one of the aimed
// kinds in the mix (when the mix has others too), else any kind of it.
func (nm *nemesis) pick() string {
	rng := nm.r.c.rng
	if len(nm.aimed) > 0 && len(nm.aimed) < len(nm.kinds) && rng.Intn(2) == 0 {
		return nm.aimed[rng.Intn(len(nm.aimed))]
	}
	return nm.kinds[rng.Intn(len(nm.kinds))]
}

func (nm *nemesis) startFault() {
	if nm.stopped || nm.sched.MaxFaults > 0 && nm.r.res.Faults >= nm.sched.MaxFaults {
		return
	}
	nm.r.res.Faults++
	rng := nm.r.c.rng
	first := nm.pick()
	picks := []string{first}
	if len(nm.kinds) > 1 && rng.Intn(3) == 0 {
		second := nm.kinds[rng.Intn(len(nm.kinds))]
		if second != first && !(isPartition(first) && isPartition(second)) {
			picks = append(picks, second)
		}
	}
	for _, k := range picks {
		nm.apply(k)
	}
	nm.gen++
	gen := nm.gen
	fault := nm.uniform(nm.sched.MinFault, nm.sched.MaxFault)
	quiet := nm.uniform(nm.sched.MinQuiet, nm.sched.MaxQuiet)
	if nm.sched.Flap > 0 && rng.Float64() < nm.sched.Flap {
		fault = nm.uniform(10*time.Millisecond, 300*time.Millisecond)
		quiet = nm.uniform(10*time.Millisecond, 200*time.Millisecond)
	}
	if nm.sched.FaultCap > 0 {
		fault = min(fault, nm.sched.FaultCap)
	}
	nm.r.c.At(fault, func() {
		if nm.stopped || gen != nm.gen {
			return
		}
		nm.healAll()
		nm.r.c.At(quiet, nm.startFault)
	})
}

// stop heals every fault and ends the schedule.
func (nm *nemesis) stop() {
	if nm.stopped {
		return
	}
	nm.stopped = true
	nm.healAll()
}

func nodeName(id replica.NodeID) string { return fmt.Sprintf("n%d", id) }

func (nm *nemesis) shuffled() []replica.NodeID {
	ids := nm.r.c.Peers()
	nm.r.c.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids
}

// grudgeValue describes the current cuts for the history: node -> nodes it
// cannot hear.
func (nm *nemesis) grudgeValue() map[string]any {
	c := nm.r.c
	out := map[string]any{}
	for _, a := range c.Peers() {
		var deaf []any
		for _, b := range c.Peers() {
			if a != b && !c.CanHear(a, b) {
				deaf = append(deaf, nodeName(b))
			}
		}
		if len(deaf) > 0 {
			out[nodeName(a)] = deaf
		}
	}
	return out
}

// strobe is a running clock-strobe: node's clock sits at offset, which
// flips sign every period until the fault ends.
type strobe struct {
	node   replica.NodeID
	offset time.Duration
	flips  int
}

// victims picks the nodes a crash takes down: a minority, or one time in
// five every node.
func (nm *nemesis) victims() []replica.NodeID {
	c := nm.r.c
	n := len(c.nodes)
	ids := nm.shuffled()
	k := n
	if n > 1 && c.rng.Intn(5) != 0 {
		k = 1 + c.rng.Intn((n-1)/2+boolInt((n-1)/2 == 0))
	}
	ids = ids[:k]
	slices.Sort(ids)
	return ids
}

func names(ids []replica.NodeID) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = nodeName(id)
	}
	return out
}

func (nm *nemesis) apply(kind string) {
	c := nm.r.c
	n := len(c.nodes)
	switch kind {
	case NemesisNone:
		return
	case NemesisPartition:
		ids := nm.shuffled()
		c.Partition(ids[:n/2], ids[n/2:])
	case NemesisPartitionOne:
		ids := nm.shuffled()
		c.Partition([]replica.NodeID{ids[0]}, ids[1:])
	case NemesisMajoritiesRing:
		majoritiesRing(c, nm.shuffled())
	case NemesisPartitionBridge:
		// ids[n/2] is the bridge: it hears, and is heard by, both halves.
		ids := nm.shuffled()
		c.Heal()
		for _, a := range ids[:n/2] {
			for _, b := range ids[n/2+1:] {
				c.Cut(a, b)
				c.Cut(b, a)
			}
		}
	case NemesisKill:
		nm.killed = nm.victims()
		for _, id := range nm.killed {
			c.CrashProcess(id)
		}
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("kill", names(nm.killed))
		return
	case NemesisLoseUnsynced:
		nm.powered = nm.victims()
		for _, id := range nm.powered {
			c.Crash(id)
		}
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("start-lose-unsynced", names(nm.powered))
		return
	case NemesisPause:
		// Half the time the leader is among the frozen: a leader that
		// wakes up after others moved on is where stale answers come from.
		ids := nm.shuffled()
		k := 1 + c.rng.Intn(max(1, (n-1)/2))
		if l := c.Leader(); l != 0 && c.rng.Intn(2) == 0 {
			for i, id := range ids {
				if id == l {
					ids[0], ids[i] = ids[i], ids[0]
				}
			}
		}
		nm.paused = append(nm.paused[:0], ids[:k]...)
		slices.Sort(nm.paused)
		names := make([]any, len(nm.paused))
		for i, id := range nm.paused {
			c.Pause(id)
			names[i] = nodeName(id)
		}
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("pause", names)
		return
	case NemesisClock:
		ids := nm.shuffled()
		k := 1 + c.rng.Intn(max(1, (n+1)/2))
		rates := map[string]any{}
		for _, id := range ids[:k] {
			rate := 3.0
			if c.rng.Intn(2) == 0 {
				rate = 1.0 / 3
			}
			_ = c.SetClockRate(id, rate)
			rates[nodeName(id)] = rate
		}
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("start-clock", rates)
		return
	case NemesisClockBump:
		id := nm.shuffled()[0]
		d := nm.uniform(-nm.sched.ClockSkew, nm.sched.ClockSkew)
		if nm.bumped == nil {
			nm.bumped = map[replica.NodeID]time.Duration{}
		}
		nm.bumped[id] += d
		fired := c.JumpClock(id, d)
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("start-clock-bump", map[string]any{nodeName(id): d.String(), "ticks-fired": fired})
		return
	case NemesisClockStrobe:
		nm.startStrobe()
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("start-clock-strobe", map[string]any{nodeName(nm.strobe.node): nm.strobe.offset.String(), "period": nm.sched.StrobePeriod.String()})
		return
	case NemesisLatency:
		net := c.Net()
		net.MinDelay, net.MaxDelay = faultkind.DefaultDelay-faultkind.DefaultJitter, faultkind.DefaultDelay+faultkind.DefaultJitter
		net.TailProb, net.TailDelay = 0, 0
		_ = c.SetNet(net)
	case NemesisLoss:
		net := c.Net()
		net.Loss = 0.2
		_ = c.SetNet(net)
	case NemesisDup:
		net := c.Net()
		net.Dup, net.DupDelay = 0.3, time.Second
		_ = c.SetNet(net)
	case NemesisDelay:
		net := c.Net()
		net.MinDelay, net.MaxDelay, net.TailProb, net.TailDelay = 5*time.Millisecond, 60*time.Millisecond, 0.1, 200*time.Millisecond
		_ = c.SetNet(net)
	case NemesisPartitionLeader:
		nm.chaseLeader()
	case NemesisSwizzle:
		nm.swizzle()
	case NemesisCrashMoment:
		m := nm.armTrap()
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("start-crash-moment", m.String())
		return
	case NemesisDisk:
		id := nm.shuffled()[0]
		c.FailSyncs(id, 1+c.rng.Intn(2))
		nm.active = append(nm.active, kind)
		nm.r.nemesisOp("start-disk", []any{nodeName(id), "fsync fails"})
		return
	case NemesisMembership:
		// A configuration change is not healed: the next one undoes it.
		nm.changeMembers()
		return
	}
	nm.active = append(nm.active, kind)
	var v any
	switch {
	case isPartition(kind):
		v = map[string]any{"kind": kind, "grudge": nm.grudgeValue()}
	default:
		v = kind
	}
	nm.r.nemesisOp("start-"+faultName(kind), v)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// faultName groups the partition shapes under one f, as Jepsen does.
func faultName(kind string) string {
	if isPartition(kind) {
		return "partition"
	}
	return kind
}

// majoritiesRing arranges the nodes in a ring; each hears itself and the
// nearest nodes around it up to a majority, so every node sees a majority
// but no two see the same one.
func majoritiesRing(c *Cluster, ring []replica.NodeID) {
	n := len(ring)
	maj := n/2 + 1
	c.Heal()
	for i, a := range ring {
		hears := make([]bool, n)
		hears[i] = true
		for d, got := 1, 1; got < maj; d++ {
			hears[(i+d)%n] = true
			got++
			if got < maj {
				hears[(i-d+n)%n] = true
				got++
			}
		}
		for j, b := range ring {
			if !hears[j] {
				c.Cut(a, b)
			}
		}
	}
}

func (nm *nemesis) healAll() {
	c := nm.r.c
	for _, kind := range nm.active {
		switch {
		case kind == NemesisKill || kind == NemesisLoseUnsynced:
			// The history names them as chaos run does.
			down, f := &nm.killed, "start"
			if kind == NemesisLoseUnsynced {
				down, f = &nm.powered, "stop-lose-unsynced"
			}
			for _, id := range *down {
				if err := c.Restart(id); err != nil {
					c.fail(err)
				}
			}
			nm.r.nemesisOp(f, names(*down))
			*down = nil
			continue
		case kind == NemesisClockBump:
			for _, id := range slices.Sorted(maps.Keys(nm.bumped)) {
				c.JumpClock(id, -nm.bumped[id])
			}
			clear(nm.bumped)
		case kind == NemesisClockStrobe:
			s := nm.strobe
			nm.strobe = nil
			c.JumpClock(s.node, -s.offset)
			nm.r.nemesisOp("stop-clock-strobe", map[string]any{nodeName(s.node): "reset", "flips": s.flips})
			continue
		case kind == NemesisPause:
			names := make([]any, len(nm.paused))
			for i, id := range nm.paused {
				c.Resume(id)
				names[i] = nodeName(id)
			}
			nm.paused = nm.paused[:0]
			nm.r.nemesisOp("resume", names)
			continue
		case kind == NemesisClock:
			for _, id := range c.Peers() {
				_ = c.SetClockRate(id, 1)
			}
		case kind == NemesisCrashMoment:
			c.trap = nil
			names := make([]any, len(nm.trapped))
			for i, id := range nm.trapped {
				if err := c.Restart(id); err != nil {
					c.fail(err)
				}
				names[i] = nodeName(id)
			}
			nm.trapped = nm.trapped[:0]
			nm.r.nemesisOp("start", names)
			continue
		case kind == NemesisDisk:
			for _, id := range c.Peers() {
				c.FailSyncs(id, 0)
			}
		case isPartition(kind):
			nm.swizzling, nm.chasing = nil, nil
			c.Heal()
		default:
			_ = c.SetNet(nm.base)
		}
		nm.r.nemesisOp("stop-"+faultName(kind), kind)
	}
	nm.active = nm.active[:0]
}

// startStrobe steps one node's clock to +d (d up to ClockSkew), then flips
// it to -d, +d, ... every StrobePeriod until the fault ends: each flip is a
// step of 2d, so the node's timers alternate between bursts and silence
// (see Cluster.JumpClock).
func (nm *nemesis) startStrobe() {
	c := nm.r.c
	s := &strobe{node: nm.shuffled()[0], offset: nm.uniform(time.Millisecond, nm.sched.ClockSkew)}
	nm.strobe = s
	c.JumpClock(s.node, s.offset)
	var flip func()
	flip = func() {
		if nm.strobe != s {
			return
		}
		s.flips++
		c.JumpClock(s.node, -2*s.offset)
		s.offset = -s.offset
		c.At(nm.sched.StrobePeriod, flip)
	}
	c.At(nm.sched.StrobePeriod, flip)
}

// swizzle clogs the nodes one at a time, in a random order, then unclogs
// them one at a time in another, a step of 20-100ms apart, until the fault
// ends (FoundationDB's swizzle-clog): a clogged node neither hears nor is
// heard by anyone.
func (nm *nemesis) swizzle() {
	c := nm.r.c
	token := new(int)
	nm.swizzling = token
	in, out := nm.shuffled(), nm.shuffled()
	step := nm.uniform(20*time.Millisecond, 100*time.Millisecond)
	clogged := map[replica.NodeID]bool{}
	apply := func() {
		for _, a := range c.Peers() {
			for _, b := range c.Peers() {
				if a != b {
					if clogged[a] || clogged[b] {
						c.Cut(a, b)
					} else {
						c.cut[c.mustIndex(a)][c.mustIndex(b)] = false
					}
				}
			}
		}
	}
	for k, id := range in {
		c.At(time.Duration(k+1)*step, func() {
			if nm.swizzling == token {
				clogged[id] = true
				apply()
			}
		})
	}
	for k, id := range out {
		c.At(time.Duration(len(in)+k+1)*step, func() {
			if nm.swizzling == token {
				delete(clogged, id)
				apply()
			}
		})
	}
}

// armTrap sets a crash-moment trap at a random moment. When it fires and
// the crashed nodes are still a minority, it arms another: one fault window
// can then crash a leader right after it picks slots and the leader that
// replaces it right after it commits, the cascades in which a new leader
// must recover a log from replicas that each saw only part of it.
func (nm *nemesis) armTrap() moment {
	c := nm.r.c
	m := moments[c.rng.Intn(len(moments))]
	c.trap = &trap{moment: m, fire: func(id replica.NodeID) {
		c.Crash(id)
		nm.trapped = append(nm.trapped, id)
		nm.r.nemesisOp("kill", []any{nodeName(id), m.String()})
		if 2*(len(nm.trapped)+1) < len(c.nodes) {
			nm.armTrap()
		}
	}}
	return m
}

// chaseLeader cuts the current leader off from the rest (any node when
// there is none), then chases leadership until the fault ends: every
// 100-500ms, a leader the others elected meanwhile is cut off in turn and
// the node cut off before rejoins. Each ex-leader comes back with a tail it
// could not get chosen while the new leader has just chosen slots its
// followers may not know are chosen: the elections that follow must merge
// such logs, where phase-1 and view-change bugs live.
func (nm *nemesis) chaseLeader() {
	c := nm.r.c
	token := new(int)
	nm.chasing = token
	var cut replica.NodeID
	isolate := func(l replica.NodeID) {
		cut = l
		var rest []replica.NodeID
		for _, id := range c.Peers() {
			if id != l {
				rest = append(rest, id)
			}
		}
		c.Partition([]replica.NodeID{l}, rest)
	}
	l := c.Leader()
	if l == 0 {
		l = nm.shuffled()[0]
	}
	isolate(l)
	var chase func()
	chase = func() {
		if nm.chasing != token {
			return
		}
		if l := c.Leader(); l != 0 && l != cut {
			isolate(l)
			nm.r.nemesisOp("start-partition", map[string]any{"kind": NemesisPartitionLeader, "grudge": nm.grudgeValue()})
		}
		c.At(nm.uniform(100*time.Millisecond, 500*time.Millisecond), chase)
	}
	c.At(nm.uniform(100*time.Millisecond, 500*time.Millisecond), chase)
}

// changeMembers moves the group to a new configuration one member away
// (added or removed) or two (one replaced), as nemesis.PlanMembership
// decides for chaos run too: a majority of both the old and the new
// configuration runs unpaused, and none shrinks below
// nemesis.MinMembers. The history records the change as a "membership" op
// with the configuration before and after, or why there was none.
func (nm *nemesis) changeMembers() {
	c := nm.r.c
	cur, inForce := c.Members()
	hosts := c.Peers()
	g := faultkind.GroupMembers{Group: 1, Members: nameList(cur), Hosts: nameList(hosts), InForce: cur != nil && inForce}
	byName := map[string]replica.NodeID{}
	for _, id := range hosts {
		byName[nodeName(id)] = id
	}
	healthy := func(n string) bool { return c.Healthy(byName[n]) }
	ch, err := faultkind.PlanMembership(c.rng.Uint64(), []faultkind.GroupMembers{g}, healthy, false)
	if err != nil {
		nm.r.nemesisOp("membership", map[string]any{"skipped": err.Error(), "members": names(cur)})
		return
	}
	next := make([]replica.NodeID, len(ch.To))
	for i, n := range ch.To {
		next[i] = byName[n]
	}
	slices.Sort(next)
	// An invocation and its completion, as chaos run records an admin
	// action, so that the report draws the change as an event and the
	// configurations on the group's lane.
	v := ch.Value()
	nm.r.record(history.Op{Type: history.Invoke, Process: history.NemesisProcess, F: NemesisMembership, Value: v})
	done := history.Op{Type: history.Info, Process: history.NemesisProcess, F: NemesisMembership, Value: v}
	if _, err := c.ChangeMembers(next); err != nil {
		done.Error = err.Error()
	}
	nm.r.record(done)
}

// nameList returns the node names of ids.
func nameList(ids []replica.NodeID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = nodeName(id)
	}
	return out
}
