package history

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadJepsenLog(t *testing.T) {
	in := "2015-01-01 INFO  jepsen.core - starting\n" +
		"INFO  jepsen.util - 0\t:invoke\t:read\tnil\n" +
		"INFO  jepsen.util - 2   :invoke   :cas   [3 0]\n" +
		"\n" +
		"INFO  jepsen.util - 0\t:ok\t:read\t3\n" +
		"INFO  jepsen.util - 2\t:info\t:cas\t:timed-out\n" +
		"INFO  jepsen.util - :nemesis\t:info\t:start\t{:isolated [n1]}"
	ops, err := ReadJepsenLog(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Index: 0, Type: Invoke, Process: 0, F: "read"},
		{Index: 1, Type: Invoke, Process: 2, F: "cas", Value: []any{int64(3), int64(0)}},
		{Index: 2, Type: Ok, Process: 0, F: "read", Value: int64(3)},
		{Index: 3, Type: Info, Process: 2, F: "cas", Value: "timed-out"},
		{Index: 4, Type: Info, Process: NemesisProcess, F: "start", Value: map[string]any{"isolated": []any{"n1"}}},
	}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("ops:\n got %+v\nwant %+v", ops, want)
	}
}

func TestReadJepsenLogErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - x\t:ok\t:read\t1\n", "line 2:"},
		{"INFO  jepsen.util - 0\t:done\t:read\tnil\n", "unknown op type"},
		{"INFO  jepsen.util - 0\t:ok\t:read\n", "no value"},
		{"INFO  jepsen.util - 0\t:ok\t:read\t[1\n", "value"},
		{"INFO  jepsen.util - -3\t:ok\t:read\t1\n", "process"},
	} {
		_, err := ReadJepsenLog(strings.NewReader(tc.in))
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadJepsenLog(%q) = %v, want a malformed error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestReadFileSniffsJepsenLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etcd.log")
	if err := os.WriteFile(p, []byte("INFO  jepsen.util - 1\t:invoke\t:write\t4\nINFO  jepsen.util - 1\t:ok\t:write\t4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ops, err := ReadFile(p, "")
	if err != nil || len(ops) != 2 || ops[1].Value != int64(4) {
		t.Fatalf("ReadFile = %+v, %v", ops, err)
	}
}

func FuzzReadJepsenLog(f *testing.F) {
	f.Add([]byte("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t3\n"))
	f.Add([]byte("INFO  jepsen.util - 2   :info   :cas   :timed-out\nnoise\n"))
	f.Add([]byte("jepsen.util - :nemesis :info :start {:a [1 2]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := ReadJepsenLog(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for i, op := range ops {
			if op.Type < Invoke || op.Type > Info || op.Index != int64(i) || (op.Process < 0 && !op.Process.IsNemesis()) {
				t.Fatalf("op %d decoded as %+v", i, op)
			}
		}
	})
}
