package workloads

import (
	"context"
	"errors"
	"testing"

	"github.com/chaoskv/chaos/history"
)

// routedKV answers every transaction (or fails it) and names a group.
type routedKV struct {
	group string
	err   error
}

func (k *routedKV) Txn(_ context.Context, ops []MicroOp) ([]MicroResult, error) {
	if k.err != nil {
		return nil, k.err
	}
	out := make([]MicroResult, len(ops))
	for i, o := range ops {
		out[i] = MicroResult{Value: o.Value}
	}
	return out, nil
}

func (k *routedKV) Close() error   { return nil }
func (k *routedKV) Served() string { return k.group }

func TestTxnCompletionNamesTheGroup(t *testing.T) {
	w := NewListAppend(ElleOptions{})
	inv := w.NewGenerator(1).Next()
	for _, tc := range []struct {
		kv   *routedKV
		typ  history.Type
		node string
	}{
		{&routedKV{group: "group 2"}, history.Ok, "group 2"},
		{&routedKV{group: "group 3", err: Definite(errors.New("refused"))}, history.Fail, "group 3"},
		{&routedKV{}, history.Ok, ""},
	} {
		c := runTxn(context.Background(), tc.kv, w.Codec(), inv)
		if c.Type != tc.typ || c.Node != tc.node {
			t.Errorf("completion %v node %q, want %v node %q", c.Type, c.Node, tc.typ, tc.node)
		}
	}
}
