package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/history"
)

// FuzzShapes feeds arbitrary EDN histories to the shape rules: they must
// never panic, and the workload a history is recognized as must accept
// it.
func FuzzShapes(f *testing.F) {
	f.Add([]byte(`[{:type :ok, :value [[:append :x 1] [:r :y [1]]]}]`))
	f.Add([]byte(`({:process 0 :type :invoke :f :cas :value [1 2]} {:process 0 :type :fail :f :cas :value [1 2]})`))
	f.Add([]byte(`{:process 0 :type :invoke :f :get :key "k" :value nil}` + "\n" + `{:process 0 :type :ok :f :get :key "k" :value "v"}`))
	f.Add([]byte(`[{:process 1 :type :ok :f :read :value {"a" 1}} {:process 2 :type :info :f :transfer :value :timed-out}]`))
	f.Add([]byte(`[{:process 1 :type :ok :f :txn :value [[:w 1 2] [:r 1]]} {:process :nemesis :type :info :f :start}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := history.ReadEDN(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = describeOps(ops)
		w, err := recognize(ops)
		for _, s := range shapes {
			_ = checkShape(s.workload, ops)
		}
		if err != nil {
			return
		}
		if err := checkShape(w, ops); err != nil {
			t.Fatalf("recognized as %s, which refuses it: %v", w, err)
		}
	})
}

// BenchmarkShape compares the shape pass chaos check adds with the Elle
// check it precedes, on one valid serial list-append history.
func BenchmarkShape(b *testing.B) {
	const txns = 100_000
	ops := make([]history.Op, 0, 2*txns)
	lists := map[int64][]any{}
	for i := range int64(txns) {
		k := i / 10
		lists[k] = append(lists[k], i)
		read := append([]any(nil), lists[k]...)
		inv := []any{[]any{"append", k, i}, []any{"r", k, nil}}
		ok := []any{[]any{"append", k, i}, []any{"r", k, read}}
		p := history.Process(i % 10)
		ops = append(ops,
			history.Op{Index: 2 * i, Type: history.Invoke, Process: p, F: "txn", Value: inv},
			history.Op{Index: 2*i + 1, Type: history.Ok, Process: p, F: "txn", Value: ok})
	}
	b.Run("shape", func(b *testing.B) {
		for range b.N {
			if err := checkShape("list-append", ops); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/txns, "ns/txn")
	})
	b.Run("recognize", func(b *testing.B) {
		for range b.N {
			if w, err := recognize(ops); err != nil || w != "list-append" {
				b.Fatal(fmt.Sprint(w, err))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/txns, "ns/txn")
	})
	b.Run("elle", func(b *testing.B) {
		for range b.N {
			res, err := elle.Check("list-append", ops, elle.Options{})
			if err != nil || res.Valid != checker.Valid {
				b.Fatalf("%v %v", res.Summary, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/txns, "ns/txn")
	})
}
