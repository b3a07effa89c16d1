// Package elle checks transactional histories for isolation anomalies the
// way Elle does (Kingsbury and Alvaro, "Elle: Inferring Isolation Anomalies
// from Experimental Observations", VLDB 2020): it infers write-write,
// write-read and read-write dependencies between transactions from the
// values they read, adds process and realtime order when the requested
// consistency models need them, finds cycles in the resulting graph, and
// names each cycle by Adya's taxonomy (G0, G1c, G-single, G-nonadjacent,
// G2). Non-cyclic anomalies (aborted and intermediate reads, internal
// inconsistency, lost updates, ...) are found along the way.
//
// Two workloads are understood. In list-append, transactions append unique
// elements to lists and read whole lists, so every read reveals the order
// of all earlier appends. In rw-register, transactions write and read
// single values; version orders come from the initial nil state and,
// optionally, from process order, realtime order and writes-follow-reads
// within a transaction.
//
// The checker works on dense integer ids and flat slices: edges live in a
// compressed sparse row graph, strongly connected components come from an
// iterative Tarjan, realtime order runs through a chain of barrier nodes
// (at most three edges per transaction, whatever the concurrency), and
// cycles are searched only inside non-trivial components, under a time
// budget.
//
// Every anomaly instance is an *Anomaly: it carries its transactions, and
// for cycles the labelled edges (ww, wr, rw, process, realtime) with the
// evidence for each and a plain-English explanation, ready for a report
// to draw.
//
// Which anomalies a model forbids, and which models an anomaly rules out,
// follow Elle's own tables (see models.go).
//
// Usage:
//
//	res, err := elle.Check("list-append", ops, elle.Options{
//		ConsistencyModels: []string{"serializable"},
//	})
//
// or, for a history too large to hold decoded, op by op:
//
//	b := elle.NewBuilder("list-append")
//	ops, err := history.ReadFileFunc(path, "", b.Take)
//	res, err := b.Check(elle.Options{})
package elle

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// Options tunes a check. The zero value checks strict serializability.
type Options struct {
	// ConsistencyModels are the models the history must satisfy; the
	// default is ["strict-serializable"]. Elle's names are accepted
	// ("strong-serializable", "serializable", "snapshot-isolation",
	// "repeatable-read", "read-committed", "strong-session-serializable",
	// ...).
	ConsistencyModels []string
	// Anomalies are extra anomaly types that make the history invalid even
	// when the models allow them ("G0", "G1", "G2", "G1c-process", ...).
	// The default is ["G0"].
	Anomalies []string
	// CycleSearchTimeout bounds the cycle search; past it the search stops
	// and, unless an anomaly was already found, the verdict is unknown.
	// Zero means one second, as in elle-cli.
	CycleSearchTimeout time.Duration
	// Directory is where artifacts may be written; "" writes nothing.
	Directory string

	// SequentialKeys (rw-register) assumes each key is sequentially
	// consistent: a process never sees a key's versions go backwards.
	SequentialKeys bool
	// LinearizableKeys (rw-register) assumes each key is linearizable:
	// realtime order between operations on a key orders its versions.
	LinearizableKeys bool
	// WFRKeys (rw-register) assumes writes follow reads within a
	// transaction: a value a transaction writes after reading a key is a
	// later version than the one it read.
	WFRKeys bool
}

// cycleTypes are the cycle anomalies searched for; each also has a
// "-process" and a "-realtime" variant. As in Elle, realtime order joins
// the graph when some realtime variant is reportable, and process order
// (which realtime order subsumes) otherwise when some process variant is.
var cycleTypes = []string{"G0", "G1c", "G-single-item", "G-nonadjacent-item", "G2-item"}

// maxInstances caps how many instances of one anomaly type a result
// carries; Stats has the full count.
const maxInstances = 64

// explainer finds the evidence for a data-dependency edge.
type explainer interface {
	explain(k edgeKind, a, b int32, na, nb string) (Step, bool)
}

// run is the state of one check.
type run struct {
	p         *parsed
	opts      Options
	anomalies map[string][]*Anomaly
	counts    map[string]int
	ex        explainer
	g         *graph
	extra     edgeKind // kProcess, kRealtime or 0
}

func (r *run) add(a *Anomaly) {
	r.counts[a.Type]++
	if len(r.anomalies[a.Type]) < maxInstances {
		r.anomalies[a.Type] = append(r.anomalies[a.Type], a)
	}
}

// isNode reports whether a transaction belongs in the dependency graph:
// committed ones and indeterminate ones (which may have committed).
func (p *parsed) isNode(t int32) bool { return p.txns[t].st != stFail }

// Check analyses a history of the given workload ("list-append" or
// "rw-register") and returns Elle's verdict: valid true when no anomaly the
// requested models forbid was found, false when one was, unknown when the
// graph was empty or the cycle search ran out of time.
func Check(workload string, ops []history.Op, opts Options) (checker.Result, error) {
	b := NewBuilder(workload)
	b.p.txns = make([]txn, 0, len(ops)/2+1)
	b.p.events = make([]int32, 0, len(ops))
	for i := range ops {
		op := ops[i] // Take clears the value it takes; the caller's op keeps it
		_ = b.Take(&op)
	}
	return b.Check(opts)
}

// Check analyses the ops taken so far, as the package's Check does.
func (b *Builder) Check(opts Options) (checker.Result, error) {
	start := time.Now()
	workload := b.workload
	res := checker.Result{Checker: "elle-" + workload}
	if workload != "list-append" && workload != "rw-register" {
		return res, fmt.Errorf("elle: unknown workload %q (want list-append or rw-register)", workload)
	}
	models := opts.ConsistencyModels
	if len(models) == 0 {
		models = []string{"strict-serializable"}
	}
	var canon []string
	for _, m := range models {
		c, err := canonicalModel(m)
		if err != nil {
			return res, fmt.Errorf("elle: %w", err)
		}
		canon = append(canon, c)
	}
	extraNames := opts.Anomalies
	if extraNames == nil {
		extraNames = []string{"G0"}
	}
	extras, err := expandAnomalies(extraNames)
	if err != nil {
		return res, fmt.Errorf("elle: %w", err)
	}
	forbidden := prohibited(canon)
	reportable := func(typ string) bool {
		return unknownTypes[typ] || extras[typ] || forbidden[typ]
	}
	if opts.CycleSearchTimeout <= 0 {
		opts.CycleSearchTimeout = time.Second
	}

	p, err := b.finish()
	if err != nil {
		return res, fmt.Errorf("elle: %w", err)
	}
	r := &run{p: p, opts: opts, anomalies: map[string][]*Anomaly{}, counts: map[string]int{}}
	switch {
	case slices.ContainsFunc(cycleTypes, func(t string) bool { return reportable(t + "-realtime") }):
		r.extra = kRealtime
	case slices.ContainsFunc(cycleTypes, func(t string) bool { return reportable(t + "-process") }):
		r.extra = kProcess
	}

	// Process and realtime order depend only on the event sequence, so
	// they are built on the other core while the data dependencies are
	// inferred.
	order := newEdges(len(p.txns) * 3)
	orderDone := make(chan struct{})
	barriers := 0
	go func() {
		defer close(orderDone)
		switch r.extra {
		case kRealtime:
			barriers = r.realtimeEdges(&order)
		case kProcess:
			r.processEdges(&order)
		}
	}()
	deps := newEdges(p.nmops * 2)
	switch workload {
	case "list-append":
		la := &listAppend{r: r}
		la.scan()
		la.infer(&deps)
		r.ex = la
	default:
		rr := &rwRegister{r: r}
		rr.scan()
		rr.versionGraph()
		rr.infer(&deps)
		r.ex = rr
	}
	<-orderDone
	r.g = freeze(len(p.txns)+barriers, &deps, &order)
	inferred := time.Now()

	bud := &budget{deadline: time.Now().Add(opts.CycleSearchTimeout)}
	cs := r.searchCycles(bud, reportable("strong-snapshot-isolation-cycle-exists") || reportable("strong-session-snapshot-isolation-cycle-exists"))
	if len(r.g.to) == 0 {
		r.add(&Anomaly{Type: "empty-transaction-graph",
			Explanation: "No transaction depends on any other, so there is nothing to order and no cycle to find."})
	}
	if bud.out {
		r.add(&Anomaly{Type: "cycle-search-timeout",
			Explanation: fmt.Sprintf("The cycle search stopped after %v; cycles may remain unreported.", opts.CycleSearchTimeout)})
	}

	// Assemble the result.
	var types, definite []string
	for typ := range r.anomalies {
		if !reportable(typ) {
			continue
		}
		types = append(types, typ)
		if !unknownTypes[typ] {
			definite = append(definite, typ)
		}
	}
	sort.Strings(types)
	res.AnomalyTypes = types
	if res.AnomalyTypes == nil {
		res.AnomalyTypes = []string{}
	}
	res.Anomalies = map[string][]any{}
	for _, typ := range types {
		for _, a := range r.anomalies[typ] {
			res.Anomalies[typ] = append(res.Anomalies[typ], a)
		}
	}
	res.Not, res.AlsoNot = violatedModels(definite)
	if res.Not == nil {
		res.Not = []string{}
	}
	switch {
	case len(definite) > 0:
		res.Valid = checker.Invalid
	case len(types) > 0:
		res.Valid = checker.Unknown
	default:
		res.Valid = checker.Valid
	}
	var ok, info, fail int
	for i := range p.txns {
		switch p.txns[i].st {
		case stOK:
			ok++
		case stInfo:
			info++
		default:
			fail++
		}
	}
	counts := map[string]int{}
	for _, typ := range types {
		counts[typ] = r.counts[typ]
	}
	res.Stats = map[string]any{
		"txns": len(p.txns), "ok": ok, "info": info, "fail": fail,
		"keys": len(p.keys.vals), "edges": len(r.g.to),
		"sccs": cs.sccs, "largest-scc": cs.largest,
		"anomaly-counts":  counts,
		"infer-ms":        inferred.Sub(start).Milliseconds(),
		"cycle-search-ms": time.Since(inferred).Milliseconds(),
	}
	res.Summary = summary(res, len(p.txns), counts)
	if opts.Directory != "" {
		files, err := writeArtifacts(opts.Directory, res.Anomalies)
		if err != nil {
			return res, err
		}
		slices.Sort(files)
		res.Files = files
	}
	return res, nil
}

func summary(res checker.Result, n int, counts map[string]int) string {
	switch res.Valid {
	case checker.Valid:
		return fmt.Sprintf("valid: %d transactions, no anomalies", n)
	case checker.Unknown:
		return fmt.Sprintf("unknown: %d transactions; %s", n, strings.Join(res.AnomalyTypes, ", "))
	}
	var parts []string
	for _, t := range res.AnomalyTypes {
		parts = append(parts, fmt.Sprintf("%s (%d)", t, counts[t]))
	}
	return fmt.Sprintf("invalid: %d transactions; %s; not %s", n, strings.Join(parts, ", "), strings.Join(res.Not, ", "))
}

// processEdges orders each process's transactions: a committed transaction
// precedes the next one its process invoked.
func (r *run) processEdges(out *edges) {
	p := r.p
	last := map[int64]int32{}
	for ti := range p.txns {
		t := int32(ti)
		if !p.isNode(t) {
			continue
		}
		proc := p.txns[t].proc
		if prev, ok := last[proc]; ok {
			out.add(prev, t, kProcess)
		}
		if p.txns[t].st == stOK {
			last[proc] = t
		}
	}
}

// realtimeEdges orders transactions by realtime: T1 < T2 when T1
// committed before T2 was invoked. Linking every such pair would be
// quadratic, and linking each invocation to the frontier of latest
// completions still costs the concurrency per transaction. Instead a chain
// of barrier nodes (ids from len(p.txns) up, returned as their count)
// stands for "everything completed so far": each completion points to the
// next barrier, each barrier to the one after, and each invocation hangs
// off the latest barrier. Reachability is exactly the realtime order and
// the edge count is at most three per transaction; cycle reports fold
// barrier hops back into single realtime steps.
func (r *run) realtimeEdges(out *edges) int {
	p := r.p
	base := int32(len(p.txns))
	cur, nb := int32(-1), int32(0)
	var fresh []int32 // completions since the current barrier
	for _, ev := range p.events {
		t := ev >> 1
		if !p.isNode(t) {
			continue
		}
		if ev&1 != 0 {
			fresh = append(fresh, t)
			continue
		}
		if len(fresh) > 0 {
			b := base + nb
			nb++
			if cur >= 0 {
				out.add(cur, b, kRealtime)
			}
			for _, f := range fresh {
				out.add(f, b, kRealtime)
			}
			fresh = fresh[:0]
			cur = b
		}
		if cur >= 0 {
			out.add(cur, t, kRealtime)
		}
	}
	return int(nb)
}
