package history

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"unicode/utf8"
)

// Jepsen writes histories as EDN: history.edn holds one op map per line,
// and Knossos's data files hold one vector (or list) of op maps. EDN values decode to
// the same Go types as JSON ones: keywords and symbols become strings
// without the colon, vectors, lists and sets become []any, maps become
// map[string]any (keys are turned into strings: 1 -> "1"), characters
// become one-character strings, and a tagged literal such as #inst "..."
// becomes its value with the tag dropped.

// ParseEDN decodes exactly one EDN value.
func ParseEDN(data []byte) (any, error) {
	p := ednParser{b: data}
	v, ok, err := p.value(0)
	if err == nil && !ok {
		err = p.errorf("no value")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p.ws()
	if p.i < len(p.b) {
		return nil, fmt.Errorf("%w: trailing data at byte %d", ErrMalformed, p.i)
	}
	return v, nil
}

// ParseEDNOp decodes one op from an EDN map such as
// {:type :invoke, :f :read, :value nil, :process 0, :time 12, :index 0}.
// Unknown keys are ignored; a missing :index is -1. An op with a :key
// (porcupine's kv logs) gets the value [key, value], Jepsen's
// independent-key tuple.
func ParseEDNOp(data []byte) (Op, error) {
	v, err := ParseEDN(data)
	if err != nil {
		return Op{}, err
	}
	op, hasProcess, err := opFromMap(v)
	if err == nil && !hasProcess {
		err = fmt.Errorf("field process: missing")
	}
	if err != nil {
		return Op{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return op, nil
}

// opFromMap decodes an op map and says whether it named its process.
func opFromMap(v any) (op Op, hasProcess bool, err error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Op{}, false, fmt.Errorf("op is %s, not a map", AppendValue(nil, v))
	}
	op = Op{Index: -1}
	var fs fieldSet
	for _, name := range [...]string{"index", "time", "type", "process", "f", "value", "error", "node"} {
		if x, ok := m[name]; ok {
			if err := fs.set(&op, name, x); err != nil {
				return Op{}, false, err
			}
		}
	}
	if k, ok := m["key"]; ok {
		op.Value = []any{k, op.Value}
	}
	if !fs.typ {
		return Op{}, false, fmt.Errorf("field type: missing")
	}
	return op, fs.process, nil
}

// ImplicitProcessBase is the first process number given to ops that name
// no process. Such ops get processes of their own, far above any that a
// history names: an invocation without a process opens an operation on a
// fresh process; a completion without a process completes the oldest open
// such invocation of the same f, or else stands for a whole operation, and
// an invocation (with the completion's f and value) is put right before
// it. Elle's example histories, which list only completions, read so as
// one operation per process.
const ImplicitProcessBase Process = 1 << 60

type ednParser struct {
	b []byte
	i int
}

func (p *ednParser) errorf(format string, a ...any) error {
	return fmt.Errorf("byte %d: %s", p.i, fmt.Sprintf(format, a...))
}

// ws skips whitespace, commas and comments.
func (p *ednParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r', ',', '\f':
			p.i++
		case ';':
			for p.i < len(p.b) && p.b[p.i] != '\n' {
				p.i++
			}
		default:
			return
		}
	}
}

// isDelim reports whether c ends a token.
func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', '\f', '(', ')', '[', ']', '{', '}', '"', ';':
		return true
	}
	return false
}

func (p *ednParser) token() []byte {
	start := p.i
	for p.i < len(p.b) && !isDelim(p.b[p.i]) {
		p.i++
	}
	return p.b[start:p.i]
}

// value decodes the next form. ok is false when the form was discarded
// (#_) or the input ended before any form.
func (p *ednParser) value(depth int) (v any, ok bool, err error) {
	if depth > maxDepth {
		return nil, false, p.errorf("values nested deeper than %d", maxDepth)
	}
	p.ws()
	if p.i >= len(p.b) {
		return nil, false, nil
	}
	c := p.b[p.i]
	switch {
	case c == '"':
		s, err := p.str()
		return s, err == nil, err
	case c == '(':
		p.i++
		l, err := p.seq(')', depth)
		return l, err == nil, err
	case c == '[':
		p.i++
		l, err := p.seq(']', depth)
		return l, err == nil, err
	case c == '{':
		p.i++
		m, err := p.mapping(depth)
		return m, err == nil, err
	case c == ')' || c == ']' || c == '}':
		return nil, false, p.errorf("unexpected %q", c)
	case c == '\\':
		s, err := p.char()
		return s, err == nil, err
	case c == '#':
		return p.dispatch(depth)
	case c == ':':
		p.i++
		t := p.token()
		if len(t) == 0 {
			return nil, false, p.errorf("empty keyword")
		}
		return intern(t), true, nil
	case isDigit(c) || ((c == '-' || c == '+') && p.i+1 < len(p.b) && isDigit(p.b[p.i+1])):
		n, err := p.number()
		return n, err == nil, err
	default:
		t := p.token()
		if len(t) == 0 {
			return nil, false, p.errorf("unexpected %q", c)
		}
		switch string(t) {
		case "nil":
			return nil, true, nil
		case "true":
			return true, true, nil
		case "false":
			return false, true, nil
		}
		return intern(t), true, nil
	}
}

// dispatch handles forms that start with '#': sets, discards and tagged
// literals.
func (p *ednParser) dispatch(depth int) (any, bool, error) {
	p.i++
	if p.i >= len(p.b) {
		return nil, false, p.errorf("lone '#' at the end of input")
	}
	switch p.b[p.i] {
	case '{':
		p.i++
		l, err := p.seq('}', depth)
		return l, err == nil, err
	case '_':
		p.i++
		// #_ drops the next form; in #_#_ a b the inner one yields no
		// form, so the outer one drops b.
		for {
			start := p.i
			_, ok, err := p.value(depth + 1)
			if err != nil {
				return nil, false, err
			}
			if ok {
				return nil, false, nil
			}
			if p.i == start || p.i >= len(p.b) {
				return nil, false, p.errorf("#_ discards nothing")
			}
		}
	}
	// A tagged literal (#inst "...", #uuid "...", or a record such as
	// #jepsen.history.Op{...}): keep the value, drop the tag.
	if tag := p.token(); len(tag) == 0 {
		return nil, false, p.errorf("invalid dispatch character %q", p.b[p.i])
	}
	v, ok, err := p.value(depth + 1)
	if err == nil && !ok {
		err = p.errorf("tag without a value")
	}
	return v, ok, err
}

func (p *ednParser) seq(end byte, depth int) ([]any, error) {
	l := []any{}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.errorf("unexpected end of input, want %q", end)
		}
		if p.b[p.i] == end {
			p.i++
			return l, nil
		}
		v, ok, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if ok {
			l = append(l, v)
		}
	}
}

func (p *ednParser) mapping(depth int) (map[string]any, error) {
	l, err := p.seq('}', depth)
	if err != nil {
		return nil, err
	}
	if len(l)%2 != 0 {
		return nil, p.errorf("map with an odd number of forms")
	}
	m := make(map[string]any, len(l)/2)
	for i := 0; i < len(l); i += 2 {
		m[mapKey(l[i])] = l[i+1]
	}
	return m, nil
}

// mapKey turns an EDN map key into a string: keywords, symbols and strings
// are themselves, numbers their decimal text, anything else its JSON text.
func mapKey(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return "nil"
	}
	return string(AppendValue(nil, k))
}

func (p *ednParser) str() (string, error) {
	p.i++
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '"' && p.b[p.i] != '\\' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '"' {
		p.i++
		return string(p.b[start : p.i-1]), nil
	}
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			return string(out), nil
		}
		if c != '\\' {
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
		case '"', '\\':
			out = append(out, e)
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'u':
			r, ok := hexRune(p.b[p.i:])
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			p.i += 4
			out = utf8.AppendRune(out, r)
		default:
			return "", p.errorf("invalid escape \\%c", e)
		}
	}
	return "", p.errorf("unterminated string")
}

func hexRune(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	r, err := strconv.ParseUint(string(b[:4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(r), true
}

// char decodes a character literal: \a, \newline, \space, \tab, \return,
// \uXXXX.
func (p *ednParser) char() (string, error) {
	p.i++
	if p.i >= len(p.b) {
		return "", p.errorf("lone '\\' at the end of input")
	}
	// The first character belongs to the literal even when it is a
	// delimiter, as in \( or \,.
	_, size := utf8.DecodeRune(p.b[p.i:])
	start := p.i
	p.i += size
	for p.i < len(p.b) && !isDelim(p.b[p.i]) {
		p.i++
	}
	name := p.b[start:p.i]
	switch string(name) {
	case "newline":
		return "\n", nil
	case "space":
		return " ", nil
	case "tab":
		return "\t", nil
	case "return":
		return "\r", nil
	case "formfeed":
		return "\f", nil
	case "backspace":
		return "\b", nil
	}
	if len(name) == 5 && name[0] == 'u' {
		if r, ok := hexRune(name[1:]); ok {
			return string(r), nil
		}
	}
	if size == len(name) {
		return string(name), nil
	}
	return "", p.errorf("invalid character literal \\%s", name)
}

// number decodes integers (with an optional N suffix), decimals (with an
// optional M suffix) and ratios such as 1/3.
func (p *ednParser) number() (any, error) {
	start := p.i
	t := p.token()
	s := string(t)
	if n := len(s); n > 1 && (s[n-1] == 'N' || s[n-1] == 'M') {
		s = s[:n-1]
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return f, nil // out of range is ±Inf or 0, as the reader would give
	}
	if r, ok := new(big.Rat).SetString(s); ok {
		f, _ := r.Float64()
		return f, nil
	}
	p.i = start
	return nil, p.errorf("invalid number %q", t)
}

// EDNReader reads ops from a Jepsen EDN history: either one op map per
// top-level form (history.edn) or a single vector or list of op maps
// (Knossos data files). It holds one op's text at a time. Ops without a
// process are given one as ImplicitProcessBase describes.
type EDNReader struct {
	r      *bufio.Reader
	line   int
	n      int64
	vector int  // 0 unknown, 1 inside the top-level vector or list, 2 per-form file
	closer byte // the top-level collection's closing bracket
	done   bool
	buf    []byte

	// Ops without a process: the next fresh process, the open
	// invocations of each f (oldest first), and an op to return next.
	implicit Process
	open     map[string][]Process
	pending  []Op
}

// NewEDNReader returns an EDNReader over r.
func NewEDNReader(r io.Reader) *EDNReader {
	return &EDNReader{r: bufio.NewReaderSize(r, 64<<10), line: 1}
}

func (er *EDNReader) readByte() (byte, error) {
	c, err := er.r.ReadByte()
	if c == '\n' && err == nil {
		er.line++
	}
	return c, err
}

// skip consumes whitespace, commas and comments, and returns the next byte
// without consuming it.
func (er *EDNReader) skip() (byte, error) {
	for {
		b, err := er.r.Peek(1)
		if err != nil {
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\n', '\r', ',', '\f':
			_, _ = er.readByte()
		case ';':
			for {
				c, err := er.readByte()
				if err != nil {
					return 0, err
				}
				if c == '\n' {
					break
				}
			}
		default:
			return b[0], nil
		}
	}
}

// Next returns the next op, or io.EOF after the last one. Errors name the
// line where the offending form starts.
func (er *EDNReader) Next() (Op, error) {
	if len(er.pending) > 0 {
		op := er.pending[0]
		er.pending = er.pending[1:]
		return op, nil
	}
	for {
		if er.done {
			return Op{}, io.EOF
		}
		c, err := er.skip()
		if errors.Is(err, io.EOF) {
			if er.vector == 1 {
				kind := map[byte]string{']': "vector", ')': "list"}[er.closer]
				return Op{}, fmt.Errorf("line %d: %w: unterminated %s of ops", er.line, ErrMalformed, kind)
			}
			er.done = true
			return Op{}, io.EOF
		}
		if err != nil {
			return Op{}, fmt.Errorf("line %d: read history: %w", er.line, err)
		}
		if er.vector == 0 {
			er.vector = 2
			if c == '[' || c == '(' {
				_, _ = er.readByte()
				er.vector = 1
				er.closer = map[byte]byte{'[': ']', '(': ')'}[c]
				continue
			}
		}
		if er.vector == 1 && c == er.closer {
			_, _ = er.readByte()
			er.done = true
			if err := er.trailing(); err != nil {
				return Op{}, err
			}
			return Op{}, io.EOF
		}
		line := er.line
		if err := er.form(); err != nil {
			return Op{}, fmt.Errorf("line %d: %w", line, err)
		}
		p := ednParser{b: er.buf}
		v, ok, err := p.value(0)
		if err != nil {
			return Op{}, fmt.Errorf("line %d: %w: %w", line, ErrMalformed, err)
		}
		if p.ws(); p.i < len(p.b) {
			return Op{}, fmt.Errorf("line %d: %w: unexpected data at byte %d of the form", line, ErrMalformed, p.i)
		}
		if !ok {
			continue // a discarded (#_) form
		}
		op, hasProcess, err := opFromMap(v)
		if err != nil {
			return Op{}, fmt.Errorf("line %d: %w: %w", line, ErrMalformed, err)
		}
		if !hasProcess {
			if inv, ok := er.assignProcess(&op); ok {
				er.pending = append(er.pending, op)
				return inv, nil
			}
		}
		er.number(&op)
		return op, nil
	}
}

// number gives op the next position as its index unless it has one.
func (er *EDNReader) number(op *Op) {
	if op.Index < 0 {
		op.Index = er.n
	}
	er.n++
}

// assignProcess gives op, which named no process, one by the rule of
// ImplicitProcessBase. It returns the invocation to put before op when op
// is a completion that stands for a whole operation.
func (er *EDNReader) assignProcess(op *Op) (Op, bool) {
	if er.open == nil {
		er.open = make(map[string][]Process)
		er.implicit = ImplicitProcessBase
	}
	if op.Type == Invoke {
		op.Process = er.implicit
		er.implicit++
		er.open[op.F] = append(er.open[op.F], op.Process)
		return Op{}, false
	}
	if q := er.open[op.F]; len(q) > 0 {
		op.Process = q[0]
		if len(q) == 1 {
			delete(er.open, op.F)
		} else {
			er.open[op.F] = q[1:]
		}
		return Op{}, false
	}
	op.Process = er.implicit
	er.implicit++
	inv := Op{Index: -1, Time: op.Time, Type: Invoke, Process: op.Process, F: op.F, Value: op.Value}
	er.number(&inv)
	er.number(op)
	return inv, true
}

func (er *EDNReader) trailing() error {
	_, err := er.skip()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("line %d: read history: %w", er.line, err)
	}
	return fmt.Errorf("line %d: %w: data after the vector of ops", er.line, ErrMalformed)
}

// Tag states of form: a form that starts with '#' (a tag or #_) takes the
// form after it along.
const (
	untagged = iota
	inTag    // reading the tag's name
	afterTag // between the tag's name and its form
)

// form reads the text of one form into er.buf, tracking strings, character
// literals and comments so that brackets inside them do not count.
func (er *EDNReader) form() error {
	er.buf = er.buf[:0]
	depth := 0
	inString, escaped := false, false
	tag := untagged
	for {
		b, err := er.r.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if inString || depth > 0 || tag != untagged {
					return fmt.Errorf("%w: unterminated form", ErrMalformed)
				}
				return nil
			}
			return fmt.Errorf("read history: %w", err)
		}
		c := b[0]
		if !inString && depth == 0 && len(er.buf) > 0 {
			last := er.buf[len(er.buf)-1]
			switch tag {
			case inTag:
				if isDelim(c) {
					tag = afterTag
				}
			case afterTag:
				switch {
				case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
				case c == '#':
					tag = inTag // a tag on the tagged form
					_, _ = er.readByte()
					er.buf = append(er.buf, c)
					continue
				default:
					// The tagged form starts here; an atom
					// ends at the next delimiter as any atom.
					tag = untagged
				}
			default:
				// An atom ends at a delimiter; a collection has ended
				// when its closing bracket brought depth back to 0.
				if isDelim(c) || last == ')' || last == ']' || last == '}' {
					return nil
				}
			}
		}
		_, _ = er.readByte()
		er.buf = append(er.buf, c)
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if depth == 0 && tag == untagged {
					return nil
				}
			}
		case c == '"':
			inString = true
			tag = untagged
		case c == '\\':
			// A character literal: its first character is never a
			// bracket or quote that counts.
			n, err := er.readByte()
			if err != nil {
				return fmt.Errorf("%w: lone '\\' at the end of input", ErrMalformed)
			}
			er.buf = append(er.buf, n)
		case c == ';':
			for {
				n, err := er.readByte()
				if err != nil || n == '\n' {
					break
				}
			}
			er.buf = append(er.buf, '\n')
		case c == '#' && depth == 0 && len(er.buf) == 1:
			tag = inTag
		case c == '(' || c == '[' || c == '{':
			depth++
			tag = untagged
			if depth > maxDepth {
				return fmt.Errorf("%w: forms nested deeper than %d", ErrMalformed, maxDepth)
			}
		case c == ')' || c == ']' || c == '}':
			if depth == 0 {
				return fmt.Errorf("%w: unexpected %q", ErrMalformed, c)
			}
			depth--
		}
	}
}

// ReadEDN reads every op of a Jepsen EDN history.
func ReadEDN(r io.Reader) ([]Op, error) {
	er := NewEDNReader(r)
	var ops []Op
	for {
		op, err := er.Next()
		if errors.Is(err, io.EOF) {
			return ops, nil
		}
		if err != nil {
			return ops, err
		}
		ops = append(ops, op)
	}
}
