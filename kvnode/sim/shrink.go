package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/nemesis"
)

// Failure names the ways a run failed, most telling first: a safety
// violation the oracles caught, the checker's anomaly types, replicas that
// diverged, final reads that never completed, a verdict the checker could
// not reach. A valid run has none.
func (r *Result) Failure() []string {
	var out []string
	add := func(k string) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, p := range r.Problems {
		if strings.Contains(p, "safety violation") {
			add("safety-violation")
		}
	}
	switch {
	case len(r.Check.AnomalyTypes) > 0:
		for _, a := range slices.Sorted(slices.Values(r.Check.AnomalyTypes)) {
			add(a)
		}
	case r.Check.Valid == checker.Invalid && r.Check.Checker != "":
		add(r.Check.Checker)
	}
	for _, p := range r.Problems {
		switch {
		case strings.Contains(p, "safety violation"):
		case strings.Contains(p, "replicas diverged"):
			add("replicas-diverged")
		case strings.Contains(p, "final read"):
			add("final-read-incomplete")
		default:
			add("problem")
		}
	}
	if len(out) == 0 && r.Valid != checker.Valid {
		add(r.Valid.String())
	}
	return out
}

// ShrinkOptions bound a shrink.
type ShrinkOptions struct {
	// MaxRuns bounds the simulations the search runs (200).
	MaxRuns int
	// Tried, when set, sees every candidate run and whether it was kept.
	Tried func(cfg Config, res *Result, kept bool)
}

// Shrunk is what Shrink found.
type Shrunk struct {
	// Failure is the kind of failure (the first of Result.Failure) that
	// the original run showed and every kept candidate shows too.
	Failure string
	// Original and Config are the run shrunk and the smallest failing
	// run found, with every default filled in; First and Result are their
	// results.
	Original, Config Config
	First, Result    *Result
	// Runs counts the simulations the search ran.
	Runs int
}

// Shrink searches for a smaller run than cfg that fails the same way:
// fewer operations, fewer faults (fewer fault kinds, shorter faults),
// fewer clients, keys and replicas. The seed stays. The search is greedy
// and deterministic: it tries each dimension's candidates smallest first,
// keeps the first that still fails with the original's kind of failure,
// and repeats until a whole pass keeps nothing or MaxRuns is spent.
//
// Failing the same way means showing the original's most telling failure
// kind (Shrunk.Failure): a schedule that shrinks a lost write into a
// stalled final read is a different bug.
func Shrink(cfg Config, opts ShrinkOptions) (*Shrunk, error) {
	if opts.MaxRuns == 0 {
		opts.MaxRuns = 200
	}
	cfg.defaults()
	first, err := Run(cfg)
	if err != nil {
		return nil, fmt.Errorf("shrink seed %d: %w", cfg.Seed, err)
	}
	kinds := first.Failure()
	if len(kinds) == 0 {
		return nil, fmt.Errorf("shrink seed %d: the run is valid, there is nothing to shrink", cfg.Seed)
	}
	s := &Shrunk{Failure: kinds[0], Original: cfg, Config: cfg, First: first, Result: first, Runs: 1}
	for improved := true; improved && s.Runs < opts.MaxRuns; {
		improved = false
		for _, dim := range shrinkDims {
			for _, cand := range dim(s.Config, s.Result) {
				if s.Runs >= opts.MaxRuns {
					break
				}
				cand.defaults()
				res, err := Run(cand)
				s.Runs++
				kept := err == nil && slices.Contains(res.Failure(), s.Failure)
				if opts.Tried != nil {
					opts.Tried(cand, res, kept)
				}
				if kept {
					s.Config, s.Result, improved = cand, res, true
					break
				}
			}
		}
	}
	return s, nil
}

// shrinkDims list, per dimension, smaller variants of a failing run,
// smallest first.
var shrinkDims = []func(Config, *Result) []Config{
	shrinkOps, shrinkFaults, shrinkKinds, shrinkClients, shrinkFaultLength, shrinkKeys, shrinkReplicas,
}

// smaller returns the distinct values of n/d for d in divs, then n*3/4,
// that are at least lo and below n, in that order.
func smaller(n, lo int, divs ...int) []int {
	vals := make([]int, 0, len(divs)+1)
	for _, d := range divs {
		vals = append(vals, n/d)
	}
	var out []int
	for _, v := range append(vals, n*3/4) {
		if v >= lo && v < n && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func shrinkOps(c Config, _ *Result) []Config {
	var out []Config
	for _, n := range smaller(c.Ops, 1, 32, 16, 8, 4, 2) {
		x := c
		x.Ops = n
		out = append(out, x)
	}
	return out
}

func faulty(c Config) bool { return len(c.Nemesis) > 0 }

// shrinkFaults tries no faults at all, then fewer than the run opened.
func shrinkFaults(c Config, r *Result) []Config {
	if !faulty(c) {
		return nil
	}
	none := c
	none.Nemesis, none.Schedule.MaxFaults, none.Schedule.FaultCap = nil, 0, 0
	out := []Config{none}
	for _, n := range append([]int{1}, smaller(r.Faults, 2, 4, 2)...) {
		if n < r.Faults {
			x := c
			x.Schedule.MaxFaults = n
			out = append(out, x)
		}
	}
	return out
}

// shrinkKinds tries each fault kind alone, then the list without each.
func shrinkKinds(c Config, _ *Result) []Config {
	if len(c.Nemesis) < 2 {
		return nil
	}
	var out []Config
	for _, k := range c.Nemesis {
		x := c
		x.Nemesis = []nemesis.Kind{k}
		out = append(out, x)
	}
	if len(c.Nemesis) > 2 {
		for i := range c.Nemesis {
			x := c
			x.Nemesis = slices.Delete(slices.Clone(c.Nemesis), i, i+1)
			out = append(out, x)
		}
	}
	return out
}

func shrinkClients(c Config, _ *Result) []Config {
	var out []Config
	for _, n := range append([]int{1, 2}, smaller(c.Clients, 3, 4, 2)...) {
		if n < c.Clients {
			x := c
			x.Clients = n
			out = append(out, x)
		}
	}
	return out
}

// shrinkFaultLength cuts every fault shorter.
func shrinkFaultLength(c Config, r *Result) []Config {
	if !faulty(c) || r.Faults == 0 {
		return nil
	}
	cur := c.Schedule.FaultCap
	if cur == 0 {
		cur = 3 * c.Schedule.Interval / 2 // the longest a hold is drawn
	}
	var out []Config
	for _, d := range []time.Duration{cur / 16, cur / 8, cur / 4, cur / 2} {
		if d >= 10*time.Millisecond {
			x := c
			x.Schedule.FaultCap = d.Round(time.Millisecond)
			out = append(out, x)
		}
	}
	return out
}

func shrinkKeys(c Config, _ *Result) []Config {
	var out []Config
	for _, n := range append([]int{1}, smaller(c.Keys, 2, 2)...) {
		if n < c.Keys {
			x := c
			x.Keys = n
			out = append(out, x)
		}
	}
	return out
}

// shrinkReplicas tries three replicas, the smallest group with a
// majority that survives a fault.
func shrinkReplicas(c Config, _ *Result) []Config {
	if c.Replicas <= 3 {
		return nil
	}
	x := c
	x.Replicas = 3
	return []Config{x}
}
