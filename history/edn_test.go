package history

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseEDN(t *testing.T) {
	cases := []struct {
		in   string
		want any
	}{
		{`nil`, nil},
		{`true`, true},
		{`:invoke`, "invoke"},
		{`:jepsen.checker/valid?`, "jepsen.checker/valid?"},
		{`some-symbol`, "some-symbol"},
		{`42`, int64(42)},
		{`-7`, int64(-7)},
		{`+3`, int64(3)},
		{`42N`, int64(42)},
		{`1.5`, 1.5},
		{`2.5M`, 2.5},
		{`1/4`, 0.25},
		{`1e3`, 1000.0},
		{`"a\"b\\c\nd\u00e9"`, "a\"b\\c\ndé"},
		{`\a`, "a"},
		{`\newline`, "\n"},
		{`[\( \] \space]`, []any{"(", "]", " "}},
		{`[1 2, 3]`, []any{int64(1), int64(2), int64(3)}},
		{`(1 (2))`, []any{int64(1), []any{int64(2)}}},
		{`#{:a}`, []any{"a"}},
		{`[]`, []any{}},
		{`{:a 1, "b" [nil], 3 :c, nil 4}`, map[string]any{"a": int64(1), "b": []any{nil}, "3": "c", "nil": int64(4)}},
		{`[1 #_ 2 3]`, []any{int64(1), int64(3)}},
		{`[1 #_#_ 2 3 4]`, []any{int64(1), int64(4)}},
		{`#inst "2024-01-01T00:00:00Z"`, "2024-01-01T00:00:00Z"},
		{`#jepsen.history.Op{:type :ok}`, map[string]any{"type": "ok"}},
		{"[1 ; comment ]\n 2]", []any{int64(1), int64(2)}},
	}
	for _, tc := range cases {
		got, err := ParseEDN([]byte(tc.in))
		if err != nil {
			t.Errorf("ParseEDN(%s): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseEDN(%s) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{``, `[1 2`, `{:a}`, `"abc`, `)`, `#`, `#_`, `1 2`, `\`, `"\q"`, `12abc`, strings.Repeat("[", 600) + strings.Repeat("]", 600)} {
		if v, err := ParseEDN([]byte(bad)); err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseEDN(%.40q) = %#v, %v; want a malformed error", bad, v, err)
		}
	}
}

func TestReadEDNHistory(t *testing.T) {
	// The shape of Jepsen's history.edn: one op per line.
	in := `{:type :invoke, :f :read, :value nil, :process 0, :time 123, :index 0}
{:type :ok, :f :read, :value [:x 3], :process 0, :time 456, :index 1}
{:type :info, :f :start, :value "partitioned {n1 [n2]}", :process :nemesis, :time 500, :index 2}
#_{:type :ok, :f :discarded, :process 9}
{:type :invoke, :f :txn, :value [[:append 1 2] [:r 1 nil]], :process 1, :time 600, :index 3}
{:type :fail, :f :txn, :value [[:append 1 2] [:r 1 nil]], :process 1, :time 700, :index 4, :error [:conflict "abort"]}
#jepsen.history.Op{:type :invoke, :f :write, :value 5, :process 2, :index 5}
{:type :info, :f :write, :value 5, :process 2, :index 6, :error {:cause :timeout}}
`
	ops, err := ReadEDN(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Index: 0, Time: 123, Type: Invoke, Process: 0, F: "read"},
		{Index: 1, Time: 456, Type: Ok, Process: 0, F: "read", Value: []any{"x", int64(3)}},
		{Index: 2, Time: 500, Type: Info, Process: NemesisProcess, F: "start", Value: "partitioned {n1 [n2]}"},
		{Index: 3, Time: 600, Type: Invoke, Process: 1, F: "txn", Value: []any{[]any{"append", int64(1), int64(2)}, []any{"r", int64(1), nil}}},
		{Index: 4, Time: 700, Type: Fail, Process: 1, F: "txn", Value: []any{[]any{"append", int64(1), int64(2)}, []any{"r", int64(1), nil}}, Error: `["conflict","abort"]`},
		{Index: 5, Type: Invoke, Process: 2, F: "write", Value: int64(5)},
		{Index: 6, Type: Info, Process: 2, F: "write", Value: int64(5), Error: `{"cause":"timeout"}`},
	}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("ops:\n got %#v\nwant %#v", ops, want)
	}
}

func TestReadEDNVector(t *testing.T) {
	// The shape of Knossos's data files: one vector of op maps, no index.
	in := `[{:process 0, :type :invoke, :f :write, :value 3}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 0, :type :ok, :f :write, :value 3}
 {:process 1, :type :ok, :f :read, :value 3}]
`
	ops, err := ReadEDN(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 4 || ops[2].Index != 2 || ops[3].Value != int64(3) || ops[1].F != "read" || ops[1].Process != 1 {
		t.Fatalf("ops = %+v", ops)
	}
}

func TestReadEDNList(t *testing.T) {
	// Knossos's histories written as a top-level list.
	in := "(\n{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :ok, :f :write, :value 3}\n)\n"
	ops, err := ReadEDN(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[1].Type != Ok || ops[1].Value != int64(3) || ops[1].Index != 1 {
		t.Fatalf("ops = %+v", ops)
	}
}

func TestReadEDNKeyField(t *testing.T) {
	// porcupine's kv logs carry the key apart from the value.
	in := `{:process 1, :type :invoke, :f :get, :key "9", :value nil}` + "\n" +
		`{:process 1, :type :ok, :f :get, :key "9", :value "x 1 y"}` + "\n"
	ops, err := ReadEDN(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]any{{"9", nil}, {"9", "x 1 y"}}
	for i, op := range ops {
		if !reflect.DeepEqual(op.Value, want[i]) {
			t.Fatalf("op %d value %#v, want %#v", i, op.Value, want[i])
		}
	}
}

func TestReadEDNImplicitProcesses(t *testing.T) {
	P := ImplicitProcessBase
	in := `[{:type :ok, :value [[:append :x 1]]}
 {:type :invoke, :f :txn, :value [[:r :x nil]]}
 {:type :invoke, :f :txn, :value [[:r :y nil]]}
 {:process 3, :type :invoke, :f :txn, :value []}
 {:type :ok, :f :txn, :value [[:r :x [1]]]}
 {:type :fail, :f :txn, :value [[:r :y nil]]}
 {:process 3, :type :ok, :f :txn, :value []}]`
	ops, err := ReadEDN(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	type tp struct {
		typ  Type
		proc Process
	}
	want := []tp{{Invoke, P}, {Ok, P}, {Invoke, P + 1}, {Invoke, P + 2}, {Invoke, 3}, {Ok, P + 1}, {Fail, P + 2}, {Ok, 3}}
	if len(ops) != len(want) {
		t.Fatalf("%d ops, want %d: %+v", len(ops), len(want), ops)
	}
	for i, w := range want {
		if ops[i].Type != w.typ || ops[i].Process != w.proc || ops[i].Index != int64(i) {
			t.Errorf("op %d = %v process %d index %d, want %v process %d", i, ops[i].Type, ops[i].Process, ops[i].Index, w.typ, w.proc)
		}
	}
	if !reflect.DeepEqual(ops[0].Value, ops[1].Value) {
		t.Errorf("the invocation put before a lone completion has value %v, want %v", ops[0].Value, ops[1].Value)
	}
	if _, err := Pair(ops); err != nil {
		t.Fatalf("implicit processes do not pair: %v", err)
	}
}

func TestReadEDNErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"{:type :ok, :process 0}\n{:type :done, :process 0}", "line 2:"},
		{"{:type :ok, :process 0}\n\n{:process 1}", "line 3:"},
		{"({:type :ok, :process 0}", "unterminated list"},
		{"({:type :ok, :process 0}]", "unexpected ']'"},
		{"{:type :ok, :process 0}\n{:type :ok, :process 0", "line 2:"},
		{"[{:type :ok, :process 0}", "unterminated vector"},
		{"[{:type :ok, :process 0}] {:type :ok, :process 1}", "after the vector"},
		{"{:type :ok, :process 0}\n[1 2]", "not a map"},
		{"{:type :ok, :process 0}\n}", "unexpected '}'"},
		{"{:type :ok :process :client}", `neither an integer nor "nemesis"`},
	}
	for _, tc := range cases {
		_, err := ReadEDN(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("ReadEDN(%q) = %v, want a malformed error containing %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseEDN(f *testing.F) {
	for _, s := range []string{`{:type :ok, :process 0, :value [1 "x" \a #{:k} (nil)]}`, `#inst "x"`, `[1 #_ 2 3/4 5N 6.5M]`, `\newline`, `"\u00e9"`, `;c` + "\n" + `:k`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseEDN(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		_ = AppendValue(nil, v)
		_, _ = ParseEDNOp(data)
	})
}

func FuzzReadEDN(f *testing.F) {
	f.Add([]byte("{:type :invoke, :f :read, :value nil, :process 0}\n{:type :ok, :f :read, :value 1, :process 0}\n"))
	f.Add([]byte("[{:process 0 :type :invoke :f :cas :value [1 2]} #_ {:x 1} #inst \"t\"]"))
	f.Add([]byte("#_ 5 {:type :ok :process :nemesis} ; c\n#foo {:type :info :process 1 :f \\a}"))
	f.Add([]byte("({:type :invoke :f :get :key \"k\"} {:type :ok :f :get :key \"k\" :value \"v\"} {:type :ok :value [[:r 1 nil]]})"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := ReadEDN(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, op := range ops {
			if op.Type < Invoke || op.Type > Info {
				t.Fatalf("decoded an op of type %v", op.Type)
			}
			if op.Index < 0 {
				t.Fatalf("op without an index: %+v", op)
			}
		}
	})
}
