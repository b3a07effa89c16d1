package history

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// FormatJepsenLog is the text log Jepsen's older tests wrote (jepsen.log),
// one event per line: "INFO  jepsen.util - 3\t:invoke\t:cas\t[1 2]".
const FormatJepsenLog = "jepsen-log"

// jepsenLogMarker starts the event part of a Jepsen log line.
var jepsenLogMarker = []byte("jepsen.util - ")

// ReadJepsenLog reads the ops of a Jepsen text log: after "jepsen.util - "
// each line holds the process, the type, the f and the value (EDN),
// separated by runs of blanks; the value runs to the end of the line.
// Lines without the marker (other loggers) and blank lines are skipped;
// a line with the marker that does not parse is an error naming the line.
func ReadJepsenLog(r io.Reader) ([]Op, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var ops []Op
	for line := 1; ; line++ {
		text, err := br.ReadBytes('\n')
		if len(text) > 0 {
			op, ok, perr := parseJepsenLogLine(text)
			if perr != nil {
				return ops, fmt.Errorf("line %d: %w: %w", line, ErrMalformed, perr)
			}
			if ok {
				op.Index = int64(len(ops))
				ops = append(ops, op)
			}
		}
		if errors.Is(err, io.EOF) {
			return ops, nil
		}
		if err != nil {
			return ops, fmt.Errorf("line %d: read history: %w", line, err)
		}
	}
}

func parseJepsenLogLine(text []byte) (Op, bool, error) {
	at := bytes.Index(text, jepsenLogMarker)
	if at < 0 {
		return Op{}, false, nil
	}
	rest := text[at+len(jepsenLogMarker):]
	var fields [3][]byte
	for i := range fields {
		rest = bytes.TrimLeft(rest, " \t")
		end := bytes.IndexAny(rest, " \t\r\n")
		if end < 0 {
			end = len(rest)
		}
		fields[i], rest = rest[:end], rest[end:]
		if len(fields[i]) == 0 {
			return Op{}, false, errors.New("want process, type, f and value after \"jepsen.util - \"")
		}
	}
	value := bytes.TrimSpace(rest)
	if len(value) == 0 {
		return Op{}, false, errors.New("no value after the f")
	}
	var op Op
	switch p := string(fields[0]); p {
	case ":nemesis", "nemesis":
		op.Process = NemesisProcess
	default:
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return Op{}, false, fmt.Errorf("process %q is neither a non-negative integer nor :nemesis", p)
		}
		op.Process = Process(n)
	}
	t, err := ParseType(string(bytes.TrimPrefix(fields[1], []byte(":"))))
	if err != nil {
		return Op{}, false, err
	}
	op.Type = t
	op.F = string(bytes.TrimPrefix(fields[2], []byte(":")))
	v, err := ParseEDN(value)
	if err != nil {
		return Op{}, false, fmt.Errorf("value: %w", err)
	}
	op.Value = v
	return op, true, nil
}
