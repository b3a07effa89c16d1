package elle

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// randomHistory turns fuzz bytes into a small, often nonsensical history:
// up to four processes invoke and complete transactions of up to three
// micro-operations on three keys, with arbitrary read results.
func randomHistory(data []byte, workload string) []history.Op {
	var ops []history.Op
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	open := map[int][]any{}
	for len(data) > 0 && len(ops) < 200 {
		c := next()
		proc := int(c & 3)
		if m, ok := open[proc]; ok && c&4 != 0 {
			typ := []history.Type{history.Ok, history.Ok, history.Fail, history.Info}[(c>>3)&3]
			out := make([]any, len(m))
			for i, x := range m {
				mo := x.([]any)
				if mo[0] == "r" && typ == history.Ok {
					if workload == "list-append" {
						var l []any
						for range int(next() % 4) {
							l = append(l, int64(next()%5))
						}
						out[i] = []any{"r", mo[1], l}
					} else {
						v := any(int64(next() % 4))
						if v == int64(0) {
							v = nil
						}
						out[i] = []any{"r", mo[1], v}
					}
				} else {
					out[i] = mo
				}
			}
			delete(open, proc)
			ops = append(ops, history.Op{Index: int64(len(ops)), Type: typ, Process: history.Process(proc), Value: out})
			continue
		}
		var m []any
		for range 1 + int(next()%3) {
			b := next()
			k := int64(b % 3)
			switch {
			case b&8 != 0:
				m = append(m, []any{"r", k, nil})
			case workload == "list-append":
				m = append(m, []any{"append", k, int64(next() % 5)})
			default:
				m = append(m, []any{"w", k, int64(next() % 4)})
			}
		}
		open[proc] = m
		ops = append(ops, history.Op{Index: int64(len(ops)), Type: history.Invoke, Process: history.Process(proc), Value: m})
	}
	return ops
}

// FuzzCheck: Check never panics, always returns an encodable result, and
// its verdict agrees with the anomalies it reports.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, uint8(0))
	f.Add([]byte{0, 2, 9, 1, 4, 1, 3, 2, 8, 5, 4, 2, 1, 6, 3, 2, 7, 9, 12, 4}, uint8(1))
	f.Add([]byte{1, 1, 0, 2, 1, 2, 3, 5, 0, 9, 0, 5, 1, 2, 3, 4, 4, 4, 4, 4, 12, 13}, uint8(2))
	f.Add([]byte("a longer seed: the quick brown fox jumps over the lazy dog"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		workload := "list-append"
		if mode&1 != 0 {
			workload = "rw-register"
		}
		opts := Options{CycleSearchTimeout: time.Second}
		switch (mode >> 1) % 4 {
		case 1:
			opts.ConsistencyModels = []string{"serializable"}
		case 2:
			opts.ConsistencyModels = []string{"strong-session-snapshot-isolation"}
			opts.WFRKeys = true
		case 3:
			opts.SequentialKeys, opts.LinearizableKeys = true, true
		}
		ops := randomHistory(data, workload)
		res, err := Check(workload, ops, opts)
		if err != nil {
			t.Fatalf("generated history rejected: %v", err)
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("result does not encode: %v", err)
		}
		definite := false
		for _, typ := range res.AnomalyTypes {
			if !unknownTypes[typ] {
				definite = true
			}
			if len(res.Anomalies[typ]) == 0 {
				t.Fatalf("%s listed without instances", typ)
			}
		}
		if definite != (res.Valid == checker.Invalid) {
			t.Fatalf("valid = %v with anomaly types %v", res.Valid, res.AnomalyTypes)
		}
		if definite && len(res.Not) == 0 {
			t.Fatalf("invalid but rules out no model: %v", res.AnomalyTypes)
		}
	})
}
