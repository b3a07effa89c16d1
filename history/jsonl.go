package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
)

// Writer streams operations as JSON lines. It is not safe for concurrent use.
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer that writes one JSON object per line to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10)}
}

// Write appends op as one line.
func (hw *Writer) Write(op *Op) error {
	hw.buf = AppendJSON(hw.buf[:0], op)
	hw.buf = append(hw.buf, '\n')
	if _, err := hw.w.Write(hw.buf); err != nil {
		return fmt.Errorf("write history op %d: %w", op.Index, err)
	}
	return nil
}

// Flush writes any buffered lines to the underlying writer.
func (hw *Writer) Flush() error {
	if err := hw.w.Flush(); err != nil {
		return fmt.Errorf("flush history: %w", err)
	}
	return nil
}

// AppendJSON appends the JSON encoding of op (without a newline) to b.
func AppendJSON(b []byte, op *Op) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, op.Index, 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, op.Time, 10)
	b = append(b, `,"type":"`...)
	b = append(b, op.Type.String()...)
	b = append(b, `","process":`...)
	if op.Process.IsNemesis() {
		b = append(b, `"nemesis"`...)
	} else {
		b = strconv.AppendInt(b, int64(op.Process), 10)
	}
	b = append(b, `,"f":`...)
	b = appendString(b, op.F)
	b = append(b, `,"value":`...)
	b = AppendValue(b, op.Value)
	if op.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, op.Error)
	}
	if op.Node != "" {
		b = append(b, `,"node":`...)
		b = appendString(b, op.Node)
	}
	return append(b, '}')
}

// AppendValue appends the JSON encoding of an op value to b. Values of types
// outside the documented set are encoded with encoding/json.
func AppendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case string:
		return appendString(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendValue(b, e)
		}
		return append(b, ']')
	case []int64:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, e, 10)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = AppendValue(b, x[k])
		}
		return append(b, '}')
	default:
		enc, err := json.Marshal(x)
		if err != nil {
			return appendString(b, fmt.Sprint(x))
		}
		return append(b, enc...)
	}
}

func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Reader reads a JSON-lines history one op at a time.
type Reader struct {
	sc   *bufio.Scanner
	line int
	n    int64 // ops returned so far
}

// NewReader returns a Reader over r. Lines may be up to 64 MiB long.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	return &Reader{sc: sc}
}

// Next returns the next op, or io.EOF after the last one. Blank lines are
// skipped. Errors name the line number.
func (hr *Reader) Next() (Op, error) {
	for hr.sc.Scan() {
		hr.line++
		line := bytes.TrimSpace(hr.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		op, err := ParseJSON(line)
		if err != nil {
			return Op{}, fmt.Errorf("line %d: %w", hr.line, err)
		}
		if op.Index < 0 {
			op.Index = hr.n
		}
		hr.n++
		return op, nil
	}
	if err := hr.sc.Err(); err != nil {
		return Op{}, fmt.Errorf("line %d: %w", hr.line+1, err)
	}
	return Op{}, io.EOF
}

// ReadAll reads every op from r: JSON lines, or one JSON array of op objects
// (the shape elle-cli's test data uses).
func ReadAll(r io.Reader) ([]Op, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("read history: %w", err)
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n' {
			_, _ = br.ReadByte()
			continue
		}
		if b[0] == '[' {
			return readJSONArray(br)
		}
		break
	}
	hr := NewReader(br)
	var ops []Op
	for {
		op, err := hr.Next()
		if errors.Is(err, io.EOF) {
			return ops, nil
		}
		if err != nil {
			return ops, err
		}
		ops = append(ops, op)
	}
}

func readJSONArray(r io.Reader) ([]Op, error) {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("read history array: %w", err)
	}
	var ops []Op
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ops, fmt.Errorf("history array element %d: %w", len(ops), err)
		}
		op, err := ParseJSON(raw)
		if err != nil {
			return ops, fmt.Errorf("history array element %d: %w", len(ops), err)
		}
		if op.Index < 0 {
			op.Index = int64(len(ops))
		}
		ops = append(ops, op)
	}
	if _, err := dec.Token(); err != nil {
		return ops, fmt.Errorf("read history array: %w", err)
	}
	return ops, nil
}

// ParseJSON decodes one op from a JSON object.
func ParseJSON(data []byte) (Op, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return Op{}, fmt.Errorf("decode op: %w", err)
	}
	if dec.More() {
		return Op{}, errors.New("decode op: trailing data after object")
	}
	var op Op
	var err error
	if v, ok := raw["index"]; ok && v != nil {
		if op.Index, err = intField("index", v); err != nil {
			return Op{}, err
		}
	} else {
		op.Index = -1
	}
	if v, ok := raw["time"]; ok && v != nil {
		if op.Time, err = intField("time", v); err != nil {
			return Op{}, err
		}
	}
	ts, ok := raw["type"].(string)
	if !ok {
		return Op{}, fmt.Errorf("field type: missing or not a string")
	}
	if op.Type, err = ParseType(ts); err != nil {
		return Op{}, fmt.Errorf("field type: %w", err)
	}
	switch p := raw["process"].(type) {
	case string:
		if p != "nemesis" {
			return Op{}, fmt.Errorf("field process: %q is neither an integer nor \"nemesis\"", p)
		}
		op.Process = NemesisProcess
	case json.Number:
		n, err := p.Int64()
		if err != nil || n < 0 {
			return Op{}, fmt.Errorf("field process: %s is not a non-negative integer", p)
		}
		op.Process = Process(n)
	default:
		return Op{}, fmt.Errorf("field process: missing or not an integer")
	}
	if f, ok := raw["f"]; ok && f != nil {
		s, ok := f.(string)
		if !ok {
			return Op{}, fmt.Errorf("field f: not a string")
		}
		op.F = s
	}
	op.Value = normalize(raw["value"])
	if e, ok := raw["error"]; ok && e != nil {
		if s, ok := e.(string); ok {
			op.Error = s
		} else {
			op.Error = string(AppendValue(nil, normalize(e)))
		}
	}
	if n, ok := raw["node"].(string); ok {
		op.Node = n
	}
	return op, nil
}

func intField(name string, v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("field %s: not a number", name)
	}
	i, err := n.Int64()
	if err != nil {
		return 0, fmt.Errorf("field %s: %s is not an integer", name, n)
	}
	return i, nil
}

// normalize turns json.Number into int64 (or float64 when not integral).
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
		return x
	}
	return v
}
