package nemesis

import (
	"fmt"
	"slices"
	"strings"
)

// Backend names a world a chaos test runs in. Both take the same --nemesis
// values; each declares here which kinds it cannot inject and why, and
// which need more than its default cluster, so that a refusal is the same
// sentence in `chaos run`, `chaos sim` and the README's fault table.
type Backend string

// The backends.
const (
	// Docker is `chaos run`: kvnode processes in containers, faults in
	// their network namespaces, cgroups and (lazyfs) data directories.
	Docker Backend = "docker"
	// Sim is `chaos sim`: the deterministic simulator, whose network,
	// disks and clocks are its own.
	Sim Backend = "sim"
)

// Backends lists the backends.
func Backends() []Backend { return []Backend{Docker, Sim} }

// cannot says, per backend, the kinds it cannot inject and why.
var cannot = map[Backend]map[Kind]string{
	Docker: {
		Clock:            "a container shares the host kernel's clock, so its rate cannot change; the node applies offsets only (clock-bump, clock-strobe)",
		Dup:              "nftables cannot duplicate packets and this kernel lacks the netem qdisc",
		Delay:            "per-message latency with a long tail needs the netem qdisc, which this kernel lacks (latency needs it too and says so)",
		PartitionSwizzle: "the Docker nemesis applies one grudge per fault and does not drive a timed sequence of them",
		CrashMoment:      "finding the instant after a promise, a pick or a commit needs a hook inside the node's step loop, which only the simulator has",
		Disk:             "lazyfs loses unsynced writes but cannot make an fsync fail",
	},
	Sim: {},
}

// setup says, per backend, the kinds it can inject only on a cluster or
// host prepared for them; "all" leaves these out.
var setup = map[Backend]map[Kind]string{
	Docker: {
		LoseUnsynced: "root and /dev/fuse for the lazyfs data directories",
		Latency:      "the kernel's netem qdisc",
		Reconfig:     "a sharded cluster (--groups of at least 2)",
		Membership:   "spare nodes (--spares, 2 by default with membership), the paxos or vr replication and one replica group (--groups 0)",
	},
	Sim: {
		Reconfig:   "a sharded cluster: a transactional workload (list-append, rw-register, bank)",
		Membership: "spare nodes (two start with it) and one replica group: the register workload",
	},
}

// Supported returns nil when b can inject k, else an error saying why not.
func (b Backend) Supported(k Kind) error {
	m, ok := cannot[b]
	if !ok {
		return fmt.Errorf("nemesis: unknown backend %q", string(b))
	}
	if !k.Valid() {
		return fmt.Errorf("nemesis: unknown fault kind %q (valid: %s)", string(k), validList())
	}
	if why := m[k]; why != "" {
		return fmt.Errorf("nemesis: %s cannot be injected by %s: %s", k, b.command(), why)
	}
	return nil
}

// Needs says what k needs on b beyond a default cluster ("" for nothing).
func (b Backend) Needs(k Kind) string { return setup[b][k] }

// All returns what "all" stands for on b: every kind b supports except
// those that need more than a default cluster (Needs), in Kinds order.
func (b Backend) All() []Kind {
	var out []Kind
	for _, k := range allKinds {
		if b.Supported(k) == nil && b.Needs(k) == "" {
			out = append(out, k)
		}
	}
	return out
}

// command is the CLI command that runs on b, for error messages.
func (b Backend) command() string {
	if b == Sim {
		return "chaos sim"
	}
	return "chaos run"
}

// ParseFor parses a --nemesis value for backend b: ParseKinds's syntax,
// plus "all" for b.All(), which may be combined with kinds that need
// setup ("all,reconfig"). A kind b cannot inject is an error naming it and
// the reason, never dropped.
func ParseFor(s string, b Backend) ([]Kind, error) {
	if _, ok := cannot[b]; !ok {
		return nil, fmt.Errorf("nemesis: unknown backend %q", string(b))
	}
	var all bool
	var rest []string
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "all" {
			if all {
				return nil, fmt.Errorf("nemesis: \"all\" listed twice in %q", s)
			}
			all = true
			continue
		}
		rest = append(rest, part)
	}
	var kinds []Kind
	if all {
		kinds = b.All()
		if len(rest) == 0 {
			return kinds, nil
		}
	}
	more, err := ParseKinds(strings.Join(rest, ","))
	if err != nil {
		return nil, err
	}
	if all && len(more) == 0 {
		return nil, fmt.Errorf("nemesis: \"none\" cannot be combined with other kinds in %q", s)
	}
	for _, k := range more {
		if err := b.Supported(k); err != nil {
			return nil, err
		}
		if slices.Contains(kinds, k) {
			return nil, fmt.Errorf("nemesis: %s is part of \"all\" already in %q", k, s)
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}

// FormatFor is ParseFor's inverse for b: kinds that begin with all of
// b.All() are written "all" followed by the rest ("all,reconfig"), so that
// a replay command stays as short as the flag that made it; other lists
// are FormatKinds's.
func FormatFor(kinds []Kind, b Backend) string {
	all := b.All()
	if len(all) == 0 || len(kinds) < len(all) || !slices.Equal(kinds[:len(all)], all) {
		return FormatKinds(kinds)
	}
	if rest := kinds[len(all):]; len(rest) > 0 {
		return "all," + FormatKinds(rest)
	}
	return "all"
}
