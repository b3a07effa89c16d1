package history

import (
	"fmt"
	"math"
)

// fieldSet assigns decoded fields to an op, the same way for every codec,
// and remembers which required fields were seen.
type fieldSet struct {
	typ, process bool
}

func (fs *fieldSet) complete() error {
	switch {
	case !fs.typ:
		return fmt.Errorf("field type: missing")
	case !fs.process:
		return fmt.Errorf("field process: missing")
	}
	return nil
}

func (fs *fieldSet) setInt(op *Op, name string, n int64) error {
	switch name {
	case "index":
		op.Index = n
	case "time":
		op.Time = n
	case "process":
		if n < 0 {
			return fmt.Errorf("field process: %d is negative", n)
		}
		op.Process = Process(n)
		fs.process = true
	}
	return nil
}

// set assigns a decoded value (nil, bool, int64, float64, string, []any or
// map[string]any) to the named field. Unknown names are ignored.
func (fs *fieldSet) set(op *Op, name string, v any) error {
	switch name {
	case "index", "time":
		if v == nil {
			if name == "index" {
				op.Index = -1
			} else {
				op.Time = 0
			}
			return nil
		}
		n, ok := integer(v)
		if !ok {
			return fmt.Errorf("field %s: %s is not an integer", name, AppendValue(nil, v))
		}
		return fs.setInt(op, name, n)
	case "type":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("field type: %s is not a string", AppendValue(nil, v))
		}
		t, err := ParseType(s)
		if err != nil {
			return fmt.Errorf("field type: %w", err)
		}
		op.Type = t
		fs.typ = true
	case "process":
		if s, ok := v.(string); ok {
			if s != "nemesis" {
				return fmt.Errorf("field process: %q is neither an integer nor \"nemesis\"", s)
			}
			op.Process = NemesisProcess
			fs.process = true
			return nil
		}
		n, ok := integer(v)
		if !ok {
			return fmt.Errorf("field process: %s is not an integer", AppendValue(nil, v))
		}
		return fs.setInt(op, name, n)
	case "f":
		switch s := v.(type) {
		case nil:
			op.F = ""
		case string:
			op.F = s
		default:
			return fmt.Errorf("field f: %s is not a string", AppendValue(nil, v))
		}
	case "value":
		op.Value = v
	case "error":
		switch e := v.(type) {
		case nil:
			op.Error = ""
		case string:
			op.Error = e
		default:
			op.Error = string(AppendValue(nil, e))
		}
	case "node":
		if s, ok := v.(string); ok {
			op.Node = s
		}
	}
	return nil
}

// integer accepts int64 and integral float64 values.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), true
		}
	}
	return 0, false
}
