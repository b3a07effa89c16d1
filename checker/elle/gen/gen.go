// Package gen generates synthetic list-append histories for testing and
// benchmarking transactional checkers: a strict-serializable in-memory
// store driven by concurrent simulated clients, optionally with one
// injected anomaly.
package gen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// Config shapes a generated history.
type Config struct {
	// Txns is the number of transactions (each an invocation and a
	// completion).
	Txns int
	// Processes is the number of concurrent client processes.
	Processes int
	// Keys is the number of keys in use at any moment; a key that has
	// received MaxWritesPerKey appends is retired and replaced by a fresh
	// one, as Jepsen's list-append generator does, which keeps lists short.
	Keys int
	// MaxWritesPerKey defaults to 32.
	MaxWritesPerKey int
	// MaxMops is the most micro-operations per transaction (default 4).
	MaxMops int
	// FailRate and InfoRate are the fractions of transactions that abort
	// (no effect) or end indeterminate (applied or not, at random).
	FailRate, InfoRate float64
	// StaleReads is the fraction of reads that return a random prefix of
	// the list (for registers: the initial nil) instead of the current
	// state, as a store that serves stale snapshots would: the history then
	// has anti-dependency cycles everywhere. Zero keeps the history strict
	// serializable.
	StaleReads float64
	// Seed makes the history reproducible.
	Seed uint64
	// Inject adds one anomaly of a kind Injectable lists, on fresh keys
	// and by fresh processes, or "" for none.
	Inject string
}

// Injectable lists the kinds Inject accepts. Some anomalies cannot occur
// alone: reading an intermediate state (G1b) also closes a G-single cycle
// with the writer, and a non-repeatable read is both internal and
// G-single. The "-process" kinds need process order (and, since process
// order implies realtime order, realtime order) to form their cycle; the
// "-realtime" kinds need realtime order between different processes.
var Injectable = []string{
	"G0", "G1a", "G1b", "G1c", "G-single", "G2", "lost-update", "internal",
	"nonrepeatable-read", "incompatible-order", "dirty-update", "future-read",
	"G0-process", "G1c-process", "G-single-process", "G2-process",
	"G0-realtime", "G1c-realtime", "G-single-realtime", "G2-realtime",
}

type pending struct {
	proc int64
	mops [][]any // ["append", k, v] or ["r", k, nil]
}

// ListAppend generates a history. Without injection it is strict
// serializable: every committed transaction takes effect atomically at a
// moment between its invocation and its completion.
func ListAppend(cfg Config) ([]history.Op, error) {
	return generate(cfg, false)
}

// RWRegister generates an rw-register history the same way: transactions
// write unique values per key and read single values (nil before the
// first write). Without injection it is strict serializable, so every
// optional version-order inference (sequential, linearizable,
// writes-follow-reads) holds in it. Inject accepts the kinds
// InjectableRegister lists.
func RWRegister(cfg Config) ([]history.Op, error) {
	return generate(cfg, true)
}

// InjectableRegister lists the kinds RWRegister can inject. Without a
// version order beyond the initial state, a lost update is also a G2-item
// cycle, and a non-repeatable read is internal and G-single.
var InjectableRegister = []string{
	"G1a", "G1b", "G1c", "G-single", "lost-update", "internal", "nonrepeatable-read",
	"G1c-process", "G-single-process", "G1c-realtime", "G-single-realtime",
}

func generate(cfg Config, register bool) ([]history.Op, error) {
	if cfg.Txns < 0 || cfg.Processes <= 0 || cfg.Keys <= 0 {
		return nil, fmt.Errorf("gen: need Txns >= 0, Processes > 0 and Keys > 0, got %d, %d, %d", cfg.Txns, cfg.Processes, cfg.Keys)
	}
	if cfg.MaxWritesPerKey <= 0 {
		cfg.MaxWritesPerKey = 32
	}
	if cfg.MaxMops <= 0 {
		cfg.MaxMops = 4
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	ops := make([]history.Op, 0, 2*cfg.Txns+16)
	lists := map[int64][]int64{}
	writes := map[int64]int{}
	active := make([]int64, cfg.Keys)
	nextKey := int64(0)
	for i := range active {
		active[i] = nextKey
		nextKey++
	}
	slots := make([]*pending, cfg.Processes)
	procs := make([]int64, cfg.Processes)
	for i := range procs {
		procs[i] = int64(i)
	}
	injectAt := -1
	if cfg.Inject != "" {
		kinds := Injectable
		if register {
			kinds = InjectableRegister
		}
		if !slices.Contains(kinds, cfg.Inject) {
			return nil, fmt.Errorf("gen: cannot inject %q (want one of %v)", cfg.Inject, kinds)
		}
		injectAt = rng.IntN(cfg.Txns + 1)
	}
	now := int64(0)
	emit := func(typ history.Type, proc int64, value any) {
		now += 1000
		ops = append(ops, history.Op{Index: int64(len(ops)), Time: now, Type: typ, Process: history.Process(proc), F: "txn", Value: value})
	}
	invoked, done := 0, 0
	for done < cfg.Txns {
		if invoked == injectAt {
			inject(cfg.Inject, register, emit, nextKey+1<<40, 1<<40)
			injectAt = -1
		}
		s := rng.IntN(cfg.Processes)
		if slots[s] == nil {
			if invoked == cfg.Txns {
				continue
			}
			n := 1 + rng.IntN(cfg.MaxMops)
			pd := &pending{proc: procs[s]}
			for range n {
				ki := rng.IntN(len(active))
				k := active[ki]
				if rng.IntN(2) == 0 {
					pd.mops = append(pd.mops, []any{"r", k, nil})
					continue
				}
				writes[k]++
				f := "append"
				if register {
					f = "w"
				}
				pd.mops = append(pd.mops, []any{f, k, int64(writes[k])})
				if writes[k] >= cfg.MaxWritesPerKey {
					active[ki] = nextKey
					nextKey++
				}
			}
			slots[s] = pd
			emit(history.Invoke, pd.proc, copyMops(pd.mops))
			invoked++
			continue
		}
		pd := slots[s]
		slots[s] = nil
		done++
		x := rng.Float64()
		switch {
		case x < cfg.FailRate:
			emit(history.Fail, pd.proc, copyMops(pd.mops))
		case x < cfg.FailRate+cfg.InfoRate:
			if rng.IntN(2) == 0 {
				apply(lists, pd.mops, register)
			}
			emit(history.Info, pd.proc, copyMops(pd.mops))
			// An indeterminate process is retired, as Jepsen does.
			procs[s] += int64(cfg.Processes)
		default:
			apply(lists, pd.mops, register)
			if cfg.StaleReads > 0 {
				for _, m := range pd.mops {
					if m[0] != "r" || m[2] == nil || rng.Float64() >= cfg.StaleReads {
						continue
					}
					if l, ok := m[2].([]any); ok {
						if len(l) > 0 {
							m[2] = l[:rng.IntN(len(l))]
						}
					} else {
						m[2] = nil
					}
				}
			}
			emit(history.Ok, pd.proc, mopList(pd.mops...))
		}
	}
	if injectAt >= 0 {
		inject(cfg.Inject, register, emit, nextKey+1<<40, 1<<40)
	}
	return ops, nil
}

func copyMops(m [][]any) []any {
	out := make([]any, len(m))
	for i, x := range m {
		out[i] = []any{x[0], x[1], x[2]}
	}
	return out
}

// apply executes a transaction atomically, filling in its reads. Register
// state is a list of at most one value.
func apply(lists map[int64][]int64, mops [][]any, register bool) {
	for _, m := range mops {
		k := m[1].(int64)
		switch m[0] {
		case "append":
			lists[k] = append(lists[k], m[2].(int64))
			continue
		case "w":
			lists[k] = []int64{m[2].(int64)}
			continue
		}
		l := lists[k]
		if register {
			m[2] = nil
			if len(l) > 0 {
				m[2] = l[0]
			}
			continue
		}
		r := make([]any, len(l))
		for i, e := range l {
			r[i] = e
		}
		m[2] = r
	}
}

func mopList(ms ...[]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

func ap(k, v int64) []any { return []any{"append", k, v} }
func rd(k int64, vs ...int64) []any {
	l := make([]any, len(vs))
	for i, v := range vs {
		l[i] = v
	}
	return []any{"r", k, l}
}

// planted is one transaction of an injected block: its process (an
// offset from the block's first), its completion type and its mops.
type planted struct {
	proc int64
	typ  history.Type
	mops []any
}

// inject emits a small block of transactions on fresh keys x and y by
// fresh processes. order lists the events: i invokes transaction i, ^i
// completes it; nil invokes all before completing any, so no realtime
// order interferes and the anomaly is exactly the intended one.
func inject(kind string, register bool, emit func(history.Type, int64, any), x, proc int64) {
	y := x + 1
	var txs []planted
	var order []int
	add := func(p int64, typ history.Type, ms ...[]any) {
		txs = append(txs, planted{p, typ, mopList(ms...)})
	}
	ok := func(ms ...[]any) { add(int64(len(txs)), history.Ok, ms...) }
	// seq: T0 and T1 one after the other (on one process when same),
	// with T2, if any, concurrent with both.
	seq := func(same bool, t0, t1 [][]any, t2 ...[]any) {
		p1 := int64(1)
		if same {
			p1 = 0
		}
		add(0, history.Ok, t0...)
		add(p1, history.Ok, t1...)
		order = []int{0, ^0, 1, ^1}
		if t2 != nil {
			add(2, history.Ok, t2...)
			order = []int{2, 0, ^0, 1, ^1, ^2}
		}
	}
	base, variant := kind, ""
	for _, v := range []string{"process", "realtime"} {
		if b, ok := strings.CutSuffix(kind, "-"+v); ok {
			base, variant = b, v
		}
	}
	same := variant == "process"
	if register {
		w := func(k, v int64) []any { return []any{"w", k, v} }
		r := func(k int64, v any) []any { return []any{"r", k, v} }
		switch base {
		case "G1a":
			add(0, history.Fail, w(x, 1))
			ok(r(x, int64(1)))
		case "G1b":
			ok(w(x, 1), w(x, 2))
			ok(r(x, int64(1)))
		case "G1c":
			if variant != "" {
				seq(same, txsOf(r(y, int64(1))), txsOf(w(y, 1)))
				break
			}
			ok(w(x, 1), r(y, int64(1)))
			ok(w(y, 1), r(x, int64(1)))
		case "G-single":
			if variant != "" {
				seq(same, txsOf(w(x, 1)), txsOf(r(x, nil)))
				break
			}
			ok(w(x, 1))
			ok(r(x, int64(1)), w(y, 1))
			ok(r(y, int64(1)), r(x, nil))
		case "lost-update":
			ok(r(x, nil), w(x, 1))
			ok(r(x, nil), w(x, 2))
		case "internal":
			ok(w(x, 1), r(x, nil))
		case "nonrepeatable-read":
			ok(w(x, 1))
			ok(r(x, nil), r(x, int64(1)))
		}
		emitBlock(txs, order, emit, proc)
		return
	}
	switch base {
	case "G0":
		if variant != "" {
			// T1 -ww-> T0 by the read order, T0 -> T1 by time.
			seq(same, txsOf(ap(x, 1)), txsOf(ap(x, 2)), rd(x, 2, 1))
			break
		}
		ok(ap(x, 1), ap(y, 1))
		ok(ap(x, 2), ap(y, 2))
		ok(rd(x, 1, 2), rd(y, 2, 1))
	case "G1a":
		add(0, history.Fail, ap(x, 1))
		ok(rd(x, 1))
	case "G1b":
		ok(ap(x, 1), ap(x, 2))
		ok(rd(x, 1))
		ok(rd(x, 1, 2))
	case "G1c":
		if variant != "" {
			// T1 -wr-> T0, T0 -> T1 by time.
			seq(same, txsOf(rd(y, 1)), txsOf(ap(y, 1)))
			break
		}
		ok(ap(x, 1), rd(y, 1))
		ok(ap(y, 1), rd(x, 1))
	case "G-single":
		if variant != "" {
			// T1 -rw-> T0, T0 -> T1 by time.
			seq(same, txsOf(ap(x, 1)), txsOf(rd(x)))
			break
		}
		ok(ap(x, 1))
		ok(rd(x, 1), ap(y, 1))
		ok(rd(y, 1), rd(x))
	case "G2":
		if variant != "" {
			// T0 -> T1 by time, T1 -rw-> T2 -rw-> T0.
			seq(same, txsOf(ap(x, 1)), txsOf(rd(y)), rd(x), ap(y, 1))
			break
		}
		ok(rd(x), ap(y, 1))
		ok(rd(y), ap(x, 1))
		ok(rd(x, 1), rd(y, 1))
	case "lost-update":
		ok(rd(x), ap(x, 1))
		ok(rd(x), ap(x, 2))
		ok(rd(x, 1, 2))
	case "internal":
		ok(ap(x, 1), rd(x))
	case "nonrepeatable-read":
		ok(ap(x, 1))
		ok(rd(x, 1), rd(x, 1, 2))
		ok(ap(x, 2))
	case "incompatible-order":
		ok(ap(x, 1))
		ok(ap(x, 2))
		ok(rd(x, 1, 2))
		ok(rd(x, 2, 1))
	case "dirty-update":
		add(0, history.Fail, ap(x, 1))
		ok(ap(x, 2))
		ok(rd(x, 1, 2))
	case "future-read":
		ok(rd(x, 1), ap(x, 1))
	}
	emitBlock(txs, order, emit, proc)
}

// emitBlock emits a planted block in the given order (nil: every
// invocation, then every completion).
func emitBlock(txs []planted, order []int, emit func(history.Type, int64, any), proc int64) {
	if order == nil {
		for i := range txs {
			order = append(order, i)
		}
		for i := range txs {
			order = append(order, ^i)
		}
	}
	for _, e := range order {
		if e >= 0 {
			t := txs[e]
			inv := make([]any, len(t.mops))
			for j, m := range t.mops {
				mm := m.([]any)
				if mm[0] == "r" {
					inv[j] = []any{"r", mm[1], nil}
				} else {
					inv[j] = mm
				}
			}
			emit(history.Invoke, proc+t.proc, inv)
			continue
		}
		t := txs[^e]
		emit(t.typ, proc+t.proc, t.mops)
	}
}

func txsOf(ms ...[]any) [][]any { return ms }
