package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// parseJSONStdlib is the encoding/json decoder ParseJSON replaced, kept as
// the baseline of BenchmarkParseJSON and the reference of the equivalence
// test.
func parseJSONStdlib(data []byte) (Op, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return Op{}, fmt.Errorf("decode op: %w", err)
	}
	if dec.More() {
		return Op{}, errors.New("decode op: trailing data after object")
	}
	op := Op{Index: -1}
	var fs fieldSet
	for _, name := range [...]string{"index", "time", "type", "process", "f", "value", "error", "node"} {
		if v, ok := raw[name]; ok {
			if err := fs.set(&op, name, normalizeStdlib(v)); err != nil {
				return Op{}, err
			}
		}
	}
	return op, fs.complete()
}

// normalizeStdlib turns json.Number into int64 (or float64 when not
// integral).
func normalizeStdlib(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalizeStdlib(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = normalizeStdlib(x[k])
		}
		return x
	}
	return v
}
