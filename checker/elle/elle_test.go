package elle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// builder writes small histories by hand.
type builder struct{ ops []history.Op }

func (b *builder) add(typ history.Type, proc int, mops []any) {
	b.ops = append(b.ops, history.Op{Index: int64(len(b.ops)), Type: typ, Process: history.Process(proc), F: "txn", Value: mops})
}

// invoke starts a transaction; reads carry nil as Jepsen's invocations do.
func (b *builder) invoke(proc int, mops ...[]any) {
	inv := make([]any, len(mops))
	for i, m := range mops {
		if m[0] == "r" {
			inv[i] = []any{"r", m[1], nil}
		} else {
			inv[i] = m
		}
	}
	b.add(history.Invoke, proc, inv)
}

func (b *builder) complete(typ history.Type, proc int, mops ...[]any) {
	out := make([]any, len(mops))
	for i, m := range mops {
		out[i] = m
	}
	b.add(typ, proc, out)
}

// txn runs a whole transaction before anything else happens.
func (b *builder) txn(typ history.Type, proc int, mops ...[]any) {
	b.invoke(proc, mops...)
	b.complete(typ, proc, mops...)
}

// concurrent runs transactions that all overlap: every invocation comes
// before every completion, so realtime order relates none of them.
func (b *builder) concurrent(txns ...[]any) {
	split := func(t []any) [][]any {
		out := make([][]any, len(t))
		for i, m := range t {
			out[i] = m.([]any)
		}
		return out
	}
	for i, t := range txns {
		b.invoke(100+i, split(t)...)
	}
	for i, t := range txns {
		b.complete(history.Ok, 100+i, split(t)...)
	}
}

func app(k, v int64) []any { return []any{"append", k, v} }
func rl(k int64, vs ...int64) []any {
	l := []any{}
	for _, v := range vs {
		l = append(l, v)
	}
	return []any{"r", k, l}
}
func w(k string, v int64) []any { return []any{"w", k, v} }
func r(k string, v any) []any {
	if i, ok := v.(int); ok {
		v = int64(i)
	}
	return []any{"r", k, v}
}
func txsOf(ts ...[]any) [][]any { return ts }

func mops(ms ...[]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

type tcase struct {
	name     string
	workload string
	opts     Options
	build    func(b *builder)
	want     checker.Validity
	anomaly  string // must be among the anomaly types when want is Invalid or Unknown
}

func TestAnomalies(t *testing.T) {
	ser := Options{ConsistencyModels: []string{"serializable"}}
	cases := []tcase{
		{name: "G0", workload: "list-append", want: checker.Invalid, anomaly: "G0", build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1), app(2, 1)), mops(app(1, 2), app(2, 2)), mops(rl(1, 1, 2), rl(2, 2, 1)))...)
		}},
		{name: "G0 valid", workload: "list-append", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1), app(2, 1)), mops(app(1, 2), app(2, 2)), mops(rl(1, 1, 2), rl(2, 1, 2)))...)
		}},
		{name: "G0-realtime", workload: "list-append", want: checker.Invalid, anomaly: "G0-realtime", build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 1))
			b.txn(history.Ok, 1, app(1, 2))
			b.txn(history.Ok, 2, rl(1, 2, 1))
		}},
		{name: "G0-realtime allowed by serializable", workload: "list-append", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 1))
			b.txn(history.Ok, 1, app(1, 2))
			b.txn(history.Ok, 2, rl(1, 2, 1))
		}},
		{name: "G1a", workload: "list-append", want: checker.Invalid, anomaly: "G1a", build: func(b *builder) {
			b.txn(history.Fail, 0, app(1, 1))
			b.txn(history.Ok, 1, rl(1, 1))
		}},
		{name: "G1a valid", workload: "list-append", want: checker.Valid, build: func(b *builder) {
			b.txn(history.Fail, 0, app(1, 1))
			b.txn(history.Ok, 1, app(1, 2))
			b.txn(history.Ok, 1, rl(1, 2))
		}},
		{name: "G1b", workload: "list-append", want: checker.Invalid, anomaly: "G1b", build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1), app(1, 2)), mops(rl(1, 1)))...)
		}},
		{name: "G1b valid", workload: "list-append", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1), app(1, 2)), mops(rl(1, 1, 2)))...)
		}},
		{name: "G1c", workload: "list-append", want: checker.Invalid, anomaly: "G1c", build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1), rl(2, 1)), mops(app(2, 1), rl(1, 1)))...)
		}},
		{name: "G1c valid", workload: "list-append", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1), rl(2)), mops(app(2, 1), rl(1, 1)))...)
		}},
		{name: "G1c-process", workload: "list-append", opts: Options{ConsistencyModels: []string{"strong-session-serializable"}},
			want: checker.Invalid, anomaly: "G1c-process", build: func(b *builder) {
				b.txn(history.Ok, 0, rl(1, 1))
				b.txn(history.Ok, 0, app(1, 1))
			}},
		{name: "G-single", workload: "list-append", want: checker.Invalid, anomaly: "G-single-item", build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1)), mops(rl(1, 1), app(2, 1)), mops(rl(2, 1), rl(1)))...)
		}},
		{name: "G-single valid", workload: "list-append", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1)), mops(rl(1, 1), app(2, 1)), mops(rl(2, 1), rl(1, 1)))...)
		}},
		{name: "G-single-realtime", workload: "list-append", want: checker.Invalid, anomaly: "G-single-item-realtime", build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 1))
			b.txn(history.Ok, 1, app(1, 2))
			b.txn(history.Ok, 2, rl(1, 1))
		}},
		{name: "G-nonadjacent", workload: "list-append", want: checker.Invalid, anomaly: "G-nonadjacent-item", build: func(b *builder) {
			b.concurrent(txsOf(mops(rl(1), rl(4, 1)), mops(app(1, 1), app(2, 1)), mops(rl(2, 1), rl(3)), mops(app(3, 1), app(4, 1)))...)
		}},
		{name: "G-nonadjacent valid", workload: "list-append", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.concurrent(txsOf(mops(rl(1), rl(4)), mops(app(1, 1), app(2, 1)), mops(rl(2, 1), rl(3)), mops(app(3, 1), app(4, 1)))...)
		}},
		{name: "G2-item", workload: "list-append", opts: ser, want: checker.Invalid, anomaly: "G2-item", build: func(b *builder) {
			b.concurrent(txsOf(mops(rl(1), app(2, 1)), mops(rl(2), app(1, 1)))...)
		}},
		{name: "G2-item valid", workload: "list-append", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.concurrent(txsOf(mops(rl(1), app(2, 1)), mops(rl(2, 1), app(1, 1)))...)
		}},
		{name: "G2-item allowed by snapshot isolation", workload: "list-append", opts: Options{ConsistencyModels: []string{"snapshot-isolation"}},
			want: checker.Valid, build: func(b *builder) {
				b.concurrent(txsOf(mops(rl(1), app(2, 1)), mops(rl(2), app(1, 1)))...)
			}},
		{name: "lost-update", workload: "list-append", want: checker.Invalid, anomaly: "lost-update", build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 0))
			b.concurrent(txsOf(mops(rl(1, 0), app(1, 1)), mops(rl(1, 0), app(1, 2)), mops(rl(1, 0, 1, 2)))...)
		}},
		{name: "lost-update valid", workload: "list-append", want: checker.Valid, build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 0))
			b.txn(history.Ok, 0, rl(1, 0), app(1, 1))
			b.txn(history.Ok, 1, rl(1, 0, 1), app(1, 2))
		}},
		{name: "internal", workload: "list-append", want: checker.Invalid, anomaly: "internal", build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 1))
			b.txn(history.Ok, 0, app(1, 2), rl(1, 1))
		}},
		{name: "internal valid", workload: "list-append", want: checker.Valid, build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 1))
			b.txn(history.Ok, 0, rl(1, 1), app(1, 2), rl(1, 1, 2))
		}},
		{name: "future-read", workload: "list-append", want: checker.Invalid, anomaly: "future-read", build: func(b *builder) {
			b.txn(history.Ok, 0, rl(1, 1), app(1, 1))
			b.txn(history.Ok, 0, rl(1, 1))
		}},
		{name: "future-read valid", workload: "list-append", want: checker.Valid, build: func(b *builder) {
			b.txn(history.Ok, 0, rl(1), app(1, 1))
			b.txn(history.Ok, 0, rl(1, 1))
		}},
		{name: "dirty-update", workload: "list-append", want: checker.Invalid, anomaly: "dirty-update", build: func(b *builder) {
			b.txn(history.Fail, 0, app(1, 1))
			b.txn(history.Ok, 1, app(1, 2))
			b.txn(history.Ok, 2, rl(1, 1, 2))
		}},
		{name: "duplicate-elements", workload: "list-append", want: checker.Invalid, anomaly: "duplicate-elements", build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 1))
			b.txn(history.Ok, 1, rl(1, 1, 1))
		}},
		{name: "incompatible-order", workload: "list-append", want: checker.Invalid, anomaly: "incompatible-order", build: func(b *builder) {
			b.concurrent(txsOf(mops(app(1, 1)), mops(app(1, 2)), mops(rl(1, 1, 2)), mops(rl(1, 2, 1)))...)
		}},
		{name: "indeterminate append may be read", workload: "list-append", want: checker.Valid, build: func(b *builder) {
			b.txn(history.Info, 0, app(1, 1))
			b.txn(history.Ok, 1, rl(1, 1))
			b.txn(history.Ok, 1, app(1, 2))
			b.txn(history.Ok, 1, rl(1, 1, 2))
		}},
		{name: "string keys and values", workload: "list-append", want: checker.Invalid, anomaly: "G0", build: func(b *builder) {
			b.concurrent(
				[]any{[]any{"append", "x", "a"}, []any{"append", "y", "a"}},
				[]any{[]any{"append", "x", "b"}, []any{"append", "y", "b"}},
				[]any{[]any{"r", "x", []any{"a", "b"}}, []any{"r", "y", []any{"b", "a"}}})
		}},
		{name: "empty graph", workload: "list-append", opts: ser, want: checker.Unknown, anomaly: "empty-transaction-graph", build: func(b *builder) {
			b.txn(history.Ok, 0, app(1, 1))
		}},

		{name: "rw G1a", workload: "rw-register", want: checker.Invalid, anomaly: "G1a", build: func(b *builder) {
			b.txn(history.Fail, 0, w("x", 1))
			b.txn(history.Ok, 1, r("x", 1))
		}},
		{name: "rw G1b", workload: "rw-register", want: checker.Invalid, anomaly: "G1b", build: func(b *builder) {
			b.txn(history.Ok, 0, w("x", 1), w("x", 2))
			b.txn(history.Ok, 1, r("x", 1))
		}},
		{name: "rw G1b valid", workload: "rw-register", want: checker.Valid, build: func(b *builder) {
			b.txn(history.Ok, 0, w("x", 1), w("x", 2))
			b.txn(history.Ok, 1, r("x", 2))
		}},
		{name: "rw internal", workload: "rw-register", want: checker.Invalid, anomaly: "internal", build: func(b *builder) {
			b.txn(history.Ok, 0, w("x", 1))
			b.txn(history.Ok, 0, w("x", 2), r("x", 1))
		}},
		{name: "rw G-single", workload: "rw-register", want: checker.Invalid, anomaly: "G-single-item", build: func(b *builder) {
			b.concurrent(txsOf(mops(w("x", 1)), mops(r("x", 1), w("y", 1)), mops(r("y", 1), r("x", nil)))...)
		}},
		{name: "rw G-single valid", workload: "rw-register", opts: ser, want: checker.Valid, build: func(b *builder) {
			b.concurrent(txsOf(mops(w("x", 1)), mops(r("x", 1), w("y", 1)), mops(r("y", 1), r("x", 1)))...)
		}},
		{name: "rw G2-item", workload: "rw-register", want: checker.Invalid, anomaly: "G2-item", build: func(b *builder) {
			b.concurrent(txsOf(mops(r("x", nil), w("y", 1)), mops(r("y", nil), w("x", 1)))...)
		}},
		{name: "rw G1c", workload: "rw-register", want: checker.Invalid, anomaly: "G1c", build: func(b *builder) {
			b.concurrent(txsOf(mops(w("x", 1), r("y", 1)), mops(w("y", 1), r("x", 1)))...)
		}},
		{name: "rw lost-update", workload: "rw-register", want: checker.Invalid, anomaly: "lost-update", build: func(b *builder) {
			b.concurrent(txsOf(mops(r("x", nil), w("x", 1)), mops(r("x", nil), w("x", 2)))...)
		}},
		{name: "rw G0 with wfr", workload: "rw-register", opts: Options{WFRKeys: true}, want: checker.Invalid, anomaly: "G0", build: func(b *builder) {
			// wfr orders 1 < 2 on x (T3) and 2 < 1 on y (T4); T1 and T2
			// write both keys in opposite version orders.
			b.concurrent(txsOf(mops(w("x", 1), w("y", 1)), mops(w("x", 2), w("y", 2)), mops(r("x", 1), w("x", 2)), mops(r("y", 2), w("y", 1)))...)
		}},
		{name: "rw cyclic versions", workload: "rw-register", opts: Options{SequentialKeys: true}, want: checker.Invalid, anomaly: "cyclic-versions", build: func(b *builder) {
			b.txn(history.Ok, 0, w("x", 1))
			b.txn(history.Ok, 0, r("x", nil))
		}},
		{name: "rw linearizable keys valid", workload: "rw-register", opts: Options{LinearizableKeys: true}, want: checker.Valid, build: func(b *builder) {
			b.txn(history.Ok, 0, w("x", 1))
			b.txn(history.Ok, 1, r("x", 1))
			b.txn(history.Ok, 0, w("x", 2))
			b.txn(history.Ok, 1, r("x", 2))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b builder
			c.build(&b)
			res, err := Check(c.workload, b.ops, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.MarshalIndent(res, "", "  ")
			if res.Valid != c.want {
				t.Fatalf("valid = %v, want %v\n%s", res.Valid, c.want, js)
			}
			if c.anomaly != "" && !slices.Contains(res.AnomalyTypes, c.anomaly) {
				t.Fatalf("anomaly types %v lack %s\n%s", res.AnomalyTypes, c.anomaly, js)
			}
			if c.want == checker.Valid && len(res.AnomalyTypes) != 0 {
				t.Fatalf("valid history reports %v", res.AnomalyTypes)
			}
			checkInstances(t, res)
		})
	}
}

// checkInstances demands that every instance explains itself, and that
// cycles are well formed: one step per transaction, labelled, closing.
func checkInstances(t *testing.T, res checker.Result) {
	t.Helper()
	for typ, insts := range res.Anomalies {
		if len(insts) == 0 {
			t.Errorf("%s: no instances", typ)
		}
		for _, x := range insts {
			a, ok := x.(*Anomaly)
			if !ok {
				t.Fatalf("%s: instance is %T", typ, x)
			}
			if a.Type != typ || a.Explanation == "" {
				t.Errorf("%s: instance %+v lacks type or explanation", typ, a)
			}
			if len(a.Steps) == 0 {
				continue
			}
			if len(a.Steps) != len(a.Txns) || len(a.Steps) < 2 {
				t.Errorf("%s: %d steps for %d transactions", typ, len(a.Steps), len(a.Txns))
			}
			for i, s := range a.Steps {
				if s.From != i || s.To != (i+1)%len(a.Steps) || s.Explanation == "" {
					t.Errorf("%s: malformed step %d: %+v", typ, i, s)
				}
				if !slices.Contains([]string{"ww", "wr", "rw", "process", "realtime"}, s.Type) {
					t.Errorf("%s: step %d has kind %q", typ, i, s.Type)
				}
				if strings.Contains(s.Explanation, "inferred") {
					t.Errorf("%s: step %d has no evidence: %s", typ, i, s.Explanation)
				}
			}
		}
	}
}

// TestCycleExplanation pins the wording of a cycle so reports stay
// readable.
func TestCycleExplanation(t *testing.T) {
	var b builder
	b.concurrent(txsOf(mops(app(1, 1), app(2, 1)), mops(app(1, 2), app(2, 2)), mops(rl(1, 1, 2), rl(2, 2, 1)))...)
	res, err := Check("list-append", b.ops, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Anomalies["G0"][0].(*Anomaly)
	for _, want := range []string{"appended 2 to key 1 after", "so T1 < T2 (ww)", "so T2 < T1 (ww)", "So T1 < T2 < T1: a cycle"} {
		if !strings.Contains(a.Explanation, want) {
			t.Errorf("explanation lacks %q:\n%s", want, a.Explanation)
		}
	}
	if a.Steps[0].Key != int64(1) && a.Steps[0].Key != int64(2) {
		t.Errorf("step key = %v", a.Steps[0].Key)
	}
}

// TestCycleSearchTimeout builds one large component of anti-dependencies
// and gives the search no time: the verdict must be unknown, quickly.
func TestCycleSearchTimeout(t *testing.T) {
	var ring [][]any
	const n = 5000
	for i := int64(0); i < n; i++ {
		ring = append(ring, mops(app(i, 1), rl((i+1)%n)))
	}
	var b builder
	b.concurrent(ring...)
	start := time.Now()
	res, err := Check("list-append", b.ops, Options{ConsistencyModels: []string{"serializable"}, CycleSearchTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != checker.Unknown || !slices.Contains(res.AnomalyTypes, "cycle-search-timeout") {
		t.Fatalf("valid = %v, types %v; want unknown with cycle-search-timeout", res.Valid, res.AnomalyTypes)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
	// With time to search, the ring is a G2-item cycle.
	res, err = Check("list-append", b.ops, Options{ConsistencyModels: []string{"serializable"}, CycleSearchTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != checker.Invalid || !slices.Contains(res.AnomalyTypes, "G2-item") {
		t.Fatalf("valid = %v, types %v; want G2-item", res.Valid, res.AnomalyTypes)
	}
}

func TestBadInput(t *testing.T) {
	cases := map[string][]history.Op{
		"not a list":    {{Index: 0, Type: history.Ok, Process: 0, Value: "x"}},
		"short mop":     {{Index: 0, Type: history.Ok, Process: 0, Value: []any{[]any{"r", int64(1)}}}},
		"unknown f":     {{Index: 0, Type: history.Ok, Process: 0, Value: []any{[]any{"cas", int64(1), int64(2)}}}},
		"float key":     {{Index: 0, Type: history.Ok, Process: 0, Value: []any{[]any{"append", 1.5, int64(2)}}}},
		"read not list": {{Index: 0, Type: history.Ok, Process: 0, Value: []any{[]any{"r", int64(1), int64(2)}}}},
	}
	for name, ops := range cases {
		if _, err := Check("list-append", ops, Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Check("bank", nil, Options{}); err == nil {
		t.Error("unknown workload: no error")
	}
	if _, err := Check("list-append", nil, Options{ConsistencyModels: []string{"bogus"}}); err == nil {
		t.Error("unknown model: no error")
	}
	if _, err := Check("list-append", nil, Options{Anomalies: []string{"G7"}}); err == nil {
		t.Error("unknown anomaly: no error")
	}
}

// TestModels pins the lattice against what Elle reports.
func TestModels(t *testing.T) {
	not, also := violatedModels([]string{"G2-item", "strong-snapshot-isolation-cycle-exists"})
	if !slices.Equal(not, []string{"repeatable-read", "strong-snapshot-isolation"}) ||
		!slices.Equal(also, []string{"serializable", "strong-serializable", "strong-session-serializable"}) {
		t.Errorf("G2-item: not %v also %v", not, also)
	}
	if not, _ := violatedModels([]string{"G1c-process"}); !slices.Equal(not, []string{"strong-session-read-committed"}) {
		t.Errorf("G1c-process: not %v", not)
	}
	if not, also := violatedModels(nil); not != nil || also != nil {
		t.Errorf("no anomalies: not %v also %v", not, also)
	}
}

func TestArtifacts(t *testing.T) {
	var b builder
	b.concurrent(txsOf(mops(rl(1), app(2, 1)), mops(rl(2), app(1, 1)))...)
	dir := t.TempDir()
	res, err := Check("list-append", b.ops, Options{Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) == 0 {
		t.Fatal("no artifacts written")
	}
	raw, err := os.ReadFile(filepath.Join(dir, res.Files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(raw); !strings.Contains(s, "digraph") || !strings.Contains(s, `label="rw on`) {
		t.Fatalf("unexpected DOT:\n%s", s)
	}
}

// TestEmptyHistory: nothing to check is not a pass.
func TestEmptyHistory(t *testing.T) {
	for _, ops := range [][]history.Op{nil, {{Index: 0, Type: history.Info, Process: history.NemesisProcess, F: "partition"}}} {
		for _, wl := range []string{"list-append", "rw-register"} {
			res, err := Check(wl, ops, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != checker.Unknown || !slices.Equal(res.AnomalyTypes, []string{"empty-transaction-graph"}) {
				t.Fatalf("%s: valid = %v, types %v", wl, res.Valid, res.AnomalyTypes)
			}
		}
	}
}
