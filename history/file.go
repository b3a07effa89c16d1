package history

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// History file formats accepted by ReadFile.
const (
	FormatJSONL = "jsonl" // JSON lines, or one JSON array of op objects
	FormatEDN   = "edn"   // Jepsen's history.edn, or a vector or list of op maps
)

// Formats lists the formats ReadFile accepts.
var Formats = []string{FormatJSONL, FormatEDN, FormatJepsenLog}

// ReadFile reads every op of the history at path. format is FormatJSONL,
// FormatEDN, FormatJepsenLog or "" to detect it from the file name's
// extension (.jsonl, .json, .edn) and otherwise from the first bytes.
func ReadFile(path, format string) ([]Op, error) {
	return ReadFileFunc(path, format, nil)
}

// SkipOp, returned by a ReadFileFunc hook, leaves the op out of the
// returned slice without stopping the read.
var SkipOp = errors.New("skip this op")

// ReadFileFunc is ReadFile with a hook: fn, when not nil, sees each op as
// it is read, before it joins the returned slice, and may take what it
// needs from the op and change it (a checker that keeps its own compact
// form of the values clears op.Value, so a history of millions of ops is
// never held twice), or keep it out of the slice by returning SkipOp.
// Any other error from fn stops the read and is returned.
func ReadFileFunc(path, format string, fn func(*Op) error) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	if format == "" {
		format = formatOfName(path)
	}
	if format == "" {
		format = sniff(br)
	}
	var ops []Op
	switch format {
	case FormatJSONL:
		size := int64(0)
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		ops, err = readAll(br, size, fn)
	case FormatEDN:
		ops, err = ReadEDN(br)
	case FormatJepsenLog:
		ops, err = ReadJepsenLog(br)
	default:
		return nil, fmt.Errorf("read history %s: unknown format %q (want jsonl, edn or jepsen-log)", path, format)
	}
	// The JSON-lines reader hands each op to fn as it decodes it; the
	// others read the whole history first.
	if err == nil && fn != nil && format != FormatJSONL {
		kept := ops[:0]
		for i := range ops {
			if err = fn(&ops[i]); errors.Is(err, SkipOp) {
				err = nil
				continue
			} else if err != nil {
				break
			}
			kept = append(kept, ops[i])
		}
		ops = kept
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ops, nil
}

func formatOfName(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".json", ".ndjson":
		return FormatJSONL
	case ".edn":
		return FormatEDN
	}
	return ""
}

// sniff tells a Jepsen text log by its marker in the first line, and JSON
// from EDN by the first key of the first op: JSON keys are strings,
// Jepsen's are keywords.
func sniff(br *bufio.Reader) string {
	head, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return FormatJSONL
	}
	return sniffBytes(head)
}

func sniffBytes(head []byte) string {
	first, _, _ := bytes.Cut(head, []byte("\n"))
	if bytes.Contains(first, jepsenLogMarker) {
		return FormatJepsenLog
	}
	for i := 0; i < len(head); i++ {
		switch head[i] {
		case ' ', '\t', '\r', '\n', ',', '[', '{':
			continue
		case '"':
			return FormatJSONL
		default:
			return FormatEDN
		}
	}
	return FormatJSONL
}
