package linear

import (
	"fmt"
	"math"
	"strconv"

	"github.com/anishathalye/porcupine"

	"github.com/chaoskv/chaos/history"
)

// kind tags the dynamic type a value had in the history.
type kind uint8

const (
	kindNil kind = iota
	kindBool
	kindInt
	kindFloat
	kindString
	kindOther // lists and maps, compared by their canonical JSON text
)

// value is a comparable form of a history value, so that model states can
// be compared with == and hashed cheaply.
type value struct {
	k kind
	i int64 // bool (0/1), int, or the bits of a float
	s string
}

func toValue(v any) value {
	switch x := v.(type) {
	case nil:
		return value{}
	case bool:
		if x {
			return value{k: kindBool, i: 1}
		}
		return value{k: kindBool}
	case int64:
		return value{k: kindInt, i: x}
	case int:
		return value{k: kindInt, i: int64(x)}
	case float64:
		// An integral float is the same number as the integer: histories
		// written by different tools disagree on 3 versus 3.0.
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return value{k: kindInt, i: int64(x)}
		}
		return value{k: kindFloat, i: int64(math.Float64bits(x))}
	case string:
		return value{k: kindString, s: x}
	default:
		return value{k: kindOther, s: string(history.AppendValue(nil, x))}
	}
}

func (v value) String() string {
	switch v.k {
	case kindNil:
		return "nil"
	case kindBool:
		return strconv.FormatBool(v.i == 1)
	case kindInt:
		return strconv.FormatInt(v.i, 10)
	case kindFloat:
		return strconv.FormatFloat(math.Float64frombits(uint64(v.i)), 'g', -1, 64)
	case kindString:
		return strconv.Quote(v.s)
	default:
		return v.s
	}
}

// any returns v as a history value again, for results.
func (v value) any() any {
	switch v.k {
	case kindNil:
		return nil
	case kindBool:
		return v.i == 1
	case kindInt:
		return v.i
	case kindFloat:
		return math.Float64frombits(uint64(v.i))
	default:
		return v.s
	}
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (v value) hash() uint64 {
	h := uint64(fnvOffset)
	h = (h ^ uint64(v.k)) * fnvPrime
	for s := 0; s < 64; s += 8 {
		h = (h ^ uint64(byte(v.i>>s))) * fnvPrime
	}
	return hashString(h, v.s)
}

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

// action is what an operation does to its key.
type action uint8

const (
	actRead action = iota + 1
	actWrite
	actCas
	actAppend
)

// input is a porcupine operation's input: the action, the key it touches
// and its arguments (the written value; cas's old and new values).
type input struct {
	act      action
	key      value
	arg, new value
}

// output is a porcupine operation's output. known is false for operations
// whose outcome is unknown (info, or never completed).
type output struct {
	known bool
	read  value
}

// spec describes one model: how history ops become inputs and outputs, and
// its sequential specification.
type spec struct {
	name string
	// decode turns an invocation and its ok completion (nil when the
	// outcome is unknown) into a porcupine input and output.
	decode func(inv, comp *history.Op) (input, output, error)
	init   value
	step   func(state value, in input, out output) (bool, value)
}

// Models lists the model names Check accepts.
var Models = []string{"register", "cas-register", "kv"}

func lookup(name string) (*spec, error) {
	switch name {
	case "register":
		return &spec{name: name, decode: decodeRegister(false), step: stepRegister}, nil
	case "cas-register":
		return &spec{name: name, decode: decodeRegister(true), step: stepRegister}, nil
	case "kv":
		return &spec{name: name, decode: decodeKV, init: value{k: kindString}, step: stepKV}, nil
	}
	return nil, fmt.Errorf("unknown linearizability model %q (want register, cas-register or kv)", name)
}

// decodeRegister reads register ops. Values are Jepsen's independent-key
// tuples, [key, v] and [key, [old, new]] for cas; a single unkeyed register
// (v, and [old, new] for cas, as in Knossos's data files) is accepted too.
func decodeRegister(cas bool) func(inv, comp *history.Op) (input, output, error) {
	return func(inv, comp *history.Op) (input, output, error) {
		var in input
		out := output{known: comp != nil}
		tuple, keyed := inv.Value.([]any)
		keyed = keyed && len(tuple) == 2
		switch inv.F {
		case "read":
			in.act = actRead
			if comp == nil {
				break
			}
			if keyed {
				in.key = toValue(tuple[0])
				ct, ok := comp.Value.([]any)
				if !ok || len(ct) != 2 {
					return in, out, fmt.Errorf("read completion value %s is not [key, value]", history.AppendValue(nil, comp.Value))
				}
				out.read = toValue(ct[1])
			} else {
				out.read = toValue(comp.Value)
			}
		case "write":
			in.act = actWrite
			if keyed {
				in.key, in.arg = toValue(tuple[0]), toValue(tuple[1])
			} else {
				in.arg = toValue(inv.Value)
			}
		case "cas":
			if !cas {
				return in, out, fmt.Errorf("model register has no cas (use cas-register)")
			}
			in.act = actCas
			if !keyed {
				return in, out, fmt.Errorf("cas value %s is neither [key, [old, new]] nor [old, new]", history.AppendValue(nil, inv.Value))
			}
			if on, ok := tuple[1].([]any); ok {
				if len(on) != 2 {
					return in, out, fmt.Errorf("cas value %s: want [key, [old, new]]", history.AppendValue(nil, inv.Value))
				}
				in.key, in.arg, in.new = toValue(tuple[0]), toValue(on[0]), toValue(on[1])
			} else {
				in.arg, in.new = toValue(tuple[0]), toValue(tuple[1])
			}
		default:
			return in, out, fmt.Errorf("unknown f %q for a register (want read, write or cas)", inv.F)
		}
		return in, out, nil
	}
}

func stepRegister(state value, in input, out output) (bool, value) {
	switch in.act {
	case actRead:
		return out.read == state, state
	case actWrite:
		return true, in.arg
	case actCas:
		if state == in.arg {
			return true, in.new
		}
		// A cas with an unknown outcome may have run and found another
		// value; an ok cas may not.
		return !out.known, state
	}
	return false, state
}

// decodeKV reads the string key-value ops porcupine's kv tests use: get,
// put and append with value [key, string]. A key never written reads as
// the empty string.
func decodeKV(inv, comp *history.Op) (input, output, error) {
	var in input
	out := output{known: comp != nil}
	tuple, ok := inv.Value.([]any)
	if !ok || len(tuple) != 2 {
		return in, out, fmt.Errorf("kv value %s is not [key, value]", history.AppendValue(nil, inv.Value))
	}
	in.key = toValue(tuple[0])
	str := func(v any, what string) (value, error) {
		switch s := v.(type) {
		case string:
			return value{k: kindString, s: s}, nil
		case nil:
			return value{k: kindString}, nil
		}
		return value{}, fmt.Errorf("kv %s value %s is not a string", what, history.AppendValue(nil, v))
	}
	var err error
	switch inv.F {
	case "get", "read":
		in.act = actRead
		if comp != nil {
			ct, ok := comp.Value.([]any)
			if !ok || len(ct) != 2 {
				return in, out, fmt.Errorf("get completion value %s is not [key, value]", history.AppendValue(nil, comp.Value))
			}
			out.read, err = str(ct[1], "get")
		}
	case "put", "write":
		in.act = actWrite
		in.arg, err = str(tuple[1], "put")
	case "append":
		in.act = actAppend
		in.arg, err = str(tuple[1], "append")
	default:
		return in, out, fmt.Errorf("unknown f %q for kv (want get, put or append)", inv.F)
	}
	return in, out, err
}

func stepKV(state value, in input, out output) (bool, value) {
	switch in.act {
	case actRead:
		return out.read == state, state
	case actWrite:
		return true, in.arg
	case actAppend:
		return true, value{k: kindString, s: state.s + in.arg.s}
	}
	return false, state
}

// meta ties a porcupine operation back to the history: the positions of its
// invocation and completion (history.NoPartner when unknown).
type meta struct {
	inv, comp int
	index     int64
	process   history.Process
}

// partition groups operations by key, in order of each key's first
// operation, so that partition i of a check is the same for every caller.
func partition(ops []porcupine.Operation) [][]porcupine.Operation {
	at := make(map[value]int)
	var parts [][]porcupine.Operation
	for _, op := range ops {
		k := op.Input.(input).key
		i, ok := at[k]
		if !ok {
			i = len(parts)
			at[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

func partitionEvents(events []porcupine.Event) [][]porcupine.Event {
	at := make(map[value]int)
	keyOf := make(map[int]value)
	var parts [][]porcupine.Event
	for _, ev := range events {
		var k value
		if ev.Kind == porcupine.CallEvent {
			k = ev.Value.(input).key
			keyOf[ev.Id] = k
		} else {
			k = keyOf[ev.Id]
		}
		i, ok := at[k]
		if !ok {
			i = len(parts)
			at[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], ev)
	}
	return parts
}

func describeInput(in input, out output) string {
	switch in.act {
	case actRead:
		if !out.known {
			return "read -> ?"
		}
		return "read -> " + out.read.String()
	case actWrite:
		return "write " + in.arg.String() + result(out)
	case actCas:
		return "cas " + in.arg.String() + " -> " + in.new.String() + result(out)
	case actAppend:
		return "append " + in.arg.String() + result(out)
	}
	return "?"
}

func result(out output) string {
	if out.known {
		return ""
	}
	return " (info)"
}

// porcupineModel is the porcupine form of s, partitioned by key. The
// per-partition state is the value of that key.
func (s *spec) porcupineModel() porcupine.Model {
	return porcupine.Model{
		Partition:      partition,
		PartitionEvent: partitionEvents,
		Init:           func() any { return s.init },
		Step: func(state, in, out any) (bool, any) {
			return s.step(state.(value), in.(input), out.(output))
		},
		Equal: func(a, b any) bool { return a.(value) == b.(value) },
		Hash:  func(state any) uint64 { return state.(value).hash() },
		DescribeOperation: func(in, out any) string {
			return describeInput(in.(input), out.(output))
		},
		DescribeState: func(state any) string { return state.(value).String() },
		DescribeOperationMetadata: func(m any) string {
			md, ok := m.(meta)
			if !ok {
				return ""
			}
			return fmt.Sprintf("process %s, history index %d", md.process, md.index)
		},
	}
}
