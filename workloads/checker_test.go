package workloads_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/workloads"
)

// TestCheckerRecordRoundTrip: what test.json records of a workload's
// checker rebuilds the same checker, in the shape stored runs hold.
func TestCheckerRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		w    workloads.Workload
		want string
	}{
		{workloads.NewRegister(workloads.RegisterOptions{}), `{"checker":"linear","model":"cas-register"}`},
		{workloads.NewListAppend(workloads.ElleOptions{ConsistencyModels: []string{"serializable"}}), `{"checker":"elle","model":"list-append","consistency-models":["serializable"]}`},
		{workloads.NewRWRegister(workloads.ElleOptions{}), `{"checker":"elle","model":"rw-register"}`},
		{workloads.NewBank(workloads.BankOptions{Accounts: 2, InitialBalance: 5}), `{"checker":"bank","total":10,"accounts":["0","1"]}`},
	} {
		b, err := json.Marshal(tc.w.Checker())
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s: recorded %s, want %s", tc.w.Name(), b, tc.want)
		}
		got, err := workloads.CheckerFor(tc.w.Name(), b)
		if err != nil {
			t.Fatalf("%s: %v", tc.w.Name(), err)
		}
		if !reflect.DeepEqual(got, tc.w.Checker()) {
			t.Errorf("%s: rebuilt %#v, want %#v", tc.w.Name(), got, tc.w.Checker())
		}
	}
}

func TestCheckerForRefuses(t *testing.T) {
	for _, tc := range []struct {
		workload, recorded, err string
	}{
		{"nope", "", "unknown workload"},
		{"bank", `{"checker":"elle","model":"list-append"}`, "does not judge workload bank"},
		{"register", `{"model":"cas-register"}`, "not a checker's recorded options"},
		{"register", `[1]`, "not a checker's recorded options"},
		{"bank", `{"checker":"bank","total":"x"}`, "recorded bank checker"},
	} {
		_, err := workloads.CheckerFor(tc.workload, json.RawMessage(tc.recorded))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %s: err %v, want %q", tc.workload, tc.recorded, err, tc.err)
		}
	}
}

func TestCheckerRecordWorkload(t *testing.T) {
	for rec, want := range map[string]string{
		`{"checker":"linear","model":"kv"}`:        "kv",
		`{"checker":"elle","model":"rw-register"}`: "rw-register",
		`{"checker":"bank","total":3}`:             "bank",
	} {
		r, err := workloads.ReadCheckerRecord(json.RawMessage(rec))
		if err != nil || r.Workload() != want {
			t.Errorf("%s: workload %q, err %v; want %s", rec, r.Workload(), err, want)
		}
	}
}
