package history

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPair(t *testing.T) {
	ops := []Op{
		{Type: Invoke, Process: 0, F: "read"},              // 0
		{Type: Invoke, Process: 1, F: "write"},             // 1
		{Type: Info, Process: NemesisProcess, F: "start"},  // 2
		{Type: Ok, Process: 1, F: "write"},                 // 3
		{Type: Info, Process: NemesisProcess, F: "start"},  // 4
		{Type: Ok, Process: 0, F: "read"},                  // 5
		{Type: Invoke, Process: NemesisProcess, F: "kill"}, // 6
		{Type: Invoke, Process: 1, F: "cas"},               // 7
		{Type: Info, Process: NemesisProcess, F: "kill"},   // 8
		{Type: Invoke, Process: 2, F: "write"},             // 9
		{Type: Info, Process: 2, F: "write"},               // 10
		{Type: Invoke, Process: 2, F: "read"},              // 11: a retired process may invoke again
		{Type: Fail, Process: 2, F: "read"},                // 12
	}
	p, err := Pair(ops)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{5, 3, NoPartner, 1, NoPartner, 0, 8, NoPartner, 6, 10, 9, 12, 11}
	if !reflect.DeepEqual(p.Partner, want) {
		t.Fatalf("partners = %v, want %v", p.Partner, want)
	}
	if c, ok := p.Completion(7); ok || c != NoPartner {
		t.Fatalf("Completion(7) = %d, %v; want none", c, ok)
	}
}

func TestPairErrors(t *testing.T) {
	cases := []struct {
		name string
		ops  []Op
		want string
	}{
		{"unknown type", []Op{{Type: 9, Process: 0, F: "read"}}, "line 1 (index 0): unknown op type type(9)"},
		{"completion without invocation", []Op{
			{Type: Invoke, Process: 0, F: "read"},
			{Type: Ok, Process: 1, F: "read", Index: 1},
		}, "line 2 (index 1): ok completion of \"read\" by process 1 without an outstanding invocation"},
		{"process busy", []Op{
			{Type: Invoke, Process: 0, F: "read"},
			{Type: Invoke, Process: 0, F: "write", Index: 1},
		}, "line 2 (index 1): process 0 invokes \"write\" while its \"read\" invoked at line 1 is still outstanding"},
		{"f differs", []Op{
			{Type: Invoke, Process: 0, F: "read"},
			{Type: Ok, Process: 0, F: "write", Index: 1},
		}, "line 2 (index 1): completion f \"write\" differs from f \"read\" of its invocation at line 1"},
		{"negative process", []Op{{Type: Invoke, Process: -5}}, "negative process"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Pair(tc.ops)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var pe *PairError
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v is not a *PairError wrapping ErrMalformed", err)
			}
		})
	}
}
