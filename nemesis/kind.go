// Package nemesis holds the fault kinds a chaos test injects, in both
// worlds: every kind either backend knows, and per backend (Backend) the
// kinds it cannot inject and why and those that need setup, which is what
// "all" leaves out. It also holds the seeded schedules (Schedules,
// SchedulesWith: one per class of kinds) and the pure planning of a step
// into a fault (Plan, PlanReconfig, PlanMembership, with the grudge
// arithmetic behind partitions), which both backends share: the Docker
// backend applies faults through Target from goroutines on real time
// (Nemesis), the simulator (kvnode/sim) applies the same decided faults to
// its world on virtual time. A backend decides only what needs its live
// state (which leader to chase, the protocol moment a crash waits for).
package nemesis

import (
	"fmt"
	"strings"
)

// Kind names one family of faults, as given to --nemesis.
type Kind string

// The fault kinds.
const (
	// Partition cuts the cluster into two random halves.
	Partition Kind = "partition"
	// PartitionOne isolates one random node from all others.
	PartitionOne Kind = "partition-one"
	// PartitionMajoritiesRing gives every node a view of a majority, with
	// no two nodes sharing the same view.
	PartitionMajoritiesRing Kind = "partition-majorities-ring"
	// PartitionBridge cuts the cluster in two halves joined by one node
	// that hears both.
	PartitionBridge Kind = "partition-bridge"
	// PartitionLeader isolates the current leader of every replica group.
	PartitionLeader Kind = "partition-leader"
	// Pause freezes processes (SIGSTOP-like, via the cgroup freezer).
	Pause Kind = "pause"
	// Kill SIGKILLs processes and later starts them again.
	Kill Kind = "kill"
	// Loss drops a percentage of incoming packets at random.
	Loss Kind = "loss"
	// Latency delays outgoing packets (needs the kernel's netem qdisc).
	Latency Kind = "latency"
	// LoseUnsynced crashes processes like Kill, and also loses every write
	// their disks had not synced (a power loss), optionally tearing the
	// newest one; it restarts them later.
	LoseUnsynced Kind = "lose-unsynced"
	// ClockBump moves one node's wall clock by up to ±ClockSkew.
	ClockBump Kind = "clock-bump"
	// ClockStrobe flips one node's wall clock back and forth by up to
	// ±ClockSkew every StrobePeriod.
	ClockStrobe Kind = "clock-strobe"
	// Clock makes some nodes' clocks run fast or slow (a rate, not an
	// offset): their timers fire RateFactor times as often, or as seldom.
	Clock Kind = "clock"
	// Dup duplicates DupPercent of the messages, half of the copies
	// delivered up to a second late.
	Dup Kind = "dup"
	// Delay slows the network down unevenly: 5-60ms per message, and one
	// message in ten up to 200ms more, so messages overtake each other.
	Delay Kind = "delay"
	// PartitionSwizzle clogs the nodes one at a time in a random order
	// (a clogged node neither hears nor is heard), then unclogs them one
	// at a time in another order (FoundationDB's swizzle-clog).
	PartitionSwizzle Kind = "partition-swizzle"
	// CrashMoment crashes a node, losing its unsynced writes, right after
	// it reaches a protocol moment (it sent a promise, an acceptance or a
	// vote; as leader it picked values for new slots, sent them ahead of
	// its own write, or answered for committed ones), and arms again
	// while the crashed nodes are a minority.
	CrashMoment Kind = "crash-moment"
	// Disk makes one node's next fsyncs fail: the node stops, losing its
	// unsynced writes, and its supervisor restarts it.
	Disk Kind = "disk"
	// Membership adds, removes or replaces one replica of a group through
	// the group's own configuration change (PlanMembership), keeping a
	// majority of the old and of the new configuration healthy unless the
	// kill policy is any. It is an event, like Reconfig, not a held fault:
	// every configuration is one the system must serve, so nothing undoes
	// it but the next change.
	Membership Kind = "membership"
)

// allKinds lists every kind in the order help texts show them.
var allKinds = []Kind{Partition, PartitionOne, PartitionMajoritiesRing, PartitionBridge,
	PartitionLeader, PartitionSwizzle, Pause, Kill, LoseUnsynced, CrashMoment, Disk, Loss, Dup,
	Latency, Delay, ClockBump, ClockStrobe, Clock, Reconfig, Membership}

// Kinds returns every valid kind.
func Kinds() []Kind { return append([]Kind(nil), allKinds...) }

// IsPartition reports whether k is one of the partition kinds.
func (k Kind) IsPartition() bool {
	switch k {
	case Partition, PartitionOne, PartitionMajoritiesRing, PartitionBridge, PartitionLeader, PartitionSwizzle:
		return true
	}
	return false
}

// IsClock reports whether k is one of the clock offset kinds, those a
// Clocker injects (Clock, a rate, is not one).
func (k Kind) IsClock() bool { return k == ClockBump || k == ClockStrobe }

// Aimed reports whether k aims at a protocol moment (the leader, the
// instant after a promise, a pick or a commit, a power loss, links failing
// one by one) rather than at a random node or link. Each finds more per
// fault than a random cut does, which is why Rhythm.Aim favours them.
func (k Kind) Aimed() bool {
	switch k {
	case CrashMoment, PartitionLeader, PartitionSwizzle, LoseUnsynced:
		return true
	}
	return false
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, v := range allKinds {
		if k == v {
			return true
		}
	}
	return false
}

// validList is the comma-separated list of kinds used in error messages.
func validList() string {
	s := make([]string, len(allKinds))
	for i, k := range allKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// ParseKinds parses a comma-separated --nemesis value such as
// "partition,kill". "none" alone means no faults and yields an empty list;
// "all" depends on the backend and is ParseFor's.
// Unknown, empty or repeated entries are errors naming the valid kinds.
func ParseKinds(s string) ([]Kind, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("nemesis: empty list of fault kinds (valid: none, all, %s)", validList())
	}
	if s == "none" {
		return []Kind{}, nil
	}
	var out []Kind
	seen := make(map[Kind]bool)
	for _, part := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(part))
		switch {
		case k == "":
			return nil, fmt.Errorf("nemesis: empty entry in %q (valid: %s)", s, validList())
		case k == "none":
			return nil, fmt.Errorf("nemesis: \"none\" cannot be combined with other kinds in %q", s)
		case k == "all":
			return nil, fmt.Errorf("nemesis: \"all\" stands alone, it cannot be combined with other kinds in %q", s)
		case !k.Valid():
			return nil, fmt.Errorf("nemesis: unknown fault kind %q (valid: none, all, %s)", string(k), validList())
		case seen[k]:
			return nil, fmt.Errorf("nemesis: fault kind %q listed twice in %q", string(k), s)
		}
		seen[k] = true
		out = append(out, k)
	}
	return out, nil
}

// FormatKinds is ParseKinds's inverse: the kinds joined by commas, or
// "none" for no kinds.
func FormatKinds(kinds []Kind) string {
	if len(kinds) == 0 {
		return "none"
	}
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}
