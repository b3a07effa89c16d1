package bank

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// hist builds a history from "process type f value-json" lines.
func hist(t *testing.T, lines ...string) []history.Op {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		parts := strings.SplitN(l, " ", 4)
		if len(parts) == 3 {
			parts = append(parts, "null")
		}
		fmt.Fprintf(&b, `{"process":%s,"type":%q,"f":%q,"value":%s}`+"\n", parts[0], parts[1], parts[2], parts[3])
	}
	ops, err := history.ReadAll(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func readOp(p int, value string) []string {
	return []string{fmt.Sprintf("%d invoke read", p), fmt.Sprintf("%d ok read %s", p, value)}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func total(n int64) *int64 { return &n }

func TestCheck(t *testing.T) {
	transfer := []string{`1 invoke transfer {"from":"a","to":"b","amount":5}`, `1 ok transfer {"from":"a","to":"b","amount":5}`}
	cases := []struct {
		name  string
		opts  Options
		lines []string
		want  checker.Validity
		types []string
	}{
		{"consistent reads", Options{Total: total(20)}, cat(readOp(0, `{"a":10,"b":10}`), transfer, readOp(0, `{"a":5,"b":15}`)),
			checker.Valid, nil},
		{"pairs form", Options{Total: total(20)}, cat(readOp(0, `[["a",10],["b",10]]`), readOp(2, `[[0,20],[1,0]]`)),
			checker.Invalid, []string{MissingKey}},
		{"integer account names", Options{Total: total(20), Accounts: []string{"0", "1"}}, readOp(0, `[[0,20],[1,0]]`),
			checker.Valid, nil},
		{"wrong total", Options{Total: total(20)}, cat(readOp(0, `{"a":10,"b":10}`), readOp(0, `{"a":5,"b":10}`)),
			checker.Invalid, []string{WrongTotal}},
		{"inferred total blames the odd read", Options{}, cat(readOp(0, `{"a":10,"b":10}`), readOp(0, `{"a":5,"b":10}`), readOp(0, `{"a":0,"b":20}`)),
			checker.Invalid, []string{WrongTotal}},
		{"negative balance", Options{Total: total(20)}, readOp(0, `{"a":-5,"b":25}`),
			checker.Invalid, []string{NegativeValue}},
		{"missing account", Options{Total: total(20), Accounts: []string{"a", "b", "c"}}, readOp(0, `{"a":10,"b":10}`),
			checker.Invalid, []string{MissingKey}},
		{"missing account inferred from a transfer", Options{Total: total(20)}, cat(transfer, readOp(0, `{"a":20}`)),
			checker.Invalid, []string{MissingKey}},
		{"unexpected account", Options{Total: total(20), Accounts: []string{"a", "b"}}, readOp(0, `{"a":10,"b":10,"z":0}`),
			checker.Invalid, []string{UnexpectedKey}},
		{"several anomalies", Options{Total: total(20), Accounts: []string{"a", "b"}}, readOp(0, `{"a":-1,"z":0}`),
			checker.Invalid, []string{WrongTotal, NegativeValue, UnexpectedKey, MissingKey}},
		{"failed and info reads are ignored", Options{Total: total(20)}, []string{
			`0 invoke read`, `0 fail read {"a":1}`, `1 invoke read`, `1 info read {"a":1}`}, checker.Unknown, nil},
		{"no reads", Options{}, transfer, checker.Unknown, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Check(hist(t, tc.lines...), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tc.want {
				t.Fatalf("valid = %v, want %v (%s)", res.Valid, tc.want, res.Summary)
			}
			if !reflect.DeepEqual(res.AnomalyTypes, tc.types) {
				t.Fatalf("anomaly types = %v, want %v", res.AnomalyTypes, tc.types)
			}
			for _, kind := range tc.types {
				for _, a := range res.Anomalies[kind] {
					e := a.(Error)
					if e.Explanation == "" || e.Op.F != "read" || e.Op.Type != history.Ok {
						t.Fatalf("%s anomaly without explanation or read: %+v", kind, e)
					}
				}
			}
		})
	}
}

func TestCheckDetails(t *testing.T) {
	res, err := Check(hist(t, cat(readOp(0, `{"a":10,"b":10}`), readOp(0, `{"a":5,"b":10}`))...), Options{Total: total(20)})
	if err != nil {
		t.Fatal(err)
	}
	e := res.Anomalies[WrongTotal][0].(Error)
	if *e.Total != 15 || *e.Expected != 20 || e.Op.Index != 3 {
		t.Fatalf("wrong-total = %+v, want total 15, expected 20 at index 3", e)
	}
}

func TestCheckMalformed(t *testing.T) {
	for _, lines := range [][]string{
		readOp(0, `5`),
		readOp(0, `{"a":"ten"}`),
		readOp(0, `[["a"]]`),
		readOp(0, `[[["a"],1]]`),
		readOp(0, `[["a",1],["a",2]]`),
		{`0 ok read {"a":1}`},
	} {
		_, err := Check(hist(t, lines...), Options{})
		if err == nil || !errors.Is(err, history.ErrMalformed) {
			t.Errorf("%v: err = %v, want a malformed-history error", lines, err)
		}
	}
}
