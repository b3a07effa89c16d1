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
		if x == 0 {
			return append(b, '0') // not "-0", which decodes as the integer 0
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
	sc    *bufio.Scanner
	line  int
	n     int64 // ops returned so far
	stack []any // the parser's scratch, reused from line to line
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
		op, err := parseJSON(line, &hr.stack)
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
	return readAll(r, 0, nil)
}

// readAll is ReadAll with the hook of ReadFileFunc and, when size (the
// input's length in bytes) is known, a slice presized from the length of
// the first lines, so a large history is not copied at every growth.
func readAll(r io.Reader, size int64, fn func(*Op) error) ([]Op, error) {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 64<<10 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	skipped := 0 // leading blank lines, so error line numbers stay right
	for {
		b, err := br.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("read history: %w", err)
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n' {
			if b[0] == '\n' {
				skipped++
			}
			_, _ = br.ReadByte()
			continue
		}
		break
	}
	// The slice is sized for the whole input when the first op is kept,
	// so a hook that keeps nothing allocates nothing.
	var ops []Op
	sizeHint := estimateOps(br, size)
	add := func(op Op) error {
		if fn != nil {
			if err := fn(&op); errors.Is(err, SkipOp) {
				return nil
			} else if err != nil {
				return err
			}
		}
		if ops == nil {
			ops = make([]Op, 0, sizeHint)
		}
		ops = append(ops, op)
		return nil
	}
	if b, _ := br.Peek(1); b[0] == '[' {
		err := readJSONArray(br, skipped+1, add)
		return ops, err
	}
	hr := NewReader(br)
	hr.line = skipped
	for {
		op, err := hr.Next()
		if errors.Is(err, io.EOF) {
			return ops, nil
		}
		if err != nil {
			return ops, err
		}
		if err := add(op); err != nil {
			return ops, fmt.Errorf("line %d: %w", hr.line, err)
		}
	}
}

// estimateOps guesses how many ops an input of size bytes holds from the
// lines buffered so far, erring high by a little: a slice that must grow
// once costs a copy of the whole history.
func estimateOps(br *bufio.Reader, size int64) int {
	if size <= 0 {
		return 0
	}
	head, _ := br.Peek(br.Size())
	lines := bytes.Count(head, []byte{'\n'})
	if lines < 16 || len(head) == 0 {
		return 0
	}
	perLine := float64(len(head)) / float64(lines)
	n := float64(size)/perLine*1.05 + 16
	if n > 1<<31 {
		return 0
	}
	return int(n)
}

// readJSONArray reads a JSON array of op objects element by element, so
// that only one element's bytes are held at a time, passing each to add.
func readJSONArray(br *bufio.Reader, line int, add func(Op) error) error {
	if _, err := br.ReadByte(); err != nil { // the '['
		return fmt.Errorf("read history array: %w", err)
	}
	n := 0 // elements read
	var buf []byte
	next := func() (byte, error) {
		c, err := br.ReadByte()
		if c == '\n' {
			line++
		}
		return c, err
	}
	wantElem := true // after '[' or ','
	for {
		c, err := next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("line %d: %w: unterminated history array", line, ErrMalformed)
			}
			return fmt.Errorf("line %d: read history array: %w", line, err)
		}
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == ']' && (!wantElem || n == 0):
			return trailing(br, line)
		case c == ',' && !wantElem:
			wantElem = true
			continue
		case c == '{' && wantElem:
		default:
			return fmt.Errorf("line %d: %w: unexpected %q in the history array", line, ErrMalformed, c)
		}
		startLine := line
		buf, err = appendObject(buf[:0], br, &line)
		if err != nil {
			return fmt.Errorf("line %d: array element %d: %w", startLine, n, err)
		}
		op, err := ParseJSON(buf)
		if err != nil {
			return fmt.Errorf("line %d: array element %d: %w", startLine, n, err)
		}
		if op.Index < 0 {
			op.Index = int64(n)
		}
		if err := add(op); err != nil {
			return fmt.Errorf("line %d: array element %d: %w", startLine, n, err)
		}
		n++
		wantElem = false
	}
}

// appendObject appends to buf the bytes of the JSON object whose '{' was
// just read, up to its matching '}'.
func appendObject(buf []byte, br *bufio.Reader, line *int) ([]byte, error) {
	buf = append(buf, '{')
	depth := 1
	inString, escaped := false, false
	for depth > 0 {
		c, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return buf, fmt.Errorf("%w: unterminated object", ErrMalformed)
			}
			return buf, fmt.Errorf("read history array: %w", err)
		}
		if c == '\n' {
			*line++
		}
		buf = append(buf, c)
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return buf, fmt.Errorf("%w: values nested deeper than %d", ErrMalformed, maxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return buf, nil
}

// trailing checks that only whitespace follows the end of a history.
func trailing(br *bufio.Reader, line int) error {
	for {
		c, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: read history: %w", line, err)
		}
		switch c {
		case '\n':
			line++
		case ' ', '\t', '\r':
		default:
			return fmt.Errorf("line %d: %w: unexpected %q after the end of the history", line, ErrMalformed, c)
		}
	}
}
