package history

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestReadFileFunc: the hook sees every op in order, in every format,
// what it leaves in an op is what the caller gets back, its error stops
// the read with the line named, and a large file's presized slice holds
// exactly the ops read.
func TestReadFileFunc(t *testing.T) {
	dir := t.TempDir()
	lines := sampleHistory(5000)
	files := map[string][]byte{
		"h.jsonl": lines,
		"a.json":  []byte(`[{"type":"invoke","process":0,"f":"txn","value":[["r",1,null]]},{"type":"ok","process":0,"f":"txn","value":[["r",1,[1]]]}]`),
		"h.edn":   []byte("{:type :invoke, :process 0, :f :txn, :value [[:r 1 nil]]}\n{:type :ok, :process 0, :f :txn, :value [[:r 1 [1]]]}"),
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := ReadFile(path, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var seen []Op
		got, err := ReadFileFunc(path, "", func(op *Op) error {
			seen = append(seen, *op)
			op.Value = nil
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(seen, want) {
			t.Errorf("%s: the hook saw other ops than ReadFile returns", name)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d ops, want %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i].Value != nil || got[i].Index != want[i].Index || got[i].Type != want[i].Type {
				t.Fatalf("%s: op %d = %+v, want %+v without its value", name, i, got[i], want[i])
			}
		}
	}
	for name := range files {
		// A hook that skips every other op keeps the rest, in order.
		path := filepath.Join(dir, name)
		want, _ := ReadFile(path, "")
		i := 0
		got, err := ReadFileFunc(path, "", func(*Op) error {
			i++
			if i%2 == 1 {
				return SkipOp
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want)/2 {
			t.Fatalf("%s: kept %d of %d ops skipping every other one", name, len(got), len(want))
		}
		for j := range got {
			if got[j].Index != want[2*j+1].Index || got[j].Type != want[2*j+1].Type {
				t.Fatalf("%s: kept op %d = %+v, want %+v", name, j, got[j], want[2*j+1])
			}
		}
	}
	stop := errors.New("stop here")
	n := 0
	_, err := ReadFileFunc(filepath.Join(dir, "h.jsonl"), "", func(*Op) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("hook error: %v", err)
	}
}
