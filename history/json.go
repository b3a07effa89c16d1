package history

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of decoded values, so hostile input cannot
// exhaust the stack.
const maxDepth = 512

// ParseJSON decodes one op from a JSON object. Unknown fields are ignored;
// a missing index is -1 (readers replace it with the op's position).
// Errors wrap ErrMalformed.
func ParseJSON(data []byte) (Op, error) {
	return parseJSON(data, nil)
}

// parseJSON is ParseJSON with a scratch stack for array elements that a
// reader reuses from op to op.
func parseJSON(data []byte, stack *[]any) (Op, error) {
	p := jsonParser{b: data}
	if stack != nil {
		p.stack = (*stack)[:0]
		defer func() { *stack = p.stack[:0] }()
	}
	op, err := p.op()
	if err != nil {
		return Op{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p.ws()
	if p.i < len(p.b) {
		return Op{}, fmt.Errorf("%w: trailing data after the op object at byte %d", ErrMalformed, p.i)
	}
	return op, nil
}

// ParseJSONValue decodes one JSON value into nil, bool, int64 (integral
// numbers that fit), float64, string, []any or map[string]any.
func ParseJSONValue(data []byte) (any, error) {
	p := jsonParser{b: data}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p.ws()
	if p.i < len(p.b) {
		return nil, fmt.Errorf("%w: trailing data at byte %d", ErrMalformed, p.i)
	}
	return v, nil
}

// jsonParser is a small JSON decoder over a byte slice. It exists because
// histories have millions of ops and encoding/json's map decoding costs
// several times more time and allocations per op.
type jsonParser struct {
	b []byte
	i int
	// stack holds the elements of the arrays being parsed, so that each
	// array is allocated once at its exact length rather than grown.
	stack []any
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) errorf(format string, a ...any) error {
	return fmt.Errorf("byte %d: %s", p.i, fmt.Sprintf(format, a...))
}

func (p *jsonParser) expect(c byte) error {
	p.ws()
	if p.i >= len(p.b) {
		return p.errorf("unexpected end of input, want %q", c)
	}
	if p.b[p.i] != c {
		return p.errorf("unexpected %q, want %q", p.b[p.i], c)
	}
	p.i++
	return nil
}

// op decodes the top-level object field by field, without building a map.
func (p *jsonParser) op() (Op, error) {
	op := Op{Index: -1}
	var f fieldSet
	if err := p.expect('{'); err != nil {
		return op, err
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return op, f.complete()
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return op, p.errorf("want a field name")
		}
		key, _, err := p.rawString()
		if err != nil {
			return op, err
		}
		if err := p.expect(':'); err != nil {
			return op, err
		}
		p.ws()
		name := fieldName(key) // "" for fields we skip
		switch name {
		case "index", "time", "process":
			if p.i < len(p.b) && (p.b[p.i] == '-' || isDigit(p.b[p.i])) {
				if n, ok := p.int(); ok {
					if err := f.setInt(&op, name, n); err != nil {
						return op, err
					}
					goto next
				}
			}
		}
		{
			v, err := p.value(0)
			if err != nil {
				return op, fmt.Errorf("field %s: %w", key, err)
			}
			if name != "" {
				if err := f.set(&op, name, v); err != nil {
					return op, err
				}
			}
		}
	next:
		p.ws()
		if p.i >= len(p.b) {
			return op, p.errorf("unexpected end of input in the op object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return op, f.complete()
		default:
			return op, p.errorf("unexpected %q after a field, want ',' or '}'", p.b[p.i])
		}
	}
}

// fieldName returns the op field named by key without allocating, or "".
func fieldName(key []byte) string {
	switch string(key) {
	case "index":
		return "index"
	case "time":
		return "time"
	case "type":
		return "type"
	case "process":
		return "process"
	case "f":
		return "f"
	case "value":
		return "value"
	case "error":
		return "error"
	case "node":
		return "node"
	}
	return ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// int parses an integer that is not followed by a fraction or exponent; it
// leaves p.i unchanged and returns false otherwise.
func (p *jsonParser) int() (int64, bool) {
	start := p.i
	j := p.i
	neg := false
	if j < len(p.b) && p.b[j] == '-' {
		neg = true
		j++
	}
	if j >= len(p.b) || !isDigit(p.b[j]) {
		return 0, false
	}
	var n uint64
	digits := 0
	for j < len(p.b) && isDigit(p.b[j]) {
		n = n*10 + uint64(p.b[j]-'0')
		digits++
		j++
	}
	if digits > 18 || (digits > 1 && p.b[j-digits] == '0') || (j < len(p.b) && (p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E')) {
		p.i = start
		return 0, false
	}
	p.i = j
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

func (p *jsonParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, p.errorf("values nested deeper than %d", maxDepth)
	}
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end of input, want a value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		b, raw, err := p.rawString()
		if err != nil {
			return nil, err
		}
		if raw {
			return intern(b), nil
		}
		return string(b), nil
	case c == '{':
		p.i++
		m := make(map[string]any)
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return m, nil
		}
		for {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, p.errorf("want an object key")
			}
			kb, _, err := p.rawString()
			if err != nil {
				return nil, err
			}
			k := string(kb)
			if err := p.expect(':'); err != nil {
				return nil, err
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
			p.ws()
			if p.i >= len(p.b) {
				return nil, p.errorf("unexpected end of input in an object")
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == '}' {
				p.i++
				return m, nil
			}
			return nil, p.errorf("unexpected %q in an object, want ',' or '}'", p.b[p.i])
		}
	case c == '[':
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return []any{}, nil
		}
		base := len(p.stack)
		pop := func() []any {
			l := slices.Clone(p.stack[base:])
			clear(p.stack[base:])
			p.stack = p.stack[:base]
			return l
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			p.stack = append(p.stack, v)
			p.ws()
			if p.i >= len(p.b) {
				return nil, p.errorf("unexpected end of input in an array")
			}
			if p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.b[p.i] == ']' {
				p.i++
				return pop(), nil
			}
			return nil, p.errorf("unexpected %q in an array, want ',' or ']'", p.b[p.i])
		}
	case c == '-' || isDigit(c):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.errorf("unexpected %q, want a value", c)
	}
}

func (p *jsonParser) literal(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return p.errorf("invalid literal, want %s", s)
	}
	p.i += len(s)
	return nil
}

// number parses a JSON number: int64 when integral and in range, float64
// otherwise.
func (p *jsonParser) number() (any, error) {
	if n, ok := p.int(); ok {
		return n, nil
	}
	start := p.i
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	digits := func() int {
		k := j
		for j < len(p.b) && isDigit(p.b[j]) {
			j++
		}
		return j - k
	}
	if n := digits(); n == 0 || (n > 1 && p.b[j-n] == '0') {
		return nil, p.errorf("invalid number")
	}
	integral := true
	if j < len(p.b) && p.b[j] == '.' {
		j++
		integral = false
		if digits() == 0 {
			return nil, p.errorf("invalid number: no digits after '.'")
		}
	}
	if j < len(p.b) && (p.b[j] == 'e' || p.b[j] == 'E') {
		j++
		integral = false
		if j < len(p.b) && (p.b[j] == '+' || p.b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number: no digits in the exponent")
		}
	}
	text := string(p.b[start:j])
	p.i = j
	if integral {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("byte %d: invalid number %s", start, text)
	}
	return f, nil
}

// rawString parses a string at p.i. raw reports that the returned bytes
// alias the input (the string had no escapes); otherwise they are a fresh
// decoded copy.
func (p *jsonParser) rawString() (b []byte, raw bool, err error) {
	p.i++ // the opening quote
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			s := p.b[start : p.i-1]
			if !ascii && !utf8.Valid(s) {
				return validUTF8(nil, s), false, nil
			}
			return s, true, nil
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return nil, false, p.errorf("control character %#x in a string", c)
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return nil, false, p.errorf("unterminated string")
}

// validUTF8 appends s to b with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json decodes such strings.
func validUTF8(b, s []byte) []byte {
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return b
}

func (p *jsonParser) escapedString(start int) ([]byte, bool, error) {
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				out = validUTF8(nil, out)
			}
			return out, false, nil
		case c < 0x20:
			return nil, false, p.errorf("control character %#x in a string", c)
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			break
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, false, p.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair only when the next escape completes it; a
				// lone surrogate is U+FFFD, as encoding/json has it.
				d := utf8.RuneError
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					r2, ok := p.hex4()
					if ok {
						d = utf16.DecodeRune(r, r2)
					}
					if d == utf8.RuneError {
						p.i = save
					}
				}
				r = d
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, false, p.errorf("invalid escape \\%c", e)
		}
	}
	return nil, false, p.errorf("unterminated string")
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

// intern returns a shared copy of the strings every history repeats, so
// decoding them does not allocate.
func intern(b []byte) string {
	switch string(b) {
	case "invoke":
		return "invoke"
	case "ok":
		return "ok"
	case "fail":
		return "fail"
	case "info":
		return "info"
	case "nemesis":
		return "nemesis"
	case "read":
		return "read"
	case "write":
		return "write"
	case "cas":
		return "cas"
	case "txn":
		return "txn"
	case "append":
		return "append"
	case "r":
		return "r"
	case "w":
		return "w"
	case "get":
		return "get"
	case "put":
		return "put"
	case "transfer":
		return "transfer"
	case "start":
		return "start"
	case "stop":
		return "stop"
	case "timeout":
		return "timeout"
	}
	return string(b)
}
