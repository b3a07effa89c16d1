package workloads_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/workloads"
)

// TestBankCodecSteps answers a transfer's two transactions in every way a
// world can and checks the outcome rules the codec owns: nothing is
// written before the guarded writes, so every failure up to them is fail;
// the writes' unknown outcome is info, a refusal (a guard that no longer
// matched) is fail.
func TestBankCodecSteps(t *testing.T) {
	codec := workloads.NewBank(workloads.BankOptions{Accounts: 3, InitialBalance: 10}).Codec()
	tr := workloads.Invocation{F: "transfer", Value: map[string]any{"from": int64(0), "to": int64(2), "amount": int64(4)}}
	read := func(v string) workloads.MicroResult { return workloads.MicroResult{Value: v, Found: v != ""} }
	timeout, refused := errors.New("timeout"), workloads.Definite(errors.New("txn: check failed"))
	for _, tt := range []struct {
		name   string
		reads  []workloads.MicroResult
		rerr   error
		werr   error
		want   history.Type
		errHas string
	}{
		{"ok from never-written accounts", []workloads.MicroResult{read(""), read("")}, nil, nil, history.Ok, ""},
		{"ok from written accounts", []workloads.MicroResult{read("12"), read("3")}, nil, nil, history.Ok, ""},
		{"reads unanswered", nil, timeout, nil, history.Fail, "read the balances"},
		{"reads refused", nil, refused, nil, history.Fail, "read the balances"},
		{"reads short", []workloads.MicroResult{read("")}, nil, nil, history.Fail, "1 results"},
		{"overdraft", []workloads.MicroResult{read("3"), read("")}, nil, nil, history.Fail, "insufficient funds"},
		{"not a balance", []workloads.MicroResult{read("x"), read("")}, nil, nil, history.Fail, "not a balance"},
		{"writes unanswered", []workloads.MicroResult{read(""), read("")}, nil, timeout, history.Info, "timeout"},
		{"guard no longer matched", []workloads.MicroResult{read(""), read("")}, nil, refused, history.Fail, "check failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := codec.Start(tr)
			want := []workloads.MicroOp{{F: "r", Key: "acct0"}, {F: "r", Key: "acct2"}}
			if s.Done() || !reflect.DeepEqual(s.Ops, want) {
				t.Fatalf("first step %+v, want the reads %v", s, want)
			}
			s = s.Next(tt.reads, tt.rerr)
			if !s.Done() {
				from, to := tt.reads[0].Value, tt.reads[1].Value
				fb, tb := "6", "14"
				if from != "" {
					fb, tb = "8", "7"
				}
				want := []workloads.MicroOp{{F: "check", Key: "acct0", Value: from}, {F: "check", Key: "acct2", Value: to},
					{F: "w", Key: "acct0", Value: fb}, {F: "w", Key: "acct2", Value: tb}}
				if !reflect.DeepEqual(s.Ops, want) {
					t.Fatalf("second step %v, want %v", s.Ops, want)
				}
				s = s.Next(nil, tt.werr)
			}
			c := s.Completion
			if !s.Done() || c.Type != tt.want || !strings.Contains(c.Error, tt.errHas) || !reflect.DeepEqual(c.Value, tr.Value) {
				t.Fatalf("completion %v %q %v, want %v with %q", c.Type, c.Error, c.Value, tt.want, tt.errHas)
			}
		})
	}
	// A read is one transaction; unanswered it fails, as a read may.
	s := codec.Start(workloads.Invocation{F: "read"})
	if c := s.Next(nil, timeout).Completion; c.Type != history.Fail {
		t.Fatalf("unanswered read: %v", c.Type)
	}
	c := s.Next([]workloads.MicroResult{read("6"), read(""), read("14")}, nil).Completion
	if want := map[string]any{"0": int64(6), "1": int64(10), "2": int64(14)}; c.Type != history.Ok || !reflect.DeepEqual(c.Value, want) {
		t.Fatalf("read: %v %v, want ok %v", c.Type, c.Value, want)
	}
}

// TestNewTuned: a world that knows only a workload's name tunes it by
// keys; tuning a workload does not have is refused, not ignored.
func TestNewTuned(t *testing.T) {
	for _, tt := range []struct {
		name string
		t    workloads.Tuning
		err  string
	}{
		{"register", workloads.Tuning{Keys: 2, Reads: 7}, ""},
		{"list-append", workloads.Tuning{Keys: 1}, ""},
		{"bank", workloads.Tuning{Keys: 3}, ""},
		{"bank", workloads.Tuning{Keys: 1}, "at least 2 accounts"},
		{"rw-register", workloads.Tuning{Reads: 3}, "no reads ratio"},
		{"append", workloads.Tuning{}, "unknown workload"},
	} {
		w, err := workloads.NewTuned(tt.name, tt.t)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %+v: err %v, want one saying %q", tt.name, tt.t, err, tt.err)
			}
			continue
		}
		if err != nil || w.Name() != tt.name {
			t.Fatalf("%s %+v: %v, %v", tt.name, tt.t, w, err)
		}
	}
	w, _ := workloads.NewTuned("bank", workloads.Tuning{Keys: 3})
	if c, ok := w.Checker().(*bank.Checker); !ok || len(c.Accounts) != 3 || *c.Total != 30 {
		t.Fatalf("bank tuned to 3 accounts checks %#v", w.Checker())
	}
}
