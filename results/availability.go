package results

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// answerErrors are the errors of definite fails that are an operation's
// normal answer, not a refusal: the system was up and said no (a cas
// whose expected value did not match, a transaction whose check did not
// hold, such as a transfer that would overdraw). They count as answered
// in the availability, apart from the other fails.
var answerErrors = []string{"mismatch", "check failed", "insufficient funds"}

// ExpectedFail reports whether op, a completion, is a definite fail that
// is the operation's normal answer rather than unavailability.
func ExpectedFail(op *history.Op) bool {
	if op.Type != history.Fail {
		return false
	}
	e := strings.ToLower(op.Error)
	for _, a := range answerErrors {
		if strings.Contains(e, a) {
			return true
		}
	}
	return false
}

// OpCounts counts client operations by outcome. Invoked is the sum of the
// others: an operation never completed counts as info.
type OpCounts struct {
	Invoked      int `json:"invoked"`
	OK           int `json:"ok"`
	ExpectedFail int `json:"expected-fail"`
	Fail         int `json:"fail"`
	Info         int `json:"info"`
}

func (c *OpCounts) add(k *call) {
	c.Invoked++
	switch {
	case k.typ == history.Ok:
		c.OK++
	case k.typ == history.Fail && k.expected:
		c.ExpectedFail++
	case k.typ == history.Fail:
		c.Fail++
	default:
		c.Info++
	}
}

// Answered is the share of invoked operations the system answered with
// an ok or an expected fail; -1 when nothing was invoked.
func (c OpCounts) Answered() float64 {
	if c.Invoked == 0 {
		return -1
	}
	return float64(c.OK+c.ExpectedFail) / float64(c.Invoked)
}

// Stall is the longest stretch of time with no ok completion.
type Stall struct {
	FromNS  int64   `json:"from-ns"`
	ToNS    int64   `json:"to-ns"`
	Seconds float64 `json:"seconds"`
}

// SecondAvailability is one second of the workload, by the invocations
// made in it.
type SecondAvailability struct {
	Second int64 `json:"second"` // seconds since the test started
	OpCounts
}

// WindowAvailability is the availability during one fault window.
type WindowAvailability struct {
	Fault  string `json:"fault"`
	Value  string `json:"value,omitempty"`
	FromNS int64  `json:"from-ns"`
	ToNS   int64  `json:"to-ns"`
	Open   bool   `json:"open,omitempty"`
	OpCounts
	LongestNoOK Stall `json:"longest-no-ok"`
}

// GroupAvailability is the availability of the operations one node or
// shard group served, as the history's node field names it.
type GroupAvailability struct {
	Group string `json:"group"`
	OpCounts
	LongestNoOK Stall `json:"longest-no-ok"`
}

// Availability is what a history says about how available the system
// was: per second, per fault window, per serving group, and overall, for
// the workload's operations; final reads are counted apart.
type Availability struct {
	// Definition says what the numbers mean, for a reader of
	// results.json.
	Definition string `json:"definition"`
	OpCounts
	// Answered is (ok + expected-fail) / invoked, -1 with no ops.
	Answered    float64              `json:"answered"`
	LongestNoOK Stall                `json:"longest-no-ok"`
	PerSecond   []SecondAvailability `json:"per-second"`
	Windows     []WindowAvailability `json:"windows,omitempty"`
	// DuringFaults and OutsideFaults split the operations by whether
	// they were invoked inside any fault window.
	DuringFaults  OpCounts            `json:"during-faults"`
	OutsideFaults OpCounts            `json:"outside-faults"`
	Groups        []GroupAvailability `json:"groups,omitempty"`
	// FinalReads are the reads after the faults were healed; they are
	// not part of the numbers above.
	FinalReads OpCounts `json:"final-reads"`
}

const availabilityDefinition = "answered = (ok + expected-fail) / invoked, by the second an op was invoked; " +
	"expected-fail is a definite fail that is the op's normal answer (a cas mismatch, a failed check); " +
	"an op never completed counts as info; longest-no-ok is the longest stretch with no ok completion; " +
	"final reads are counted apart"

// AnalyzeAvailability computes a history's availability. Client
// operations invoked after workloadEndNS are final reads; a workloadEndNS
// of zero or less means the history has none marked.
func AnalyzeAvailability(ops []history.Op, workloadEndNS int64) Availability {
	a := analyze(ops)
	a.markFinal(workloadEndNS)
	return a.availability()
}

// markFinal marks the calls invoked after end as final reads.
func (a *analysis) markFinal(end int64) {
	if end <= 0 {
		return
	}
	a.workloadEnd = end
	for i := range a.calls {
		if a.calls[i].start > end {
			a.calls[i].final = true
		}
	}
}

// workloadRange is the workload's extent: from its first invocation to
// the end of the workload phase when known, else to its last completion
// or invocation.
func (a *analysis) workloadRange() (from, to int64) {
	from, to = -1, 0
	for i := range a.calls {
		c := &a.calls[i]
		if c.final {
			continue
		}
		if from < 0 {
			from = c.start
		}
		to = max(to, c.start, c.end)
	}
	if from < 0 {
		return 0, 0
	}
	if a.workloadEnd > 0 {
		to = max(to, a.workloadEnd)
	}
	return from, to
}

func (a *analysis) availability() Availability {
	av := Availability{Definition: availabilityDefinition}
	from, to := a.workloadRange()
	var oks []int64 // ok completion times of workload calls, sorted below
	groups := map[string]*GroupAvailability{}
	groupOKs := map[string][]int64{}
	var union [][2]int64
	for _, w := range a.windows { // sorted by start
		if !w.isFault() {
			continue
		}
		if k := len(union) - 1; k >= 0 && w.start <= union[k][1] {
			union[k][1] = max(union[k][1], w.end)
			continue
		}
		union = append(union, [2]int64{w.start, w.end})
	}
	inFault := func(t int64) bool {
		i := sort.Search(len(union), func(i int) bool { return union[i][1] >= t })
		return i < len(union) && union[i][0] <= t
	}
	first, last := from/1e9, to/1e9
	if to > from {
		av.PerSecond = make([]SecondAvailability, last-first+1)
		for i := range av.PerSecond {
			av.PerSecond[i].Second = first + int64(i)
		}
	}
	for i := range a.calls {
		c := &a.calls[i]
		if c.final {
			av.FinalReads.add(c)
			continue
		}
		av.OpCounts.add(c)
		if s := c.start/1e9 - first; s >= 0 && s < int64(len(av.PerSecond)) {
			av.PerSecond[s].add(c)
		}
		if inFault(c.start) {
			av.DuringFaults.add(c)
		} else {
			av.OutsideFaults.add(c)
		}
		if c.typ == history.Ok {
			oks = append(oks, c.end)
		}
		if c.group != "" {
			g := groups[c.group]
			if g == nil {
				g = &GroupAvailability{Group: c.group}
				groups[c.group] = g
			}
			g.add(c)
			if c.typ == history.Ok {
				groupOKs[c.group] = append(groupOKs[c.group], c.end)
			}
		}
	}
	slices.Sort(oks)
	av.Answered = av.OpCounts.Answered()
	av.LongestNoOK = longestNoOK(oks, from, to)
	for _, w := range a.windows {
		if !w.isFault() {
			continue
		}
		wa := WindowAvailability{Fault: w.fault, Value: w.value, FromNS: w.start, ToNS: w.end, Open: w.open,
			LongestNoOK: longestNoOK(oks, max(w.start, from), min(w.end, to))}
		lo := sort.Search(len(a.calls), func(i int) bool { return a.calls[i].start >= w.start })
		for i := lo; i < len(a.calls) && a.calls[i].start <= w.end; i++ {
			if !a.calls[i].final {
				wa.add(&a.calls[i])
			}
		}
		av.Windows = append(av.Windows, wa)
	}
	for name, g := range groups {
		ts := groupOKs[name]
		slices.Sort(ts)
		g.LongestNoOK = longestNoOK(ts, from, to)
		av.Groups = append(av.Groups, *g)
	}
	sort.Slice(av.Groups, func(i, j int) bool { return av.Groups[i].Group < av.Groups[j].Group })
	return av
}

// longestNoOK returns the longest stretch within [from, to] holding none
// of the sorted times oks.
func longestNoOK(oks []int64, from, to int64) Stall {
	if to < from {
		return Stall{FromNS: from, ToNS: from}
	}
	best := Stall{FromNS: from, ToNS: from}
	prev := from
	consider := func(t int64) {
		if t-prev > best.ToNS-best.FromNS {
			best = Stall{FromNS: prev, ToNS: t}
		}
	}
	lo := sort.Search(len(oks), func(i int) bool { return oks[i] >= from })
	for _, t := range oks[lo:] {
		if t > to {
			break
		}
		consider(t)
		prev = t
	}
	consider(to)
	best.Seconds = math.Round(float64(best.ToNS-best.FromNS)/1e6) / 1e3
	return best
}

// RateWarning returns a warning when a run that asked for target
// invocations per second achieved less than rateTolerance of it, and ""
// otherwise (or when no rate was asked for).
func RateWarning(target float64, invoked int64, seconds float64) string {
	if target <= 0 || seconds <= 0 {
		return ""
	}
	got := float64(invoked) / seconds
	if got >= rateTolerance*target {
		return ""
	}
	return fmt.Sprintf("the achieved rate stayed below --rate: %.1f invocations/s of %g asked for (%d ops in %.1fs); "+
		"the workers could not keep up (raise --concurrency or lower --rate), so the run tested a lighter load than requested",
		got, target, invoked, seconds)
}

// rateTolerance is the share of --rate below which a run is said to have
// missed it: pacing loses at most a slot per worker at the phase's end.
const rateTolerance = 0.9
