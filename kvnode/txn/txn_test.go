package txn

import (
	"errors"
	"reflect"
	"testing"
)

func TestExecReadYourWrites(t *testing.T) {
	base := map[string]string{"a": "1", "l": "x" + ListSep}
	get := func(k string) (string, bool) { v, ok := base[k]; return v, ok }
	ops := []MicroOp{
		{F: Read, Key: "a"},
		{F: Write, Key: "a", Value: "2"},
		{F: Read, Key: "a"},
		{F: Read, Key: "missing"},
		{F: Append, Key: "l", Value: "y"},
		{F: Append, Key: "n", Value: "z"},
		{F: Read, Key: "l"},
		{F: Read, Key: "n"},
	}
	res, writes, ok := Exec(ops, get)
	if !ok {
		t.Fatal("no check, yet not ok")
	}
	want := []MicroResult{
		{F: Read, Key: "a", Value: "1", Found: true, List: []string{"1"}},
		{F: Write, Key: "a", Value: "2"},
		{F: Read, Key: "a", Value: "2", Found: true, List: []string{"2"}},
		{F: Read, Key: "missing"},
		{F: Append, Key: "l", Value: "y"},
		{F: Append, Key: "n", Value: "z"},
		{F: Read, Key: "l", Value: "x" + ListSep + "y" + ListSep, Found: true, List: []string{"x", "y"}},
		{F: Read, Key: "n", Value: "z" + ListSep, Found: true, List: []string{"z"}},
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("results\n got %+v\nwant %+v", res, want)
	}
	wantW := []KV{{"a", "2"}, {"l", "x" + ListSep + "y" + ListSep}, {"n", "z" + ListSep}}
	if !reflect.DeepEqual(writes, wantW) {
		t.Fatalf("writes %+v, want %+v", writes, wantW)
	}
	if base["a"] != "1" {
		t.Fatal("Exec modified the base view")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		ops  []MicroOp
		ok   bool
	}{
		{"empty", nil, false},
		{"read", []MicroOp{{F: Read, Key: "k"}}, true},
		{"unknown f", []MicroOp{{F: "cas", Key: "k"}}, false},
		{"separator in element", []MicroOp{{F: Append, Key: "k", Value: "a" + ListSep}}, false},
		{"separator in write is fine", []MicroOp{{F: Write, Key: "k", Value: "a" + ListSep}}, true},
		{"too many", make([]MicroOp, MaxOps+1), false},
	}
	for _, tc := range tests {
		err := Validate(tc.ops)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not match ErrInvalid", tc.name, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	ops := []MicroOp{{F: Read, Key: "k"}, {F: Write, Key: "", Value: ""}, {F: Append, Key: "x", Value: "7"}}
	got, err := Decode(Encode(ops))
	if err != nil || !reflect.DeepEqual(got, ops) {
		t.Fatalf("Decode(Encode) = %+v, %v", got, err)
	}
	res, _, _ := Exec(append(ops, MicroOp{F: Read, Key: "x"}, MicroOp{F: Check, Key: "x", Value: "7"}), func(string) (string, bool) { return "", false })
	back, err := DecodeResults(EncodeResults(res))
	if err != nil || !reflect.DeepEqual(back, res) {
		t.Fatalf("DecodeResults(EncodeResults) = %+v, %v; want %+v", back, err, res)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 9, 0}, {1, 1, 5, 'a'}, append(Encode(ops), 0), {0x80, 0}} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%x) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestSplitList(t *testing.T) {
	for v, want := range map[string][]string{"": {}, "a" + ListSep: {"a"}, "a" + ListSep + "b" + ListSep: {"a", "b"}, "w": {"w"}} {
		if got := SplitList(v); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitList(%q) = %q, want %q", v, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]MicroOp{{F: Read, Key: "k"}, {F: Append, Key: "k", Value: "1"}}))
	f.Add([]byte{})
	f.Add([]byte{2, 3, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(ops))
		if err != nil || !reflect.DeepEqual(again, ops) {
			t.Fatalf("re-decode of %+v: %+v, %v", ops, again, err)
		}
	})
}

func FuzzDecodeResults(f *testing.F) {
	f.Add(EncodeResults([]MicroResult{{F: Read, Key: "k", Value: "a" + ListSep, Found: true}}))
	f.Add([]byte{1, 1, 2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeResults(b)
		if err != nil {
			return
		}
		again, err := DecodeResults(EncodeResults(rs))
		if err != nil || !reflect.DeepEqual(again, rs) {
			t.Fatalf("re-decode of %+v: %+v, %v", rs, again, err)
		}
	})
}

func TestExecCheck(t *testing.T) {
	get := func(k string) (string, bool) {
		if k == "a" {
			return "5", true
		}
		return "", false
	}
	for _, tc := range []struct {
		ops []MicroOp
		ok  bool
	}{
		{[]MicroOp{{F: Check, Key: "a", Value: "5"}, {F: Write, Key: "a", Value: "6"}}, true},
		{[]MicroOp{{F: Check, Key: "a", Value: "4"}, {F: Write, Key: "a", Value: "6"}}, false},
		{[]MicroOp{{F: Check, Key: "missing", Value: ""}}, true},
		{[]MicroOp{{F: Write, Key: "a", Value: "7"}, {F: Check, Key: "a", Value: "7"}}, true},
		{[]MicroOp{{F: Write, Key: "a", Value: "7"}, {F: Check, Key: "a", Value: "5"}}, false},
	} {
		if _, _, ok := Exec(tc.ops, get); ok != tc.ok {
			t.Errorf("Exec(%+v) ok = %v, want %v", tc.ops, ok, tc.ok)
		}
	}
}
