package elle

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle/gen"
)

// TestGeneratedValid checks strict-serializable histories from the
// generator, with aborted and indeterminate transactions mixed in: none
// may be flagged.
func TestGeneratedValid(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for seed := uint64(1); seed <= 4; seed++ {
		cfg := gen.Config{Txns: n, Processes: 2 + int(seed)*3, Keys: 2 + int(seed)*4, FailRate: 0.05, InfoRate: 0.05, Seed: seed}
		ops, err := gen.ListAppend(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Check("list-append", ops, Options{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Valid != checker.Valid {
			t.Fatalf("seed %d (replay: gen.ListAppend(%+v)): valid = %v, %s", seed, cfg, res.Valid, res.Summary)
		}
	}
}

// forbids lists, per model, the anomalies of the injected kinds that the
// model rules out, as Elle's elle.consistency-model tables have it. It is
// written out by hand, apart from the tables the checker derives its
// verdicts from, so that a change to those tables shows up here.
var forbids = func() map[string][]string {
	ru := []string{"G0"}
	rc := append(slices.Clone(ru), "G1a", "G1b", "G1c", "incompatible-order", "dirty-update", "future-read")
	ra := append(slices.Clone(rc), "internal")
	cs := append(slices.Clone(rc), "lost-update")
	rr := append(slices.Clone(cs), "G-single-item", "G2-item")
	cv := append(slices.Clone(cs), "G-single-item")
	si := append(slices.Clone(cv), "internal")
	ser := append(slices.Clone(si), "G2-item")
	srcSession := append(slices.Clone(rc), "G0-process", "G1c-process")
	src := append(slices.Clone(srcSession), "G0-realtime", "G1c-realtime")
	ssiSession := append(slices.Clone(si), "G0-process", "G1c-process", "G-single-item-process")
	ssi := append(slices.Clone(ssiSession), "G0-realtime", "G1c-realtime", "G-single-item-realtime")
	sserSession := append(slices.Clone(ser), "G0-process", "G1c-process", "G-single-item-process", "G2-item-process")
	sser := append(slices.Clone(sserSession), "G0-realtime", "G1c-realtime", "G-single-item-realtime", "G2-item-realtime")
	return map[string][]string{
		"read-uncommitted": ru, "read-committed": rc, "read-atomic": ra,
		"update-atomic": append(slices.Clone(ra), "lost-update"), "cursor-stability": cs,
		"repeatable-read": rr, "consistent-view": cv, "snapshot-isolation": si, "serializable": ser,
		"strong-session-read-committed": srcSession, "strong-read-committed": src,
		"strong-session-snapshot-isolation": ssiSession, "strong-snapshot-isolation": ssi,
		"strong-session-serializable": sserSession, "strict-serializable": sser,
	}
}()

// manifests gives, per injected kind, the anomaly types it exhibits
// without process or realtime order.
var manifests = map[string][]string{
	"G0": {"G0"}, "G1a": {"G1a"}, "G1b": {"G1b", "G-single-item"}, "G1c": {"G1c"},
	"G-single": {"G-single-item"}, "G2": {"G2-item"}, "lost-update": {"lost-update", "G-single-item"},
	"internal": {"internal"}, "nonrepeatable-read": {"internal", "G-single-item"},
	"incompatible-order": {"incompatible-order"}, "dirty-update": {"G1a", "dirty-update"},
	"future-read": {"future-read"},
}

// registerManifests is manifests for rw-register histories.
var registerManifests = map[string][]string{
	"G1a": {"G1a"}, "G1b": {"G1b"}, "G1c": {"G1c"}, "G-single": {"G-single-item"},
	"lost-update": {"lost-update", "G2-item"}, "internal": {"internal"},
	"nonrepeatable-read": {"internal", "G-single-item"},
}

// expectedFor is what a check under model must report for an injected
// kind: the kind's anomalies the model forbids. A "-process" kind's cycle
// is named for the order the model brings into the graph (realtime order,
// which includes process order, when the model forbids some realtime
// anomaly, else process order); a "-realtime" kind has no cycle without
// realtime order.
func expectedFor(kind, model string, manifests map[string][]string) []string {
	forbidden := forbids[model]
	usesRealtime := slices.ContainsFunc(forbidden, func(a string) bool { return strings.HasSuffix(a, "-realtime") })
	usesProcess := !usesRealtime && slices.ContainsFunc(forbidden, func(a string) bool { return strings.HasSuffix(a, "-process") })
	var found []string
	if base, ok := strings.CutSuffix(kind, "-process"); ok {
		switch {
		case usesRealtime:
			found = []string{cycleName(base) + "-realtime"}
		case usesProcess:
			found = []string{cycleName(base) + "-process"}
		}
	} else if base, ok := strings.CutSuffix(kind, "-realtime"); ok {
		if usesRealtime {
			found = []string{cycleName(base) + "-realtime"}
		}
	} else {
		found = manifests[kind]
	}
	want := []string{}
	for _, a := range found {
		if slices.Contains(forbidden, a) {
			want = append(want, a)
		}
	}
	slices.Sort(want)
	return want
}

func cycleName(base string) string {
	switch base {
	case "G-single":
		return "G-single-item"
	case "G2":
		return "G2-item"
	}
	return base
}

// TestGeneratedInjected plants one anomaly of each kind into an otherwise
// strict-serializable history (with aborted and indeterminate
// transactions) and checks it under every model: exactly the planted
// anomaly's types that the model forbids are reported, and nothing at all
// under models that allow it.
func TestGeneratedInjected(t *testing.T) {
	models := slices.Sorted(maps.Keys(forbids))
	seeds := uint64(3)
	if testing.Short() {
		seeds = 1
	}
	for _, kind := range gen.Injectable {
		for seed := uint64(1); seed <= seeds; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", kind, seed), func(t *testing.T) {
				cfg := gen.Config{Txns: 2000, Processes: 8, Keys: 10, FailRate: 0.02, InfoRate: 0.02, Seed: seed, Inject: kind}
				ops, err := gen.ListAppend(cfg)
				if err != nil {
					t.Fatal(err)
				}
				for _, model := range models {
					res, err := Check("list-append", ops, Options{ConsistencyModels: []string{model}})
					if err != nil {
						t.Fatal(err)
					}
					want := expectedFor(kind, model, manifests)
					wantValid := checker.Valid
					if len(want) > 0 {
						wantValid = checker.Invalid
					}
					if res.Valid != wantValid || !slices.Equal(res.AnomalyTypes, want) {
						t.Errorf("%s (replay: gen.ListAppend(%+v)): valid = %v, types %v, want %v %v", model, cfg, res.Valid, res.AnomalyTypes, wantValid, want)
					}
				}
			})
		}
	}
}

// TestGeneratedRegisterInjected is TestGeneratedInjected for rw-register
// histories, whose only version order is the initial state's.
func TestGeneratedRegisterInjected(t *testing.T) {
	models := slices.Sorted(maps.Keys(forbids))
	for _, kind := range gen.InjectableRegister {
		t.Run(kind, func(t *testing.T) {
			cfg := gen.Config{Txns: 2000, Processes: 8, Keys: 6, MaxWritesPerKey: 8, FailRate: 0.02, InfoRate: 0.02, Seed: 3, Inject: kind}
			ops, err := gen.RWRegister(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, model := range models {
				res, err := Check("rw-register", ops, Options{ConsistencyModels: []string{model}})
				if err != nil {
					t.Fatal(err)
				}
				want := expectedFor(kind, model, registerManifests)
				wantValid := checker.Valid
				if len(want) > 0 {
					wantValid = checker.Invalid
				}
				if res.Valid != wantValid || !slices.Equal(res.AnomalyTypes, want) {
					t.Errorf("%s (replay: gen.RWRegister(%+v)): valid = %v, types %v, want %v %v", model, cfg, res.Valid, res.AnomalyTypes, wantValid, want)
				}
			}
		})
	}
}

// TestGeneratedStale checks histories from a store that serves stale
// prefixes: they are full of anti-dependency cycles, one giant component,
// and the search must name some and stay within its budget.
func TestGeneratedStale(t *testing.T) {
	cfg := gen.Config{Txns: 5000, Processes: 8, Keys: 20, StaleReads: 0.05, Seed: 7}
	ops, err := gen.ListAppend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Check("list-append", ops, Options{CycleSearchTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != checker.Invalid || !slices.Contains(res.AnomalyTypes, "G-single-item") {
		t.Fatalf("replay: gen.ListAppend(%+v): valid = %v, types %v", cfg, res.Valid, res.AnomalyTypes)
	}
	checkInstances(t, res)
}

// BenchmarkCheck measures strict-serializable checks of valid generated
// histories. The 1M-transaction case runs only with ELLE_BENCH_1M=1.
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("txns=%d", n), func(b *testing.B) {
			if n > 100_000 && os.Getenv("ELLE_BENCH_1M") != "1" {
				b.Skip("set ELLE_BENCH_1M=1 to run the 1M-transaction benchmark")
			}
			ops, err := gen.ListAppend(gen.Config{Txns: n, Processes: 16, Keys: 100, FailRate: 0.01, InfoRate: 0.01, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := Check("list-append", ops, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if res.Valid != checker.Valid {
					b.Fatalf("valid = %v: %s", res.Valid, res.Summary)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "txns/s")
		})
	}
}

// BenchmarkCheckStale measures a 100k-transaction history whose stale
// reads make one giant strongly connected component, so the cycle search
// does real work (bounded by the default one-second budget).
func BenchmarkCheckStale(b *testing.B) {
	const n = 100_000
	ops, err := gen.ListAppend(gen.Config{Txns: n, Processes: 16, Keys: 100, StaleReads: 0.05, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Check("list-append", ops, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Valid != checker.Invalid {
			b.Fatalf("valid = %v: %s", res.Valid, res.Summary)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "txns/s")
}

// TestGeneratedRegisterValid checks strict-serializable rw-register
// histories under every optional version-order inference: none may be
// flagged, and some dependencies must have been inferred.
func TestGeneratedRegisterValid(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	for seed := uint64(1); seed <= 3; seed++ {
		cfg := gen.Config{Txns: n, Processes: 4 + int(seed)*2, Keys: 3 + int(seed), MaxWritesPerKey: 8, FailRate: 0.03, InfoRate: 0.03, Seed: seed}
		ops, err := gen.RWRegister(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, opts := range []Options{{}, {SequentialKeys: true, LinearizableKeys: true, WFRKeys: true}, {ConsistencyModels: []string{"serializable"}, WFRKeys: true}} {
			res, err := Check("rw-register", ops, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != checker.Valid {
				t.Fatalf("seed %d, %+v (replay: gen.RWRegister(%+v)): valid = %v, %s", seed, opts, cfg, res.Valid, res.Summary)
			}
		}
	}
}

// TestGeneratedRegisterStale: a register store serving stale values is
// caught once realtime order pins the versions.
func TestGeneratedRegisterStale(t *testing.T) {
	cfg := gen.Config{Txns: 3000, Processes: 6, Keys: 4, MaxWritesPerKey: 8, StaleReads: 0.2, Seed: 5}
	ops, err := gen.RWRegister(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Stale reads in a register store return the initial nil.
	res, err := Check("rw-register", ops, Options{LinearizableKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != checker.Invalid {
		t.Fatalf("replay: gen.RWRegister(%+v): valid = %v, %s", cfg, res.Valid, res.Summary)
	}
	checkInstances(t, res)
}

// BenchmarkCheckRegister measures a strict-serializable check of a valid
// 100k-transaction rw-register history with every version-order inference.
func BenchmarkCheckRegister(b *testing.B) {
	const n = 100_000
	ops, err := gen.RWRegister(gen.Config{Txns: n, Processes: 16, Keys: 100, MaxWritesPerKey: 16, FailRate: 0.01, InfoRate: 0.01, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{SequentialKeys: true, LinearizableKeys: true, WFRKeys: true}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Check("rw-register", ops, opts)
		if err != nil {
			b.Fatal(err)
		}
		if res.Valid != checker.Valid {
			b.Fatalf("valid = %v: %s", res.Valid, res.Summary)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "txns/s")
}
