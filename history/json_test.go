package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseJSON(t *testing.T) {
	cases := []struct {
		in   string
		want Op
	}{
		{`{"index":12,"time":1532000,"type":"invoke","process":3,"f":"txn","value":[["append",5,7],["r",6,null]]}`,
			Op{Index: 12, Time: 1532000, Type: Invoke, Process: 3, F: "txn",
				Value: []any{[]any{"append", int64(5), int64(7)}, []any{"r", int64(6), nil}}}},
		{`{"type":"ok","process":"nemesis","f":"start","value":{"n1":["n2","n3"]},"node":"n1"}`,
			Op{Index: -1, Type: Ok, Process: NemesisProcess, F: "start",
				Value: map[string]any{"n1": []any{"n2", "n3"}}, Node: "n1"}},
		{` { "process" : 0 , "type" : "fail" , "f" : "cas" , "value" : [ "k" , [ 1 , 2 ] ] , "error" : "timeout" } `,
			Op{Index: -1, Type: Fail, F: "cas", Value: []any{"k", []any{int64(1), int64(2)}}, Error: "timeout"}},
		{`{"process":1,"type":"info","f":"read","value":1.5,"error":{"kind":"net"},"extra":[1,{"a":"}"}]}`,
			Op{Index: -1, Type: Info, Process: 1, F: "read", Value: 1.5, Error: `{"kind":"net"}`}},
		{`{"process":1,"type":"ok","f":"read","value":["\u00e9\ud83d\ude00\n\"\\\/",true,false,-0,1e2,12345678901234567890,-9223372036854775808]}`,
			Op{Index: -1, Type: Ok, Process: 1, F: "read",
				Value: []any{"é😀\n\"\\/", true, false, int64(0), 100.0, 12345678901234567890.0, int64(-9223372036854775808)}}},
		{`{"index":null,"time":null,"process":2.0,"type":"ok","f":null,"value":{}}`,
			Op{Index: -1, Type: Ok, Process: 2, Value: map[string]any{}}},
		{`{"process":1,"type":"ok","f":"read","value":[]}`,
			Op{Index: -1, Type: Ok, Process: 1, F: "read", Value: []any{}}},
		{`{"process":1,"type":"ok","f":"r","value":"\ud800x"}`,
			Op{Index: -1, Type: Ok, Process: 1, F: "r", Value: "\ufffdx"}},
	}
	for _, tc := range cases {
		got, err := ParseJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("ParseJSON(%s): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseJSON(%s)\n got %#v\nwant %#v", tc.in, got, tc.want)
		}
	}
}

func TestParseJSONErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{``, "want '{'"},
		{`[]`, "want '{'"},
		{`{"process":1}`, "field type: missing"},
		{`{"type":"ok"}`, "field process: missing"},
		{`{"type":"done","process":1}`, `unknown op type "done"`},
		{`{"type":"ok","process":-1}`, "negative"},
		{`{"type":"ok","process":"n1"}`, `neither an integer nor "nemesis"`},
		{`{"type":"ok","process":1,"index":1.5}`, "field index"},
		{`{"type":"ok","process":1,"f":3}`, "field f"},
		{`{"type":"ok","process":1,"value":[1,2}`, "in an array"},
		{`{"type":"ok","process":1,"value":"abc}`, "unterminated string"},
		{`{"type":"ok","process":1,"value":01}`, "invalid number"},
		{`{"type":"ok","process":1,"value":tru}`, "invalid literal"},
		{`{"type":"ok","process":1} x`, "trailing data"},
		{`{"type":"ok","process":1,"value":"a` + "\x01" + `"}`, "control character"},
		{`{"type":"ok","process":1,"value":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, "nested deeper"},
	}
	for _, tc := range cases {
		_, err := ParseJSON([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseJSON(%.60s) = %v, want an error containing %q", tc.in, err, tc.want)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseJSON(%.60s): %v does not wrap ErrMalformed", tc.in, err)
		}
	}
}

// TestParseJSONMatchesStdlib decodes a sample history with both the
// hand-written decoder and the encoding/json one it replaced.
func TestParseJSONMatchesStdlib(t *testing.T) {
	for i, line := range bytes.Split(sampleHistory(500), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		got, err := ParseJSON(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		want, err := parseJSONStdlib(line)
		if err != nil {
			t.Fatalf("line %d: stdlib: %v", i+1, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("line %d: %s\n got %#v\nwant %#v", i+1, line, got, want)
		}
	}
}

func TestReadAllJSONLines(t *testing.T) {
	in := "\n" + `{"type":"invoke","process":0,"f":"read","value":null}` + "\n\n" +
		`{"type":"ok","process":0,"f":"read","value":3}` + "\n" +
		`{"index":7,"type":"invoke","process":1,"f":"write","value":4}` + "\n"
	ops, err := ReadAll(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 3 || ops[0].Index != 0 || ops[1].Index != 1 || ops[2].Index != 7 || ops[1].Value != int64(3) {
		t.Fatalf("ops = %+v", ops)
	}
	_, err = ReadAll(strings.NewReader(in + `{"type":"ok","process":1,"f":"write","value":4` + "\n"))
	if err == nil || !strings.Contains(err.Error(), "line 6:") || !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated line 6: err = %v, want a malformed error naming line 6", err)
	}
}

func TestReadAllJSONArray(t *testing.T) {
	in := ` [
	{"type":"invoke","process":0,"f":"read","value":"]}\"["},
	{"type":"ok","process":0,"f":"read","value":{"a":[1,{"b":2}]}}
	] `
	ops, err := ReadAll(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[0].Value != `]}"[` || ops[1].Index != 1 {
		t.Fatalf("ops = %+v", ops)
	}
	for _, bad := range []struct{ in, want string }{
		{`[{"type":"ok","process":0},]`, "unexpected ']'"},
		{`[{"type":"ok","process":0}`, "unterminated"},
		{"[\n{\"type\":\"ok\",\"process\":0},\n{\"type\":\"ok\"}]", "line 3: array element 1"},
		{`[1]`, "unexpected '1'"},
		{`[{"type":"ok","process":0}] x`, "after the end"},
	} {
		_, err := ReadAll(strings.NewReader(bad.in))
		if err == nil || !strings.Contains(err.Error(), bad.want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("ReadAll(%q) = %v, want a malformed error containing %q", bad.in, err, bad.want)
		}
	}
	if ops, err := ReadAll(strings.NewReader("[]")); err != nil || len(ops) != 0 {
		t.Errorf("ReadAll([]) = %v, %v", ops, err)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	ops := []Op{
		{Index: 0, Time: 5, Type: Invoke, Process: 2, F: "write", Value: []any{"k<&>", int64(3)}},
		{Index: 1, Time: 9, Type: Info, Process: 2, F: "write", Value: []any{"k<&>", int64(3)}, Error: "timeout", Node: "n1"},
		{Index: 2, Time: 10, Type: Info, Process: NemesisProcess, F: "start", Value: map[string]any{"x": 1.5}},
	}
	for i := range ops {
		if err := w.Write(&ops[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ops) {
		t.Fatalf("round trip\n got %#v\nwant %#v", got, ops)
	}
	js, err := json.Marshal(ops[1])
	if err != nil {
		t.Fatal(err)
	}
	var back Op
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, ops[1]) {
		t.Fatalf("json.Marshal/Unmarshal of an Op: %s -> %#v, %v", js, back, err)
	}
}

func TestReadFileFormats(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"h.jsonl": `{"type":"invoke","process":0,"f":"read","value":null}` + "\n" + `{"type":"ok","process":0,"f":"read","value":1}`,
		"h.edn":   "{:type :invoke, :process 0, :f :read, :value nil}\n{:type :ok, :process 0, :f :read, :value 1}",
		"a.json":  `[{"type":"invoke","process":0,"f":"read"},{"type":"ok","process":0,"f":"read","value":1}]`,
		"sniff1":  `{"type":"invoke","process":0,"f":"read"}` + "\n" + `{"type":"ok","process":0,"f":"read","value":1}`,
		"sniff2":  "; a comment\n[{:process 0 :type :invoke :f :read} {:process 0 :type :ok :f :read :value 1}]",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		ops, err := ReadFile(path, "")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(ops) != 2 || ops[1].Type != Ok || ops[1].Value != int64(1) || ops[1].F != "read" {
			t.Errorf("%s: ops = %+v", name, ops)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "h.jsonl"), "edn"); err == nil {
		t.Errorf("reading JSON as EDN succeeded")
	}
	if _, err := ReadFile(filepath.Join(dir, "h.jsonl"), "xml"); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), ""); err == nil {
		t.Errorf("missing file: no error")
	}
}

// sampleHistory generates n lines of a plausible mixed history: register
// ops, transactions and nemesis records.
func sampleHistory(n int) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for i := 0; i < n; i++ {
		op := Op{Index: int64(i), Time: int64(i) * 1234567, Process: Process(i % 20)}
		switch i % 10 {
		case 0, 1, 2:
			op.Type, op.F, op.Value = Invoke, "write", []any{int64(i % 100), int64(i)}
		case 3, 4:
			op.Type, op.F, op.Value = Ok, "read", []any{int64(i % 100), int64(i / 3)}
		case 5:
			op.Type, op.F, op.Value = Fail, "cas", []any{int64(i % 100), []any{int64(1), int64(2)}}
			op.Error = "precondition failed"
		case 6, 7:
			op.Type, op.F = Ok, "txn"
			op.Value = []any{[]any{"append", int64(i % 7), int64(i)}, []any{"r", int64(i % 5), []any{int64(1), int64(2), int64(3)}}}
		case 8:
			op.Type, op.F, op.Value, op.Node = Info, "write", []any{"key-" + fmt.Sprint(i%9), "v\"é"}, "n2"
		default:
			op.Type, op.Process, op.F, op.Value = Info, NemesisProcess, "start", map[string]any{"n1": []any{"n2", "n3"}}
		}
		if err := w.Write(&op); err != nil {
			panic(err)
		}
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func BenchmarkParseJSON(b *testing.B) {
	lines := bytes.Split(bytes.TrimSpace(sampleHistory(1000)), []byte("\n"))
	for _, impl := range []struct {
		name  string
		parse func([]byte) (Op, error)
	}{
		{"encoding-json", parseJSONStdlib},
		{"hand-written", ParseJSON},
	} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := impl.parse(lines[i%len(lines)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkReadAll streams a 100k-op JSON-lines history.
func BenchmarkReadAll(b *testing.B) {
	data := sampleHistory(100_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	ops := 0
	for b.Loop() {
		got, err := ReadAll(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		ops += len(got)
	}
	b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "ops/s")
}

func FuzzParseJSON(f *testing.F) {
	for _, line := range bytes.Split(sampleHistory(20), []byte("\n")) {
		f.Add(line)
	}
	f.Add([]byte(`{"type":"ok","process":1,"value":"\ud800\udc00\u00"}`))
	f.Add([]byte(`{"type":"ok","process":1,"value":[1e400,-0.0,1E-2,{"":null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		op, err := ParseJSON(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes must encode to a line that decodes to the
		// same encoding again.
		enc := AppendJSON(nil, &op)
		op2, err := ParseJSON(enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if enc2 := AppendJSON(nil, &op2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzParseJSONValue checks the decoder against encoding/json: both accept
// the same documents and decode them to the same values.
func FuzzParseJSONValue(f *testing.F) {
	for _, s := range []string{`null`, `[1,2.5,"x",{"a":[true,false]}]`, `"\u00e9\ud83d\ude00"`, `-0`, `1e309`, `{"a":1,"a":2}`, `[01]`, `"\ud800\u0041"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseJSONValue(data)
		if len(data) > 400 || !utf8.Valid(data) {
			return // deeper than our limit, or bytes encoding/json rewrites
		}
		if valid := json.Valid(data); valid != (err == nil) {
			t.Fatalf("json.Valid = %v but ParseJSONValue error = %v", valid, err)
		}
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if g, w := AppendValue(nil, got), AppendValue(nil, normalizeStdlib(want)); !bytes.Equal(g, w) {
			t.Fatalf("decoded %s, encoding/json %s", g, w)
		}
	})
}

func FuzzReadAll(f *testing.F) {
	f.Add(sampleHistory(5))
	f.Add([]byte(`[{"type":"ok","process":0,"value":"]"},{"type":"ok","process":1}]`))
	f.Add([]byte("\n\n{\"type\":\"ok\",\"process\":0}\n[\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := ReadAll(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, op := range ops {
			if op.Type < Invoke || op.Type > Info {
				t.Fatalf("decoded an op of type %v", op.Type)
			}
		}
	})
}

func TestParseJSONEscapedKeys(t *testing.T) {
	op, err := ParseJSON([]byte(`{"typ\u0065":"ok","pro\u0063ess":3,"\u0066":"read"}`))
	if err != nil || op.Type != Ok || op.Process != 3 || op.F != "read" {
		t.Fatalf("ParseJSON with escaped keys = %+v, %v", op, err)
	}
}
